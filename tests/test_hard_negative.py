"""``hardneg_reg`` against a NumPy reference (value, gradient); the algebra of ``neg_reg``."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clipsim import objectives
from clipsim.config import ObjectiveConfig


def _unit(rng: np.random.Generator, b: int, d: int) -> np.ndarray:
    z = rng.normal(size=(b, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def ref_hardneg_reg(za: np.ndarray, zb: np.ndarray, tau: float, lam: float) -> float:
    """CLIP + 2 lam (1/2B) sum_i (max_{j!=i} s_ij + max_{j!=i} s_ji), with explicit loops."""
    b = za.shape[0]
    s = [[float(np.dot(za[i], zb[j])) for j in range(b)] for i in range(b)]
    rows = [math.log(sum(math.exp(s[i][j] / tau) for j in range(b))) - s[i][i] / tau
            for i in range(b)]
    cols = [math.log(sum(math.exp(s[j][i] / tau) for j in range(b))) - s[i][i] / tau
            for i in range(b)]
    clip = (sum(rows) + sum(cols)) / (2 * b)
    hard_rows = [max(s[i][j] for j in range(b) if j != i) for i in range(b)]
    hard_cols = [max(s[j][i] for j in range(b) if j != i) for i in range(b)]
    return clip + 2 * lam * (sum(hard_rows) + sum(hard_cols)) / (2 * b)


def _loss(za, zb, tau: float, lam: float):
    cfg = ObjectiveConfig(name="hardneg_reg", temperature=tau, reg_weight=lam)
    obj = objectives.get("hardneg_reg")
    return obj.loss_fn(za, zb, obj.init_params(cfg), cfg=cfg)[0]


@pytest.mark.parametrize("b,d,tau,lam", [(2, 3, 0.1, 0.3), (7, 4, 0.5, 1.0), (16, 8, 0.07, 0.05)])
def test_hardneg_reg_matches_numpy_reference_value_and_gradient(b, d, tau, lam):
    rng = np.random.default_rng(b * 100 + d)
    za, zb = _unit(rng, b, d), _unit(rng, b, d)
    with jax.enable_x64(True):
        value = float(_loss(jnp.asarray(za), jnp.asarray(zb), tau, lam))
        grad = np.asarray(jax.grad(lambda a: _loss(a, jnp.asarray(zb), tau, lam))(
            jnp.asarray(za)))
    assert value == pytest.approx(ref_hardneg_reg(za, zb, tau, lam), rel=1e-10, abs=1e-10)
    eps = 1e-6
    fd = np.zeros_like(za)
    for i in range(b):
        for k in range(d):
            up, down = za.copy(), za.copy()
            up[i, k] += eps
            down[i, k] -= eps
            fd[i, k] = (ref_hardneg_reg(up, zb, tau, lam)
                        - ref_hardneg_reg(down, zb, tau, lam)) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)


def test_hardneg_reg_is_clip_plus_exactly_the_hardest_negative_term():
    rng = np.random.default_rng(0)
    za, zb = _unit(rng, 9, 5), _unit(rng, 9, 5)
    s = za @ zb.T
    np.fill_diagonal(s, -np.inf)
    hardest = 0.5 * (s.max(axis=1).mean() + s.max(axis=0).mean())
    clip_cfg = ObjectiveConfig(name="clip", temperature=0.2)
    clip = float(objectives.get("clip").loss_fn(jnp.asarray(za), jnp.asarray(zb),
                                                objectives.clip_init_params(clip_cfg),
                                                cfg=clip_cfg)[0])
    got = float(_loss(jnp.asarray(za), jnp.asarray(zb), 0.2, 0.7))
    assert got == pytest.approx(clip + 2 * 0.7 * hardest, rel=1e-5)
    # and it differs from neg_reg, which sees the mean negative only
    neg_cfg = ObjectiveConfig(name="neg_reg", temperature=0.2, reg_weight=0.7)
    neg = float(objectives.get("neg_reg").loss_fn(jnp.asarray(za), jnp.asarray(zb),
                                                  objectives.clip_init_params(neg_cfg),
                                                  cfg=neg_cfg)[0])
    assert abs(got - neg) > 1e-3


def test_mean_negative_score_is_alignment_of_modality_means_minus_positives():
    """neg_reg's identity: mean_{i != j} s_ij = (B^2 <mean a, mean b> - tr S) / (B(B-1))."""
    rng = np.random.default_rng(1)
    b = 11
    za, zb = _unit(rng, b, 6), _unit(rng, b, 6)
    s = za @ zb.T
    mean_negative = (s.sum() - np.trace(s)) / (b * (b - 1))
    via_means = (b * b * za.mean(0) @ zb.mean(0) - np.trace(s)) / (b * (b - 1))
    assert mean_negative == pytest.approx(via_means, rel=1e-12)
