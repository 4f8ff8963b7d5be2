"""clipsim.metrics.invariance against plain NumPy references (loops, float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clipsim.metrics.invariance import (
    conditional_score_variance,
    unique_energy_share,
    unique_invariance,
)


def _ref_variance(scores: np.ndarray, tau: float) -> float:
    """Mean over rows of the unbiased within-row variance, over tau^2, by loops."""
    total = 0.0
    for row in scores:
        mean = sum(row) / len(row)
        total += sum((s - mean) ** 2 for s in row) / (len(row) - 1)
    return total / len(scores) / tau**2


def _ref_invariance(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    m, r, d = a.shape
    scores = np.array([[sum(a[i, j, k] * b[i, j, k] for k in range(d)) for j in range(r)]
                       for i in range(m)])
    return _ref_variance(scores, tau)


def _ref_energy_share(w: np.ndarray, basis: np.ndarray, scale: float, x: np.ndarray) -> float:
    unique = scale**2 * sum(v**2 for v in (w @ basis).ravel())
    total = sum(sum(v**2 for v in w @ row) for row in x) / len(x)
    return unique / total


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_invariance_matches_numpy_reference(jit, tau):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 5, 4, 3))
    fn = jax.jit(unique_invariance) if jit else unique_invariance
    got = float(fn(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), temperature=tau))
    np.testing.assert_allclose(got, _ref_invariance(a, b, tau), rtol=1e-5)


def test_variance_is_zero_for_constant_rows_and_positive_otherwise():
    rng = np.random.default_rng(1)
    const = np.repeat(rng.normal(size=(6, 1)), 7, axis=1)
    assert float(conditional_score_variance(const, temperature=0.1)) < 1e-10
    noisy = const + 1e-3 * rng.normal(size=const.shape)
    got = float(conditional_score_variance(noisy, temperature=0.1))
    assert got > 0.0
    np.testing.assert_allclose(got, _ref_variance(noisy, 0.1), rtol=1e-4)


def test_variance_scales_as_one_over_tau_squared():
    scores = np.random.default_rng(2).normal(size=(4, 9))
    v1 = float(conditional_score_variance(scores, temperature=1.0))
    v2 = float(conditional_score_variance(scores, temperature=0.5))
    np.testing.assert_allclose(v2, 4.0 * v1, rtol=1e-6)


def test_oracle_like_encoder_ignoring_unique_block_scores_zero():
    """W orthogonal to A_xi: resampling xi at fixed z leaves every score unchanged."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(12, 7)))
    a_z, a_xi = q[:, :4], q[:, 4:]
    w = rng.normal(size=(5, 4)) @ a_z.T            # row space inside span(A_z)
    z = rng.normal(size=(6, 1, 4))
    xi = rng.normal(size=(6, 8, 3))
    x = z @ a_z.T + xi @ a_xi.T                    # (6, 8, 12)
    text = np.repeat(rng.normal(size=(6, 1, 5)), 8, axis=1)
    assert float(unique_invariance(x @ w.T, text, temperature=0.1)) < 1e-8
    leaky = w + 0.1 * rng.normal(size=(5, 3)) @ a_xi.T
    assert float(unique_invariance(x @ leaky.T, text, temperature=0.1)) > 1e-3


@pytest.mark.parametrize("jit", [False, True])
def test_energy_share_matches_numpy_reference(jit):
    rng = np.random.default_rng(4)
    w = rng.normal(size=(3, 6))
    basis = np.linalg.qr(rng.normal(size=(6, 2)))[0]
    x = rng.normal(size=(10, 6))
    fn = jax.jit(unique_energy_share) if jit else unique_energy_share
    got = float(fn(w.astype(np.float32), basis.astype(np.float32), 0.7, x.astype(np.float32)))
    np.testing.assert_allclose(got, _ref_energy_share(w, basis, 0.7, x), rtol=1e-5)


def test_energy_share_is_the_unique_part_of_the_output_energy():
    """With x = A_z z + A_xi xi and many samples, the share equals E||W A_xi xi||^2 / E||W x||^2."""
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(10, 6)))
    a_z, a_xi = q[:, :3], q[:, 3:]
    w = rng.normal(size=(4, 10))
    n, sigma = 200_000, 0.4
    x = rng.normal(size=(n, 3)) @ a_z.T + sigma * rng.normal(size=(n, 3)) @ a_xi.T
    expected = sigma**2 * np.sum((w @ a_xi) ** 2) / (
        np.sum((w @ a_z) ** 2) + sigma**2 * np.sum((w @ a_xi) ** 2))
    got = float(unique_energy_share(w, a_xi, sigma, x))
    np.testing.assert_allclose(got, expected, rtol=1e-2)


def test_errors_name_the_array():
    with pytest.raises(ValueError, match="at least 2 draws"):
        conditional_score_variance(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="emb_a must have rank 3"):
        unique_invariance(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="same"):
        unique_invariance(np.zeros((3, 2, 4)), np.zeros((3, 2, 5)))
    with pytest.raises(ValueError, match="inputs"):
        unique_energy_share(np.zeros((2, 4)), np.zeros((4, 1)), 1.0, np.zeros((5, 3)))
