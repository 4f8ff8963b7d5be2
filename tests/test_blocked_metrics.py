"""Row-blocked n x n metrics against the dense formulas.

Margins (with same-latent negatives and unexpected-positive counts), retrieval
recall@k and uniformity, over block sizes that divide n and ones that leave an
uneven last block (and blocks larger than n), in float64 (to 1e-12) and float32
(to 1e-6); the default switch at ``BLOCKED_MIN_ROWS``; ``vmap``; gradients.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import clipsim.metrics as M
from clipsim.metrics import _blocked

BLOCKS = (1, 4, 7, 25, 64)  # n = 25: 7 leaves a last block of 4; 64 > n


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    if request.param == "float64":
        with jax.enable_x64(True):
            yield np.dtype(np.float64)
    else:
        yield np.dtype(np.float32)


def _tol(dtype) -> dict[str, float]:
    return {"rtol": 1e-6, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12,
                                                                     "atol": 1e-12}


def _case(seed: int, n: int, d: int, dtype):
    """Embeddings with a few exact ties and latents from 3 classes (many same-latent pairs)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d))
    b = a + rng.standard_normal((n, d))
    b[3] = b[4]                       # tied scores in two columns
    z = np.eye(3)[rng.integers(0, 3, size=n)]
    z[5] = z[6] + 0.5e-6              # equal within atol
    return a.astype(dtype), b.astype(dtype), z.astype(dtype)


def _close(got: dict, want: dict, **tol) -> None:
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        np.testing.assert_allclose(got[k], want[k], err_msg=k, **tol)


@pytest.mark.parametrize("block", BLOCKS)
def test_pair_margins_blocked_equal_dense(dtype, block: int) -> None:
    a, b, z = _case(0, 25, 4, dtype)
    m_d, c_d = jax.jit(M.pair_margins)(a, b, z)
    m_b, c_b = jax.jit(functools.partial(M.pair_margins, block=block))(a, b, z)
    assert m_b.dtype == m_d.dtype and c_b.dtype == c_d.dtype == jnp.int32
    np.testing.assert_array_equal(np.isnan(m_b), np.isnan(m_d))
    np.testing.assert_allclose(m_b, m_d, equal_nan=True, **_tol(dtype))
    np.testing.assert_array_equal(c_b, c_d)
    assert int(np.sum(c_d)) > 0  # the case has same-latent negatives


def test_pair_margins_blocked_nan_when_every_negative_shares_the_latent() -> None:
    a = np.eye(3, dtype=np.float32)
    z = np.zeros((3, 2), dtype=np.float32)
    margins, counts = M.pair_margins(a, a, z, block=2)
    assert np.all(np.isnan(margins))
    np.testing.assert_array_equal(counts, [2, 2, 2])


@pytest.mark.parametrize("block", BLOCKS)
def test_margin_stats_blocked_equal_dense(dtype, block: int) -> None:
    a, b, z = _case(1, 25, 4, dtype)
    _close(M.margin_stats(a, b, z, block=block), M.margin_stats(a, b, z), **_tol(dtype))


@pytest.mark.parametrize("block", BLOCKS)
def test_retrieval_recall_blocked_equal_dense(dtype, block: int) -> None:
    a, b, _ = _case(2, 25, 3, dtype)
    ks = (1, 2, 5)
    _close(M.retrieval_recall(a, b, ks=ks, block=block), M.retrieval_recall(a, b, ks=ks),
           **_tol(dtype))


def test_retrieval_recall_blocked_all_tied_is_zero() -> None:
    x = np.ones((6, 2), dtype=np.float32)
    got = M.retrieval_recall(x, x, ks=(1, 5, 6), block=4)
    assert float(got["recall_a2b@5"]) == 0.0 and float(got["recall_b2a@5"]) == 0.0
    assert float(got["recall_a2b@6"]) == 1.0 and float(got["recall_b2a@6"]) == 1.0


@pytest.mark.parametrize("block", BLOCKS)
def test_uniformity_blocked_equals_dense(dtype, block: int) -> None:
    a, _, _ = _case(3, 25, 5, dtype)
    got, want = M.uniformity(a, block=block), M.uniformity(a)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, **_tol(dtype))


def test_uniformity_blocked_gradient_equals_dense() -> None:
    with jax.enable_x64(True):
        a, _, _ = _case(4, 13, 3, np.dtype(np.float64))
        g_b = jax.grad(functools.partial(M.uniformity, block=5))(a)
        g_d = jax.grad(M.uniformity)(a)
        np.testing.assert_allclose(g_b, g_d, rtol=1e-10, atol=1e-12)


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_embedding_metrics_take_the_blocked_path_from_the_threshold(monkeypatch) -> None:
    """Above ``BLOCKED_MIN_ROWS`` the bundle is computed blocked, with the dense values."""
    a, b, z = _case(5, 30, 4, np.dtype(np.float32))
    dense = M.embedding_metrics(a, b, z, ks=(1, 3))
    monkeypatch.setattr(_blocked, "BLOCKED_MIN_ROWS", 30)
    monkeypatch.setattr(_blocked, "SLAB_ENTRIES", 30 * 7)  # blocks of 7 rows, last one of 2
    assert _blocked.use_blocked(30, None) and _blocked.block_rows(30, 30) == 7
    maps = []
    real_map = jax.lax.map
    monkeypatch.setattr(jax.lax, "map", lambda f, xs: maps.append(1) or real_map(f, xs))
    blocked = M.embedding_metrics(a, b, z, ks=(1, 3))
    assert len(maps) >= 4  # margins, retrieval, two uniformities
    _close(blocked, dense, rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_vmap_over_runs_blocked_equals_loop() -> None:
    runs = [_case(10 + r, 17, 3, np.dtype(np.float32)) for r in range(3)]
    a, b, z = (np.stack(x) for x in zip(*runs, strict=True))
    fn = functools.partial(M.embedding_metrics, ks=(1, 2))
    batched = jax.jit(jax.vmap(lambda x, y, w: _with_block(fn, x, y, w, 5)))(a, b, z)
    for r in range(3):
        one = fn(*runs[r])
        _close({k: v[r] for k, v in batched.items()}, one, rtol=1e-6, atol=1e-6)


def _with_block(fn, a, b, z, block):
    out = dict(M.margin_stats(a, b, z, block=block))
    out.update(M.retrieval_recall(a, b, ks=(1, 2), block=block))
    out["positive_cosine"] = M.positive_cosine(a, b)
    out["modality_gap"] = M.modality_gap(a, b)
    out["uniformity_a"] = M.uniformity(a, block=block)
    out["uniformity_b"] = M.uniformity(b, block=block)
    return out


def test_block_rows_and_checks() -> None:
    assert _blocked.block_rows(10, 10, 3) == 3
    assert _blocked.block_rows(10, 10, 50) == 10
    assert 1 <= _blocked.block_rows(10**6, 10**6) <= 10**6
    with pytest.raises(ValueError, match="block"):
        _blocked.block_rows(10, 10, 0)
    a = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="same last dimension"):
        M.pair_margins(a, np.zeros((4, 2)), np.zeros((4, 1)), block=2)
    with pytest.raises(ValueError, match="same number of rows"):
        M.retrieval_recall(a, np.zeros((5, 3)), ks=(1,), block=2)
