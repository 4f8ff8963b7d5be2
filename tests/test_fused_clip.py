"""Parity of the CLIP loss's written-out gradient (custom VJP) with autodiff of the plain formula.

``clip_loss_from_scores`` computes its values with the plain logsumexp formula and,
from B = ``FUSED_GRAD_MIN_BATCH``, its gradient with a custom VJP (one fused pass
over the B x B matrix). These
tests hold both against ``_row_col_losses_plain`` traced by ``jax.grad``: values
bit for bit, gradients (scores and temperature, arbitrary cotangents) to rounding,
in float64 and float32, under ``vmap``, and through a short training run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clipsim.objectives import _clip


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _inputs(seed: int, b: int, d: int, dtype, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    za = rng.normal(size=(b, d))
    zb = za + 0.5 * rng.normal(size=(b, d))
    za /= np.linalg.norm(za, axis=1, keepdims=True)
    zb /= np.linalg.norm(zb, axis=1, keepdims=True)
    scores = scale * za @ zb.T
    g_row, g_col = rng.normal(size=b), rng.normal(size=b)
    return (jnp.asarray(scores, dtype), jnp.asarray(g_row, dtype), jnp.asarray(g_col, dtype))


def _weighted(fn):
    def f(scores, tau, g_row, g_col):
        row, col = fn(scores, tau)
        return jnp.sum(g_row * row) + jnp.sum(g_col * col)
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))


_fused = _weighted(_clip._row_col_losses)
_plain = _weighted(_clip._row_col_losses_plain)


@pytest.mark.parametrize("b,tau,scale", [(2, 0.5, 1.0), (7, 0.1, 1.0), (33, 0.01, 1.0),
                                         (16, 1.0, 3.0), (64, 0.05, 1.0)])
def test_forward_and_gradient_match_autodiff_x64(x64, b: int, tau: float, scale: float) -> None:
    scores, g_row, g_col = _inputs(b, b, 5, jnp.float64, scale)
    t = jnp.asarray(tau, jnp.float64)
    (v1, (ds1, dt1)), (v2, (ds2, dt2)) = (_fused(scores, t, g_row, g_col),
                                          _plain(scores, t, g_row, g_col))
    assert float(v1) == float(v2)
    np.testing.assert_allclose(ds1, ds2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dt1, dt2, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("b,tau", [(128, 0.02), (256, 0.1), (300, 1.0)])
def test_forward_and_gradient_match_autodiff_float32(b: int, tau: float) -> None:
    scores, g_row, g_col = _inputs(b, b, 16, jnp.float32)
    t = jnp.asarray(tau, jnp.float32)
    (v1, (ds1, dt1)), (v2, (ds2, dt2)) = (_fused(scores, t, g_row, g_col),
                                          _plain(scores, t, g_row, g_col))
    np.testing.assert_allclose(v1, v2, rtol=1e-6)
    scale = float(jnp.max(jnp.abs(ds2)))
    np.testing.assert_allclose(ds1, ds2, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(dt1, dt2, rtol=1e-4, atol=1e-5 * abs(float(dt2)) + 1e-6)


def test_public_function_uses_the_fused_gradient_from_the_threshold(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(_clip, "_row_col_losses",
                        lambda s, t: calls.append(s.shape[0]) or _clip._row_col_losses_plain(s, t))
    small = _clip.FUSED_GRAD_MIN_BATCH - 1
    _clip.clip_loss_from_scores(jnp.zeros((small, small)), 0.1)
    assert calls == []
    big = _clip.FUSED_GRAD_MIN_BATCH
    _clip.clip_loss_from_scores(jnp.zeros((big, big)), 0.1)
    assert calls == [big]


def test_public_function_values_unchanged_and_vmappable(x64, monkeypatch) -> None:
    monkeypatch.setattr(_clip, "FUSED_GRAD_MIN_BATCH", 2)
    scores = jnp.stack([_inputs(s, 9, 4, jnp.float64)[0] for s in range(3)])
    taus = jnp.asarray([0.05, 0.2, 1.0])
    rows, cols = jax.vmap(_clip.clip_loss_from_scores)(scores, taus)
    for k in range(3):
        r, c = _clip._row_col_losses_plain(scores[k], taus[k])
        np.testing.assert_array_equal(rows[k], r)
        np.testing.assert_array_equal(cols[k], c)

    def mean_loss(fn, s, t):
        row, col = fn(s, t)
        return 0.5 * (jnp.mean(row) + jnp.mean(col))

    g1 = jax.vmap(jax.grad(lambda s, t: mean_loss(_clip.clip_loss_from_scores, s, t),
                           argnums=(0, 1)))(scores, taus)
    g2 = jax.vmap(jax.grad(lambda s, t: mean_loss(_clip._row_col_losses_plain, s, t),
                           argnums=(0, 1)))(scores, taus)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_training_run_matches_plain_gradient(monkeypatch) -> None:
    """A short float32 training run with the fused gradient tracks the plain one within 1e-5."""
    import clipsim
    from clipsim.train import loop

    cfg = clipsim.RunConfig.from_dict({
        "data": {"num_concepts": 8, "image_dim": 24, "text_dim": 24},
        "model": {"embed_dim": 8},
        "objective": {"learn_temperature": True, "temperature": 0.1},
        "train": {"steps": 100, "batch_size": 32, "log_every": 10},
    })
    key = jax.random.key(cfg.seed)
    monkeypatch.setattr(_clip, "FUSED_GRAD_MIN_BATCH", 2)  # the fused gradient at B = 32
    fused = jax.jit(lambda c, k: loop.train_program(c, k))(cfg, key)
    monkeypatch.setattr(_clip, "_row_col_losses", _clip._row_col_losses_plain)
    plain = jax.jit(lambda c, k: loop.train_program(c, k))(cfg, key)
    for k in ("loss", "temperature", "accuracy"):
        np.testing.assert_allclose(fused.history[k], plain.history[k], rtol=0, atol=1e-5,
                                   err_msg=k)
    for a, b in zip(jax.tree.leaves(fused.params), jax.tree.leaves(plain.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
