"""T1: the links of the completeness chain hold for a fixed model on simulated batches."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clipsim.theory import (
    collision_floor_onehot,
    excess_budget,
    guaranteed_margin,
    margin_violation_bound,
    top_r_error_bound,
)


def _toy_batches(k=8, b=16, nb=4000, noise=0.35, seed=0):
    """Row losses, collision counts, margins and error ranks of a fixed noisy one-hot model."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=(nb, b))
    emb = np.eye(k)[labels]
    fa = emb + noise * rng.normal(size=emb.shape)
    fb = emb + noise * rng.normal(size=emb.shape)
    fa /= np.linalg.norm(fa, axis=-1, keepdims=True)
    fb /= np.linalg.norm(fb, axis=-1, keepdims=True)
    s = np.einsum("tid,tjd->tij", fa, fb)
    tau = 0.1
    diag = np.diagonal(s, axis1=1, axis2=2)
    loss = np.asarray(jax.nn.logsumexp(jnp.asarray(s / tau), axis=-1)) - diag / tau
    counts = (labels[:, :, None] == labels[:, None, :]).sum(-1)
    same = labels[:, :, None] == labels[:, None, :]
    group_max = np.where(same, s, -np.inf).max(-1)
    foreign_max = np.where(same, -np.inf, s).max(-1)
    margins = group_max - foreign_max + tau * np.log(counts)  # collision-adjusted margin
    off = np.where(np.eye(b, dtype=bool), -np.inf, s)
    above = (off >= diag[..., None]).sum(-1)
    return loss, counts, margins, above, tau, collision_floor_onehot(b, k).value


def test_margin_and_top_r_links_hold_for_a_fixed_model():
    loss, counts, margins, above, tau, floor = _toy_batches()
    eps = loss.mean() - floor
    assert loss.mean() >= floor  # E3
    single = counts == 1
    for mu in (-0.2, 0.0, 0.1, 0.3, 0.6):
        measured = np.mean(margins <= mu)
        assert measured <= float(margin_violation_bound(eps, mu, tau)) + 0.01, mu
    for r in (1, 2, 5):
        assert np.mean(single & (above >= r)) <= top_r_error_bound(eps, r) + 0.01


def test_guaranteed_margin_inverts_the_violation_bound():
    for eps, delta, tau in ((0.01, 0.1, 0.1), (0.05, 0.2, 0.5), (1e-4, 0.05, 0.02)):
        mu = guaranteed_margin(eps, delta, tau)
        assert math.isclose(float(margin_violation_bound(eps, mu, tau)), delta, rel_tol=1e-9)
        assert mu > 0 and math.isclose(mu, tau * math.log(delta / eps), rel_tol=0.2)
    assert guaranteed_margin(0.0, 0.1, 0.1) == math.inf
    assert guaranteed_margin(0.1, 0.1, 0.1) < 0  # eps >= delta log 2: no positive margin


def test_budget_and_errors_are_named():
    assert excess_budget(1.0, 1.2, 0.8) == pytest.approx(0.3)
    assert excess_budget(0.5, 0.5, 0.8) == 0.0
    assert top_r_error_bound(10.0, 1) == 1.0
    with pytest.raises(ValueError, match="delta"):
        guaranteed_margin(0.1, 1.5, 0.1)
    with pytest.raises(ValueError, match="temperature"):
        margin_violation_bound(0.1, 0.0, -1.0)
