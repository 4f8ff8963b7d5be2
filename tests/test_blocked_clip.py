"""The blocked CLIP loss (``clip_loss_blocked``) against the dense loss.

Values and gradients with respect to za, zb and the temperature, in float64 (to
1e-10) and float32 (to 1e-5), under ``vmap``, for block sizes that divide B and
ones that leave an uneven last block; the batch statistics; and ``clip``'s
switch to the blocked path from ``BLOCKED_MIN_BATCH``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clipsim.config import ObjectiveConfig
from clipsim.objectives import _clip, _clip_blocked
from clipsim.objectives._clip_blocked import blocked_batch_stats, clip_loss_blocked


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _pair(seed: int, b: int, d: int, dtype, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    za = rng.normal(size=(b, d))
    zb = za + 0.7 * rng.normal(size=(b, d))
    za = scale * za / np.linalg.norm(za, axis=1, keepdims=True)
    zb = zb / np.linalg.norm(zb, axis=1, keepdims=True)
    g = rng.normal(size=(2, b))
    return jnp.asarray(za, dtype), jnp.asarray(zb, dtype), jnp.asarray(g, dtype)


def _dense(za, zb, tau):
    return _clip._row_col_losses_plain(za @ zb.T, tau)


def _weighted(fn):
    """sum_i g_i l_i + g'_i l'_i and its gradient wrt (za, zb, tau)."""
    def f(za, zb, tau, g):
        row, col = fn(za, zb, tau)[:2]
        return jnp.sum(g[0] * row) + jnp.sum(g[1] * col)
    return jax.value_and_grad(f, argnums=(0, 1, 2))


def _blocked(block):
    return lambda za, zb, tau: clip_loss_blocked(za, zb, tau, block=block)


CASES = [(2, 1, 0.5), (7, 3, 0.1), (33, 8, 0.02), (40, 40, 1.0), (50, 16, 0.05),
         (64, 100, 0.2)]


@pytest.mark.parametrize(("b", "block", "tau"), CASES)
def test_values_and_gradients_match_dense_float64(x64, b: int, block: int, tau: float) -> None:
    za, zb, g = _pair(b, b, 5, jnp.float64, scale=2.0)
    t = jnp.asarray(tau, jnp.float64)
    row_d, col_d = _dense(za, zb, t)
    row_b, col_b, _ = clip_loss_blocked(za, zb, t, block=block)
    np.testing.assert_allclose(row_b, row_d, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(col_b, col_d, rtol=1e-10, atol=1e-10)
    (v1, g1), (v2, g2) = (jax.jit(_weighted(_blocked(block)))(za, zb, t, g),
                          jax.jit(_weighted(_dense))(za, zb, t, g))
    np.testing.assert_allclose(v1, v2, rtol=1e-10)
    for name, a, ref in zip(("za", "zb", "tau"), g1, g2, strict=True):
        scale = max(1.0, float(jnp.max(jnp.abs(ref))))
        np.testing.assert_allclose(a, ref, rtol=0, atol=1e-10 * scale, err_msg=name)


@pytest.mark.parametrize(("b", "block", "tau"), [(130, 32, 0.05), (257, 64, 0.1),
                                                 (300, 256, 1.0)])
def test_values_and_gradients_match_dense_float32(b: int, block: int, tau: float) -> None:
    za, zb, g = _pair(b, b, 16, jnp.float32)
    t = jnp.asarray(tau, jnp.float32)
    (v1, g1), (v2, g2) = (jax.jit(_weighted(_blocked(block)))(za, zb, t, g),
                          jax.jit(_weighted(_dense))(za, zb, t, g))
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    for name, a, ref in zip(("za", "zb", "tau"), g1, g2, strict=True):
        scale = float(jnp.max(jnp.abs(ref)))
        np.testing.assert_allclose(a, ref, rtol=0, atol=1e-5 * scale, err_msg=name)


def test_vmap_over_runs_with_uneven_blocks(x64) -> None:
    pairs = [_pair(s, 23, 4, jnp.float64) for s in range(3)]
    za, zb, g = (jnp.stack(x) for x in zip(*pairs, strict=True))
    taus = jnp.asarray([0.03, 0.2, 1.5])
    got = jax.jit(jax.vmap(_weighted(_blocked(5))))(za, zb, taus, g)
    for r in range(3):
        want = _weighted(_dense)(za[r], zb[r], taus[r], g[r])
        np.testing.assert_allclose(got[0][r], want[0], rtol=1e-10)
        for a, ref in zip(got[1], want[1], strict=True):
            np.testing.assert_allclose(a[r], ref, rtol=1e-10, atol=1e-10)


def test_stable_at_small_temperature_and_large_scores(x64) -> None:
    za, zb, g = _pair(5, 20, 3, jnp.float64, scale=30.0)
    t = jnp.asarray(0.001, jnp.float64)
    row_b, col_b, _ = clip_loss_blocked(za, zb, t, block=6)
    row_d, col_d = _dense(za, zb, t)
    assert np.all(np.isfinite(row_b)) and np.all(np.isfinite(col_b))
    np.testing.assert_allclose(row_b, row_d, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(col_b, col_d, rtol=1e-10, atol=1e-8)


def test_zero_scores_give_log_b(x64) -> None:
    za = jnp.zeros((9, 3))
    row, col, _ = clip_loss_blocked(za, za, 0.1, block=4)
    np.testing.assert_allclose(row, np.log(9.0), rtol=1e-12)
    np.testing.assert_allclose(col, np.log(9.0), rtol=1e-12)


def test_batch_statistics_match_dense(x64) -> None:
    za, zb, _ = _pair(3, 37, 6, jnp.float64)
    _, _, parts = clip_loss_blocked(za, zb, 0.1, block=8)
    got = blocked_batch_stats(za, zb, parts, 0.1)
    want = _clip.batch_stats(za @ zb.T, 0.1)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_clip_switches_to_blocked_from_the_threshold(monkeypatch) -> None:
    calls = []
    real = _clip.clip_loss_blocked

    def spy(za, zb, tau, *, block):
        calls.append(za.shape[0])
        return real(za, zb, tau, block=block)

    monkeypatch.setattr(_clip, "clip_loss_blocked", spy)
    monkeypatch.setattr(_clip, "BLOCKED_MIN_BATCH", 16)
    cfg = ObjectiveConfig(name="clip", temperature=0.1)
    za, zb, _ = _pair(0, 15, 4, jnp.float32)
    _clip.clip(za, zb, {}, cfg=cfg)
    assert calls == []
    za, zb, _ = _pair(0, 16, 4, jnp.float32)
    _clip.clip(za, zb, {}, cfg=cfg)
    assert calls == [16]


def test_clip_objective_blocked_equals_dense_with_learned_temperature(x64, monkeypatch) -> None:
    """Loss, aux and gradients wrt za, zb and log(1/tau) of ``clip`` on both paths."""
    cfg = ObjectiveConfig(name="clip", temperature=0.07, learn_temperature=True)
    params = _clip.clip_init_params(cfg)
    za, zb, _ = _pair(11, 29, 5, jnp.float64)

    def run():
        f = jax.value_and_grad(lambda a, c, p: _clip.clip(a, c, p, cfg=cfg), argnums=(0, 1, 2),
                               has_aux=True)
        return f(za, zb, params)

    monkeypatch.setattr(_clip, "BLOCK_ROWS", 7)
    monkeypatch.setattr(_clip, "BLOCKED_MIN_BATCH", 2)
    (lb, aux_b), grads_b = run()
    monkeypatch.setattr(_clip, "BLOCKED_MIN_BATCH", 10**9)
    (ld, aux_d), grads_d = run()
    np.testing.assert_allclose(lb, ld, rtol=1e-12)
    for k in aux_d:
        np.testing.assert_allclose(aux_b[k], aux_d[k], rtol=1e-12, atol=1e-14, err_msg=k)
    for a, ref in zip(jax.tree.leaves(grads_b), jax.tree.leaves(grads_d), strict=True):
        np.testing.assert_allclose(a, ref, rtol=1e-10, atol=1e-12)


def test_block_must_be_positive() -> None:
    za = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="block"):
        clip_loss_blocked(za, za, 0.1, block=0)
    assert _clip_blocked.BLOCKED_MIN_BATCH >= 2
