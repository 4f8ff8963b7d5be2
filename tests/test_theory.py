"""Tests of clipsim.theory: the exact statements E1-E7 of docs/theory.md.

Property tests draw random score matrices (float64) and check both sides of
E1, E2 and E5 row by row against plain NumPy references; Monte Carlo tests
compare exact formulas with simulations within 4 standard errors; one group
shows that the checks do fail when a side is perturbed or an assumption broken,
and that the bounds table's own ``holds`` flag turns False when a calculator it
calls is made wrong.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import special, stats

import clipsim.theory as th
from clipsim import data
from clipsim.theory import report
from tests.conftest import tiny_config

BATCH_SIZES = (2, 3, 8, 64)
SCORE_BOUNDS = (0.5, 1.0, 5.0)


@pytest.fixture(scope="module", autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


# --------------------------------------------------------------------------- helpers
def _tol(scores: np.ndarray, tau: float) -> float:
    """Rounding tolerance for float64 comparisons on the logit scale."""
    b = scores.shape[0]
    return 1e-11 * (1.0 + math.log(b) + 2.0 * float(np.abs(scores).max()) / tau)


def _within(lo, x, hi, tol) -> np.ndarray:
    return (np.asarray(lo) <= np.asarray(x) + tol) & (np.asarray(x) <= np.asarray(hi) + tol)


def _ref_row_losses(scores: np.ndarray, tau: float) -> np.ndarray:
    """Plain reference: l_i = logsumexp_j(s_ij / tau) - s_ii / tau."""
    return special.logsumexp(scores / tau, axis=1) - np.diag(scores) / tau


def _ref_margins(scores: np.ndarray) -> np.ndarray:
    b = scores.shape[0]
    off = np.where(np.eye(b, dtype=bool), -np.inf, scores)
    return np.diag(scores) - off.max(axis=1)


def _ref_miss(scores: np.ndarray, r: int) -> np.ndarray:
    b = scores.shape[0]
    out = np.zeros(b, dtype=bool)
    for i in range(b):
        count = sum(1 for j in range(b) if j != i and scores[i, j] >= scores[i, i])
        out[i] = count >= r
    return out


@st.composite
def score_matrices(draw):
    """(scores, M, tau): uniform, tied (coarse grid) or dominant-diagonal scores in [-M, M]."""
    b = draw(st.sampled_from(BATCH_SIZES))
    m = draw(st.sampled_from(SCORE_BOUNDS))
    tau = draw(st.floats(0.01, 2.0, allow_nan=False))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(("uniform", "ties", "diagonal")))
    rng = np.random.default_rng(seed)
    s = rng.uniform(-m, m, size=(b, b))
    if kind == "ties":
        s = np.round(2.0 * s / m) * (m / 2.0)  # values in {-M, -M/2, 0, M/2, M}: many ties
    elif kind == "diagonal":
        s[np.diag_indices(b)] = m  # every margin >= 0
    return s, m, tau


# --------------------------------------------------------------------------- E1
@settings(max_examples=60, deadline=None)
@given(score_matrices())
def test_e1_sandwich_and_range_hold_for_every_row(case):
    s, m, tau = case
    b = s.shape[0]
    tol = _tol(s, tau)
    rng = th.score_range_bounds(b, tau, m)
    for mat in (s, s.T):  # rows, then columns
        res = th.row_loss_sandwich(mat, tau)
        assert bool(np.all(res.holds))
        ref = _ref_row_losses(mat, tau)
        np.testing.assert_allclose(res.value, ref, rtol=1e-9, atol=tol)
        margin = _ref_margins(mat)
        np.testing.assert_allclose(res.margin, margin, rtol=0, atol=1e-12)
        lower = np.logaddexp(0.0, -margin / tau)
        upper = np.logaddexp(0.0, math.log(b - 1) - margin / tau)
        assert np.all(_within(lower, ref, upper, tol))
        assert np.all(_within(rng.lower, ref, rng.upper, tol))
        assert float(res.stderr) == 0.0


def test_e1_golden_values():
    b, tau = 5, 0.3
    res = th.row_loss_sandwich(jnp.zeros((b, b)), tau)
    np.testing.assert_allclose(res.value, math.log(b), rtol=1e-14)
    np.testing.assert_allclose(res.upper, math.log(b), rtol=1e-14)  # all negatives tie
    np.testing.assert_allclose(res.lower, math.log(2.0), rtol=1e-14)
    mu = 0.7
    res = th.row_loss_sandwich(mu * np.eye(b), tau)
    np.testing.assert_allclose(res.value, math.log1p((b - 1) * math.exp(-mu / tau)), rtol=1e-13)
    np.testing.assert_allclose(res.margin, mu)


def test_e1_tiny_temperature_is_finite():
    s = np.array([[1.0, -1.0, 0.9], [1.0, -1.0, 0.0], [0.3, 0.2, 1.0]])
    res = th.row_loss_sandwich(s, 1e-4)
    for x in (res.value, res.lower, res.upper):
        assert np.all(np.isfinite(x))
    assert bool(np.all(res.holds))
    np.testing.assert_allclose(res.value[1], 2.0 / 1e-4, rtol=1e-12)  # loss ~ -m / tau
    rng = th.score_range_bounds(64, 1e-4, 1.0)
    np.testing.assert_allclose(rng.upper, 2e4 + math.log(63), rtol=1e-12)
    assert 0.0 <= float(rng.lower) < 1e-300  # log(1 + 63 e^{-2e4}) underflows to 0


def test_e1_float32_tolerance_is_enough():
    rng = np.random.default_rng(0)
    with jax.enable_x64(False):
        for tau in (0.01, 0.1, 1.0):
            for i in range(8):  # B = 3: random, plus all-tied rows where the upper side is tight
                s = np.tanh(rng.normal(size=(3, 3))).astype(np.float32)
                if i == 0:
                    s[:] = 0.5
                res = th.row_loss_sandwich(s, tau)
                assert res.value.dtype == jnp.float32
                assert bool(np.all(res.holds))
                assert bool(th.saturation_check(s, tau).holds)
                assert bool(th.ranking_bound(s, tau, 1).holds)


def test_e1_jittable():
    s = np.random.default_rng(1).uniform(-1, 1, (8, 8))
    eager = th.row_loss_sandwich(s, 0.2)
    jitted = jax.jit(th.row_loss_sandwich)(s, 0.2)
    np.testing.assert_allclose(jitted.value, eager.value, rtol=1e-14)
    assert bool(jitted.holds.all())
    batched = jax.vmap(th.row_loss_sandwich, in_axes=(None, 0))(s, jnp.array([0.1, 1.0]))
    assert batched.value.shape == (2, 8)


# --------------------------------------------------------------------------- E2
@settings(max_examples=60, deadline=None)
@given(score_matrices(), st.integers(1, 70))
def test_e2_ranking_bound_holds(case, r):
    s, _, tau = case
    b = s.shape[0]
    res = th.ranking_bound(s, tau, r)
    assert bool(res.holds)
    miss = _ref_miss(s, r)
    np.testing.assert_array_equal(res.miss, miss)
    loss = _ref_row_losses(s, tau)
    tol = _tol(s, tau)
    # Per row: r negatives at or above the positive force l_i >= log(1 + r).
    assert np.all(loss[miss] >= math.log1p(r) - tol)
    np.testing.assert_allclose(res.value, miss.mean())
    np.testing.assert_allclose(res.bound, loss.mean() / math.log1p(r), rtol=1e-9, atol=tol)
    if r >= b:
        assert float(res.value) == 0.0


def test_e2_ties_count_against_the_positive():
    s = np.zeros((4, 4))  # every negative ties with the positive
    res = th.ranking_bound(s, 1.0, 3)
    assert float(res.value) == 1.0
    np.testing.assert_allclose(res.bound, 1.0, rtol=1e-14)  # log 4 / log(1 + 3): tight
    assert bool(res.holds)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from((2, 5, 10)), st.integers(1, 4),
       st.booleans())
def test_e2_zero_shot_bound_holds_for_every_temperature(seed, c, r, tied):
    rng = np.random.default_rng(seed)
    n = 200
    labels = rng.integers(0, c, n)
    scores = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[labels]
    if tied:
        scores = np.round(scores)
    taus = np.geomspace(0.01, 3.0, 12)
    res = th.zero_shot_ranking_bound(scores, labels, r, taus)
    assert bool(res.holds)
    true = scores[np.arange(n), labels]
    err = np.mean((scores >= true[:, None]).sum(1) - 1 >= r)
    np.testing.assert_allclose(res.value, err)
    per_tau = [np.mean(special.logsumexp((scores - true[:, None]) / t, axis=1)) / math.log1p(r)
               for t in taus]
    np.testing.assert_allclose(res.bounds, per_tau, rtol=1e-9)
    assert np.all(err <= np.asarray(per_tau) + 1e-9)  # the bound holds at every tau
    np.testing.assert_allclose(res.bound, min(per_tau), rtol=1e-12)
    assert float(res.best_temperature) == taus[int(np.argmin(per_tau))]


# --------------------------------------------------------------------------- E5
@settings(max_examples=60, deadline=None)
@given(score_matrices())
def test_e5_saturation_holds(case):
    s, _, tau = case
    res = th.saturation_check(s, tau)
    assert bool(res.holds)
    mu = min(_ref_margins(s).min(), _ref_margins(s.T).min())
    np.testing.assert_allclose(res.margin, mu, atol=1e-12)
    value = 0.5 * (_ref_row_losses(s, tau).mean() + _ref_row_losses(s.T, tau).mean())
    np.testing.assert_allclose(res.value, value, rtol=1e-9, atol=_tol(s, tau))
    b = s.shape[0]
    np.testing.assert_allclose(res.bound, np.logaddexp(0.0, math.log(b - 1) - mu / tau),
                               rtol=1e-12)


def test_e5_golden_and_margin_needed():
    b, tau, mu = 16, 0.1, 0.8
    res = th.saturation_check(mu * np.eye(b), tau)  # every negative exactly mu below: equality
    np.testing.assert_allclose(res.value, res.bound, rtol=1e-12)
    np.testing.assert_allclose(th.saturation_loss_bound(b, tau, mu),
                               math.log1p((b - 1) * math.exp(-mu / tau)), rtol=1e-14)
    for eps in (1e-3, 0.1, 0.5):
        suff = th.margin_needed(b, tau, eps)
        exact = th.margin_needed(b, tau, eps, exact=True)
        np.testing.assert_allclose(suff, tau * math.log((b - 1) / eps), rtol=1e-14)
        np.testing.assert_allclose(th.saturation_loss_bound(b, tau, exact), eps, rtol=1e-12)
        np.testing.assert_allclose(th.saturation_loss_bound(b, tau, suff), math.log1p(eps),
                                   rtol=1e-12)
        assert float(exact) <= float(suff)
    # Column margins can be smaller than row margins: mu takes both.
    s = np.array([[1.0, 0.0], [0.9, 1.0]])
    res = th.saturation_check(s, 0.5)
    np.testing.assert_allclose([res.row_margin, res.column_margin, res.margin], [0.1, 0.1, 0.1])
    s = np.array([[1.0, 0.95, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    res = th.saturation_check(s, 0.5)
    np.testing.assert_allclose([res.row_margin, res.column_margin], [0.05, 0.05])


# --------------------------------------------------------------------------- checks can fail
def test_checks_fail_when_a_side_is_perturbed():
    rng = np.random.default_rng(0)
    sandwich_fail = ranking_fail = saturation_fail = False
    for _ in range(20):
        b = 2
        s = rng.uniform(-1, 1, (b, b))
        tau = 0.3
        res = th.row_loss_sandwich(s, tau)
        tol = _tol(s, tau)
        assert np.all(_within(res.lower, res.value, res.upper, tol))
        # A loss shifted down by 0.05 leaves the sandwich (at B = 2 both sides equal l_i).
        sandwich_fail |= not np.all(_within(res.lower, res.value - 0.05, res.upper, tol))
        # Near-tight ranking case: row i ties t_i negatives, the rest score far below.
        # Half the loss no longer bounds the error.
        s8 = -np.ones((8, 8))
        np.fill_diagonal(s8, 0.0)
        for i, t in enumerate(rng.integers(0, 3, 8)):
            s8[i, [j for j in range(8) if j != i][:t]] = 0.0
        rk = th.ranking_bound(s8, 0.05, 1)
        assert bool(rk.holds)
        ranking_fail |= float(rk.value) > float(rk.bound) * 0.5 + tol
        # Near-tight saturation case (negatives just below positive - 0.5): the bound
        # computed with tau / 2 fails.
        s_pos = 0.5 * np.eye(8) + rng.uniform(-0.01, 0.0, (8, 8))
        sat = th.saturation_check(s_pos, tau)
        wrong = th.saturation_loss_bound(8, tau / 2, sat.margin)
        saturation_fail |= float(sat.value) > float(wrong) + tol
    assert sandwich_fail and ranking_fail and saturation_fail


def test_holds_flags_turn_false_when_assumptions_break():
    assert not th.clip_floor_check(0.5, 0.01, 1.0, 0.0).holds
    assert th.clip_floor_check(0.98, 0.01, 1.0, 0.0).holds  # within 3 standard errors
    assert not th.mean_loss_upper_check(2.0, 0.01, 1.0, 0.01).holds
    assert not th.shift_check(0.1, 0.5, 0.2).holds
    assert not th.concentration_check(np.full(10, 2.0), 1.0, 1.0, 0.1).holds
    # Deltas outside [-2M, 2M] break the profile bound's assumption and the bound itself.
    deltas = np.full(100, 3.0)
    pb = th.pair_statistics_upper_bound(deltas, np.zeros(100, bool), 0.1, 8, 1.0, 0.0)
    assert not bool(pb.within_range)
    assert not bool(pb.holds)


# --------------------------------------------------------------------------- E3
def _simulate_floor(pi: np.ndarray, b: int, num_batches: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    classes = rng.choice(len(pi), size=(num_batches, b), p=pi)
    counts = (classes[:, :, None] == classes[:, None, :]).sum(-1)
    per_batch = np.log(counts).mean(axis=1)
    return per_batch.mean(), per_batch.std(ddof=1) / math.sqrt(num_batches)


@pytest.mark.parametrize("k", [2, 5, 20])
@pytest.mark.parametrize("b", [4, 16, 64])
@pytest.mark.parametrize("uniform", [True, False])
def test_e3_onehot_floor_matches_simulation(k, b, uniform):
    if uniform:
        pi = np.full(k, 1.0 / k)
        exact = th.collision_floor_onehot(b, k)
    else:
        pi = np.random.default_rng(k).dirichlet(np.full(k, 0.5))
        pi = pi / pi.sum()
        exact = th.collision_floor_onehot(b, pi)
    assert exact.stderr == 0.0
    mean, se = _simulate_floor(pi, b, 3000, seed=100 * k + b)
    assert abs(exact.value - mean) <= 4 * se + 1e-12, (exact.value, mean, se)


def test_e3_floor_limits():
    for b in (2, 7, 128):
        assert math.isclose(th.collision_floor_onehot(b, 1).value, math.log(b), rel_tol=1e-12)
        assert math.isclose(th.collision_floor_onehot(b, [1.0, 0.0]).value, math.log(b),
                            rel_tol=1e-12)
    b = 32
    values = [th.collision_floor_onehot(b, k).value for k in (1, 2, 10, 100, 10**4, 10**6)]
    assert all(x > y for x, y in zip(values[:-1], values[1:], strict=True))
    assert values[-1] < 1e-4
    assert math.isclose(values[-1], (b - 1) * math.log(2) / 10**6, rel_tol=1e-3)
    # Binomial sum equals the explicit double sum.
    pi = np.array([0.2, 0.3, 0.5])
    direct = sum(p * sum(stats.binom.pmf(j, b - 1, p) * math.log1p(j) for j in range(b))
                 for p in pi)
    assert math.isclose(th.collision_floor_onehot(b, pi).value, direct, rel_tol=1e-12)


def test_e3_family_floors_match_monte_carlo():
    b, k = 16, 6
    key = jax.random.key(0)

    def numpy_rng(key):
        return np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())

    def bernoulli(key, n, p=0.3):
        return (numpy_rng(key).random((n, k)) < p).astype(float)

    def exactly_two(key, n):
        order = np.argsort(numpy_rng(key).random((n, k)), axis=1)
        return (order < 2).astype(float)

    @functools.partial(jax.jit, static_argnums=1)
    def onehot(key, n):  # a JAX sampler
        return jax.nn.one_hot(jax.random.randint(key, (n,), 0, k), k)

    def gaussian(key, n):
        return numpy_rng(key).normal(size=(n, k))

    cases = [
        (bernoulli, th.collision_floor("sparse", b, num_concepts=k, sparse_prob=0.3)),
        (exactly_two, th.collision_floor("sparse", b, num_concepts=k, sparse_active=2)),
        (onehot, th.collision_floor("onehot", b, num_concepts=k)),
        (gaussian, th.collision_floor("gaussian", b)),
    ]
    for i, (sampler, exact) in enumerate(cases):
        mc = th.collision_floor_monte_carlo(sampler, b, 1500, key=jax.random.fold_in(key, i))
        assert abs(mc.value - exact.value) <= 4 * mc.stderr + 1e-12, (i, mc, exact)
    assert cases[-1][1].value == 0.0
    pi = (0.1, 0.2, 0.7)
    assert th.collision_floor("onehot", b, class_probs=pi) == th.collision_floor_onehot(b, pi)


def _class_centres(cfg, key, dtype):
    del key
    return jnp.eye(cfg.num_classes, cfg.num_concepts, dtype=dtype)


def _class_latents(cfg, centres, key, labels):
    del cfg, key
    return centres[labels]


def _discrete_sample(cfg, centres, key, n):
    labels = jax.random.categorical(key, data.class_log_probs(cfg, dtype=centres.dtype),
                                    shape=(n,))
    return centres[labels], labels.astype(jnp.int32)


def _continuous_sample(cfg, centres, key, n):
    z, labels = _discrete_sample(cfg, centres, key, n)
    return z + 0.1 * jax.random.normal(jax.random.fold_in(key, 1), z.shape, z.dtype), labels


def _custom_family(name: str, discrete: bool) -> data.LatentFamily:
    """A family registered once per session: ``num_classes`` one-hot centres, no masses given."""
    try:
        return data.get_latent_family(name)
    except ValueError:
        sample = _discrete_sample if discrete else _continuous_sample
        return data.register_latent_family(data.LatentFamily(
            name, _class_centres, sample, _class_latents, discrete=discrete,
            classes_from="num_classes"))


_FAMILY_CASES = [
    ({"data.num_concepts": 5}, {"family": "onehot", "num_concepts": 5}),
    ({"data.num_concepts": 5, "data.class_probs": (0.1, 0.2, 0.3, 0.15, 0.25)},
     {"family": "onehot", "class_probs": (0.1, 0.2, 0.3, 0.15, 0.25)}),
    ({"data.family": "sparse", "data.num_concepts": 5, "data.sparse_prob": 0.3},
     {"family": "sparse", "num_concepts": 5, "sparse_prob": 0.3}),
    ({"data.family": "sparse", "data.num_concepts": 5, "data.sparse_active": 2},
     {"family": "sparse", "num_concepts": 5, "sparse_active": 2}),
]


@pytest.mark.parametrize("overrides,closed_form", _FAMILY_CASES)
def test_e3_family_floor_matches_the_closed_forms(overrides, closed_form):
    """Asked of the family object: exact from its value masses, Monte Carlo without them."""
    b = 16
    cfg = tiny_config(**overrides).data
    exact = th.collision_floor(closed_form.pop("family"), b, **closed_form)
    family = data.get_latent_family(cfg.family)
    from_masses = th.family_floor(family, cfg, b, key=jax.random.key(0))
    assert from_masses.stderr == 0.0
    assert from_masses.value == pytest.approx(exact.value, rel=1e-12)
    # The same family without its value masses: a Monte Carlo estimate of the same floor.
    anonymous = dataclasses.replace(family, name="anonymous", value_masses=None)
    mc = th.family_floor(anonymous, cfg, b, key=jax.random.key(1), num_batches=2000)
    assert mc.stderr > 0
    assert abs(mc.value - exact.value) <= 4 * mc.stderr, (cfg.family, mc, exact)


def test_e3_continuous_family_floor_is_zero():
    cfg = tiny_config(**{"data.family": "gaussian"}).data
    assert th.family_floor(data.get_latent_family("gaussian"), cfg, 16,
                           key=jax.random.key(9)) == th.CollisionFloor(0.0, 0.0)


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_e3_floor_of_a_registered_discrete_family_comes_from_its_collisions():
    """A custom discrete family gets a real floor (its collisions), not 0."""
    family = _custom_family("test_three_points", discrete=True)
    cfg = tiny_config(**{"data.family": family.name, "data.num_classes": 3})
    exact = th.collision_floor_onehot(cfg.train.batch_size, 3)  # uniform over 3 points
    floor = report.data_floor(cfg, key=jax.random.key(0))
    assert floor.stderr > 0
    assert abs(floor.value - exact.value) <= 4 * floor.stderr
    (e3,) = [r for r in report.bounds_table(cfg, num_batches=8) if r["statement"][:2] == "E3"]
    assert e3["bound"] > 1.0 and abs(e3["bound"] - exact.value) <= 0.05
    assert e3["holds"]
    # The same family declared continuous: collisions have probability 0, floor 0.
    cont = _custom_family("test_three_blobs", discrete=False)
    cfg_c = cfg.replace(**{"data.family": cont.name})
    assert report.data_floor(cfg_c, key=jax.random.key(0)) == th.CollisionFloor(0.0, 0.0)


def test_e3_collision_counts():
    z = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [1, 1]], dtype=float)
    np.testing.assert_array_equal(th.latent_collision_counts(z), [3, 1, 3, 3, 1])
    assert th.latent_collision_counts(np.stack([z, z])).shape == (2, 5)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from((3, 8)), st.sampled_from((1, 2, 4)),
       st.floats(0.01, 2.0), st.floats(0.1, 20.0))
def test_e3_floor_is_deterministic_when_texts_follow_latents(seed, b, k, tau, scale):
    """If equal latents give equal text embeddings, every row has l_i >= log n_i."""
    rng = np.random.default_rng(seed)
    z = np.eye(k)[rng.integers(0, k, b)]
    w = rng.normal(size=(k, 4))
    g = z @ w
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    f = scale * rng.normal(size=(b, 4))  # arbitrary image embeddings
    s = f @ g.T
    n = np.asarray(th.latent_collision_counts(z))
    loss = np.asarray(th.row_loss_sandwich(s, tau).value)
    assert np.all(loss >= np.log(n) - _tol(s, tau))
    assert loss.mean() >= np.log(n).mean() - _tol(s, tau)


def test_e3_floor_needs_texts_to_follow_latents():
    """With per-pair text embeddings the same batch can go below the floor."""
    rng = np.random.default_rng(0)
    z = np.eye(2)[[0, 0, 0, 1]]
    g = rng.normal(size=(4, 4))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    s = 20.0 * g @ g.T
    n = np.asarray(th.latent_collision_counts(z))
    loss = np.asarray(th.row_loss_sandwich(s, 1.0).value)
    assert loss.mean() < np.log(n).mean()


def _toy_model_batches(rng, num, b, k, sigma):
    """Unit-norm embeddings e_z + noise for images and texts; independent given z."""
    z = rng.integers(0, k, size=(num, b))
    f = np.eye(k)[z] + sigma * rng.normal(size=(num, b, k))
    g = np.eye(k)[z] + sigma * rng.normal(size=(num, b, k))
    f /= np.linalg.norm(f, axis=-1, keepdims=True)
    g /= np.linalg.norm(g, axis=-1, keepdims=True)
    return z, f, g


def test_e3_and_e4_bracket_the_expected_loss_of_a_toy_model():
    rng = np.random.default_rng(3)
    b, k, sigma, tau = 8, 4, 0.6, 0.2
    # Batch losses of a fixed model (E3 lower bound, E4 upper bounds).
    _, f, g = _toy_model_batches(rng, 3000, b, k, sigma)
    s = np.einsum("nid,njd->nij", f, g)
    diag = np.einsum("nii->ni", s)
    rows = special.logsumexp(s / tau, axis=2) - diag / tau
    cols = special.logsumexp(s / tau, axis=1) - diag / tau
    clip = 0.5 * (rows.mean(1) + cols.mean(1))
    mean_loss, se_loss = clip.mean(), clip.std(ddof=1) / math.sqrt(len(clip))
    floor = th.collision_floor_onehot(b, k)
    assert th.clip_floor_check(mean_loss, se_loss, floor.value, floor.stderr).holds
    row_means = rows.mean(1)
    row_loss, se_row = row_means.mean(), row_means.std(ddof=1) / math.sqrt(len(row_means))
    # Independent pairs: Delta = s(x, y') - s(x, y).
    z1, f1, g1 = _toy_model_batches(rng, 40000, 1, k, sigma)
    z2, _, g2 = _toy_model_batches(rng, 40000, 1, k, sigma)
    deltas = np.sum(f1 * g2, -1)[:, 0] - np.sum(f1 * g1, -1)[:, 0]
    same = (z1 == z2)[:, 0]
    pb = th.pair_statistics_upper_bound(deltas, same, tau, b, 1.0, 0.5)
    assert bool(pb.holds) and bool(pb.within_range)
    assert th.mean_loss_upper_check(row_loss, se_row, float(pb.jensen),
                                    float(pb.jensen_stderr)).holds
    best = th.best_profile_bound(deltas, same, tau, b, 1.0, np.linspace(0.0, 2.0, 21))
    assert th.mean_loss_upper_check(row_loss, se_row, float(best.best.profile),
                                    float(best.best.profile_stderr)).holds
    assert abs(float(pb.beta) - 1.0 / k) < 4 * math.sqrt(0.25 * 0.75 / 40000)


# --------------------------------------------------------------------------- E4
@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(SCORE_BOUNDS), st.floats(0.01, 2.0),
       st.sampled_from((0.0, 0.1, 0.5)), st.sampled_from(BATCH_SIZES))
def test_e4_profile_bound_dominates_jensen(seed, m, tau, collide, b):
    rng = np.random.default_rng(seed)
    n = 500
    same = rng.random(n) < collide
    deltas = np.where(same, rng.uniform(-m, 0.2 * m, n), rng.uniform(-2 * m, 2 * m, n))
    gammas = np.linspace(0.0, 2.5 * m, 6)
    prof = th.completeness_profile(deltas, same, gammas)
    np.testing.assert_allclose(prof.beta, same.mean())
    alpha = np.asarray(prof.alpha)
    assert np.all(np.diff(alpha) >= 0)  # non-decreasing in gamma
    assert np.all(alpha <= 1.0 - float(prof.beta) + 1e-15)
    np.testing.assert_allclose(alpha[-1], 1.0 - same.mean())  # gamma > 2M admits every Delta
    for gamma in gammas:
        pb = th.pair_statistics_upper_bound(deltas, same, tau, b, m, gamma)
        assert bool(pb.within_range)
        assert bool(pb.holds)
        # Plain reference of both sides.
        jensen = np.logaddexp(0.0, math.log(b - 1) + special.logsumexp(deltas / tau)
                              - math.log(n))
        np.testing.assert_allclose(pb.jensen, jensen, rtol=1e-10)
        close = ~same & (deltas > -gamma)
        terms = [special.logsumexp(np.where(same, deltas / tau, -np.inf)) - math.log(n)
                 if same.any() else -np.inf,
                 math.log(close.mean()) + 2 * m / tau if close.any() else -np.inf,
                 -gamma / tau]
        profile = np.logaddexp(0.0, math.log(b - 1) + special.logsumexp(terms))
        np.testing.assert_allclose(pb.profile, profile, rtol=1e-10)
        assert float(pb.jensen) <= float(pb.profile) + 1e-9 * (1 + 2 * m / tau)
    best = th.best_profile_bound(deltas, same, tau, b, m, gammas)
    assert float(best.best.profile) == float(np.min(best.profiles))
    assert float(best.best.gamma) == gammas[int(np.argmin(best.profiles))]


def test_e4_delta_method_stderr_is_calibrated():
    rng = np.random.default_rng(7)
    tau, b, n = 0.3, 16, 2000
    estimates, stderrs = [], []
    for _ in range(200):
        same = rng.random(n) < 0.1
        deltas = np.clip(rng.normal(-0.6, 0.4, n), -2.0, 2.0)
        pb = th.pair_statistics_upper_bound(deltas, same, tau, b, 1.0, 0.3)
        estimates.append([float(pb.jensen), float(pb.profile)])
        stderrs.append([float(pb.jensen_stderr), float(pb.profile_stderr)])
    ratio = np.std(estimates, axis=0, ddof=1) / np.mean(stderrs, axis=0)
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio


# --------------------------------------------------------------------------- E6
@pytest.mark.parametrize("delta", [0.05, 0.3])
def test_e6_deviation_frequency_at_most_delta(delta):
    rng = np.random.default_rng(11)
    reps, n, width = 4000, 40, 3.0
    draws = width * rng.integers(0, 2, size=(reps, n))  # Bernoulli(1/2) * R: the hardest case
    dev = np.abs(draws.mean(1) - width / 2)
    radius = float(th.concentration_radius(width, n, delta))
    freq = np.mean(dev > radius)
    assert freq <= delta + 3 * math.sqrt(delta * (1 - delta) / reps)
    # A radius counted in samples instead of batches (n * B) is too small: it fails.
    too_small = float(th.concentration_radius(width, n * 16, delta))
    assert np.mean(dev > too_small) > delta + 3 * math.sqrt(delta * (1 - delta) / reps)
    checks = [bool(th.concentration_check(row, width / 2, width, delta).holds)
              for row in draws[:50]]
    assert np.mean(checks) == pytest.approx(np.mean(dev[:50] <= radius))


def test_e6_radius_and_range():
    assert math.isclose(float(th.concentration_radius(2.0, 50, 0.1)),
                        2.0 * math.sqrt(math.log(20.0) / 100.0), rel_tol=1e-14)
    b, tau, m = 32, 0.05, 1.0
    rng = th.score_range_bounds(b, tau, m)
    r = float(th.batch_loss_range(b, tau, m))
    assert math.isclose(r, float(rng.upper - rng.lower), rel_tol=1e-14)
    assert abs(r - (2 * m / tau + math.log(b - 1))) < 1e-6
    # Random bounded batches stay inside the range.
    s = np.random.default_rng(0).uniform(-m, m, (b, b))
    loss = float(th.saturation_check(s, tau).value)
    assert float(rng.lower) <= loss <= float(rng.upper)


@pytest.mark.parametrize("n_a,n_b", [(20, 20), (10, 30)])
def test_e6_two_sample_radius_is_needed_for_two_means(n_a, n_b):
    """|mean_a - mean_b| of two independent means: r_a(delta/2) + r_b(delta/2) holds;
    for two equal halves the one-sample radius r_a(delta) fails more often than delta."""
    delta, width, reps = 0.01, 3.0, 20_000
    rng = np.random.default_rng(n_a + 7 * n_b)
    draws = width * rng.integers(0, 2, size=(reps, n_a + n_b))  # the hardest two-point law
    dev = np.abs(draws[:, :n_a].mean(1) - draws[:, n_a:].mean(1))
    radius = float(th.two_sample_radius(width, n_a, n_b, delta))
    assert math.isclose(radius, float(th.concentration_radius(width, n_a, delta / 2)
                                      + th.concentration_radius(width, n_b, delta / 2)),
                        rel_tol=1e-12)
    band = 3 * math.sqrt(delta * (1 - delta) / reps)
    assert np.mean(dev > radius) <= delta + band
    if n_a == n_b:  # two half-sample means against the one-sample radius: too small
        one_sample = float(th.concentration_radius(width, n_a, delta))
        assert np.mean(dev > one_sample) > delta + band


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_e6_row_of_the_table_is_a_valid_statement():
    cfg = tiny_config()
    rows = report.bounds_table(cfg, num_batches=16)
    (e6,) = [r for r in rows if r["statement"][:2] == "E6"]
    tau = cfg.objective.temperature
    expected = th.two_sample_radius(th.batch_loss_range(cfg.train.batch_size, tau, 1.0),
                                    4, 12, 0.05)
    assert e6["bound"] == pytest.approx(float(expected), rel=1e-6)
    assert "4 batches" in e6["statement"] and "N=12" in e6["statement"]
    assert e6["check"] == "probability" and e6["holds"]


# --------------------------------------------------------------------------- the table
def _wrong_floor(*args, **kwargs):
    return th.CollisionFloor(value=50.0, stderr=0.0)  # far above any loss of the tiny config


def _wrong_range(*args, **kwargs):
    return jnp.asarray(1e-9)  # a loss range that no deviation fits in


def _wrong_score_range(batch_size, temperature, score_bound):
    return th.ScoreRange(lower=jnp.asarray(0.0), upper=jnp.asarray(1e-3))


def _wrong_reweighting(per_class_error, pi_prime):
    return jnp.asarray(0.5) + jnp.asarray(1.0) * 0  # not the reweighted per-class error


@pytest.mark.parametrize("name,wrong,statement", [
    ("family_floor", _wrong_floor, "E3"),
    ("batch_loss_range", _wrong_range, "E6"),
    ("score_range_bounds", _wrong_score_range, "E1 l_i <= log(1+(B-1)e^(2M/tau))"),
    ("reweighted_error", _wrong_reweighting, "E7 err_D'"),
])
def test_holds_turns_false_when_a_calculator_is_wrong(monkeypatch, name, wrong, statement):
    cfg = tiny_config()
    before = [r for r in report.bounds_table(cfg, num_batches=8)
              if r["statement"].startswith(statement)]
    assert before and all(r["holds"] for r in before)
    monkeypatch.setattr(th, name, wrong)
    after = [r for r in report.bounds_table(cfg, num_batches=8)
             if r["statement"].startswith(statement)]
    assert after and not any(r["holds"] for r in after), after
    assert all(r["verdict"] == "FAILS" for r in after)
    assert "FAILS" in report.format_table(after)


def test_table_shows_the_tolerance_of_a_monte_carlo_row(monkeypatch):
    """A measured loss below its floor but within 3 s.e. reads 'holds within 3 s.e.'."""
    cfg = tiny_config()
    key = jax.random.key(5)
    (e3,) = [r for r in report.bounds_table(cfg, key=key, num_batches=8)
             if r["statement"][:2] == "E3"]
    assert e3["verdict"] == "holds" and e3["measured"] >= e3["bound"]
    loss_se = e3["mc_error"]  # the one-hot floor is exact, so this is the loss's s.e.
    assert loss_se > 0
    floor = th.CollisionFloor(value=e3["measured"] + 0.5 * loss_se, stderr=0.0)
    monkeypatch.setattr(th, "family_floor", lambda *a, **k: floor)
    (near,) = [r for r in report.bounds_table(cfg, key=key, num_batches=8)
               if r["statement"][:2] == "E3"]
    assert near["measured"] < near["bound"] and near["holds"]
    assert near["verdict"] == "holds within 3 s.e." and near["tolerance"] == "3 s.e."
    text = report.format_table([near])
    assert "holds within 3 s.e." in text and "yes" not in text
    exact_rows = [r for r in report.bounds_table(cfg, key=key, num_batches=8)
                  if r["check"] == "exact"]
    assert exact_rows and all(r["verdict"] == "holds" for r in exact_rows)


# --------------------------------------------------------------------------- E7
def test_e7_class_prior_shift_is_reweighting_exactly():
    rng = np.random.default_rng(5)
    c, per_class = 6, 50
    wrong = rng.random((c, per_class)) < rng.random((c, 1))  # item-level mistakes
    err_c = wrong.mean(1)
    pi, pi_prime = rng.dirichlet(np.ones(c)), rng.dirichlet(np.ones(c))
    # Error under D' summed item by item: each item of class c has mass pi'_c / N_c.
    direct = float(np.sum(pi_prime[:, None] / per_class * wrong))
    assert math.isclose(float(th.reweighted_error(err_c, pi_prime)), direct, rel_tol=1e-12)
    err_d = float(th.reweighted_error(err_c, pi))
    tv = float(th.tv_class_prior(pi, pi_prime))
    assert th.shift_check(err_d, direct, tv).holds


def test_e7_reweighted_error_of_a_threshold_classifier():
    rng = np.random.default_rng(2)
    means = np.array([-1.0, 0.5, 2.0])
    cuts = np.array([-np.inf, -0.25, 1.25, np.inf])  # predict c when x in [cut_c, cut_{c+1})
    err_c = 1 - (stats.norm.cdf(cuts[1:] - means) - stats.norm.cdf(cuts[:-1] - means))
    pi_prime = np.array([0.6, 0.1, 0.3])
    n = 200_000
    y = rng.choice(3, size=n, p=pi_prime)
    x = means[y] + rng.normal(size=n)
    pred = np.searchsorted(cuts, x, side="right") - 1
    mistakes = pred != y
    est, se = mistakes.mean(), mistakes.std(ddof=1) / math.sqrt(n)
    assert abs(float(th.reweighted_error(err_c, pi_prime)) - est) <= 4 * se


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from((2, 5, 12)))
@example(517, 2)  # every err_c = 1: the reweighted sum rounded to 1 + 2e-16
def test_e7_error_difference_at_most_tv(seed, c):
    rng = np.random.default_rng(seed)
    pi, pi_prime = rng.dirichlet(np.ones(c)), rng.dirichlet(np.ones(c))
    err_c = rng.random(c)
    if rng.random() < 0.3:
        err_c = (err_c > 0.5).astype(float)  # extreme classifier: the bound is tight
    res = th.shift_check(float(th.reweighted_error(err_c, pi)),
                         float(th.reweighted_error(err_c, pi_prime)),
                         float(th.tv_class_prior(pi, pi_prime)))
    assert res.holds
    assert res.value <= res.bound + 1e-12


@pytest.mark.parametrize("mu1,mu2,sigma", [(0.0, 0.0, 1.0), (0.0, 0.5, 1.0), (1.0, -1.0, 0.7),
                                           (0.0, 3.0, 0.5)])
def test_e7_tv_monte_carlo_matches_gaussian_closed_form(mu1, mu2, sigma):
    key = jax.random.key(int(10 * (mu1 + 3 * mu2 + sigma)) % 1000)
    x = mu1 + sigma * jax.random.normal(key, (50_000,))
    est = th.tv_monte_carlo(lambda v: jax.scipy.stats.norm.logpdf(v, mu1, sigma),
                            lambda v: jax.scipy.stats.norm.logpdf(v, mu2, sigma), x)
    exact = 2 * stats.norm.cdf(abs(mu1 - mu2) / (2 * sigma)) - 1
    assert abs(float(est.value) - exact) <= 4 * float(est.stderr) + 1e-12


def test_e7_gaussian_same_mean_upper_bound():
    rng = np.random.default_rng(4)
    d = 3
    for _ in range(4):
        a = rng.normal(size=(d, d))
        cov1 = a @ a.T + 0.5 * np.eye(d)
        cov2 = cov1 * rng.uniform(0.8, 1.25) + 0.1 * np.diag(rng.random(d))
        p, q = stats.multivariate_normal(cov=cov1), stats.multivariate_normal(cov=cov2)
        est = th.tv_monte_carlo(p.logpdf, q.logpdf, p.rvs(40_000, random_state=rng))
        bound = th.tv_gaussian_same_mean_upper(cov1, cov2)
        assert 0.0 <= bound <= 1.0
        assert float(est.value) <= bound + 4 * float(est.stderr)
        assert bound == pytest.approx(th.tv_gaussian_same_mean_upper(cov2, cov1))
    assert th.tv_gaussian_same_mean_upper(np.eye(2), np.eye(2)) == pytest.approx(0.0, abs=1e-12)
    assert th.tv_gaussian_same_mean_upper(1.0, 100.0) == 1.0
    # One dimension: variances 1 and s^2 give ||.||_F = |s^2 - 1| (or |1/s^2 - 1|).
    assert th.tv_gaussian_same_mean_upper(1.0, 1.1) == pytest.approx(1.5 * (1 - 1 / 1.1))


def test_e7_joint_tv_same_prior():
    pi = np.array([0.2, 0.8])
    assert float(th.tv_joint_same_prior(pi, [0.5, 0.25])) == pytest.approx(0.3)
    assert float(th.tv_class_prior([1.0, 0.0], [0.0, 1.0])) == 1.0


# --------------------------------------------------------------------------- validation
_S = np.zeros((3, 3))
_D = np.linspace(-1, 1, 10)
_SAME = np.zeros(10, bool)


def _onehot_sampler(key, n):
    return jax.nn.one_hot(jax.random.randint(key, (n,), 0, 3), 3)


@pytest.mark.parametrize("call,name", [
    (lambda: th.row_loss_sandwich(np.zeros((3, 4)), 0.1), "scores"),
    (lambda: th.row_loss_sandwich(np.zeros((1, 1)), 0.1), "scores"),
    (lambda: th.row_loss_sandwich(_S, 0.0), "temperature"),
    (lambda: th.row_loss_sandwich(_S, -1.0), "temperature"),
    (lambda: th.row_loss_sandwich(_S, float("nan")), "temperature"),
    (lambda: th.row_loss_sandwich(_S, np.ones(2)), "temperature"),
    (lambda: th.score_range_bounds(1, 0.1, 1.0), "batch_size"),
    (lambda: th.score_range_bounds(4, 0.1, 0.0), "score_bound"),
    (lambda: th.ranking_bound(_S, 0.1, 0), "r"),
    (lambda: th.ranking_bound(_S, 0.1, 1.5), "r"),
    (lambda: th.zero_shot_ranking_bound(np.zeros((4, 3)), np.array([0, 1, 2, 3]), 1, [0.1]),
     "labels"),
    (lambda: th.zero_shot_ranking_bound(np.zeros((4, 3)), np.zeros(4), 1, [0.1]), "labels"),
    (lambda: th.zero_shot_ranking_bound(np.zeros((4, 3)), np.zeros(3, int), 1, [0.1]), "labels"),
    (lambda: th.zero_shot_ranking_bound(np.zeros((4, 3)), np.zeros(4, int), 1, [0.1, 0.0]),
     "temperatures"),
    (lambda: th.zero_shot_ranking_bound(np.zeros((4, 1)), np.zeros(4, int), 1, [0.1]),
     "scores_classes"),
    (lambda: th.collision_floor_onehot(1, 3), "batch_size"),
    (lambda: th.collision_floor_onehot(4, 0), "probs"),
    (lambda: th.collision_floor_onehot(4, [0.5, 0.6]), "probs"),
    (lambda: th.collision_floor_onehot(4, [-0.1, 1.1]), "probs"),
    (lambda: th.collision_floor("cauchy", 4, num_concepts=3), "family"),
    (lambda: th.collision_floor("onehot", 4), "num_concepts"),
    (lambda: th.collision_floor("sparse", 4, num_concepts=5), "sparse_prob"),
    (lambda: th.collision_floor("sparse", 4, num_concepts=5, sparse_prob=1.0), "sparse_prob"),
    (lambda: th.collision_floor("sparse", 4, num_concepts=5, sparse_active=6), "sparse_active"),
    (lambda: th.collision_floor_monte_carlo(_onehot_sampler, 4, 1, key=jax.random.key(0)),
     "num_batches"),
    (lambda: th.clip_floor_check(1.0, -0.1, 0.5), "loss_stderr"),
    (lambda: th.completeness_profile(_D, _SAME.astype(float), [0.0]), "same_latent"),
    (lambda: th.completeness_profile(_D, _SAME[:5], [0.0]), "same_latent"),
    (lambda: th.completeness_profile(_D, _SAME, [-1.0]), "gammas"),
    (lambda: th.pair_statistics_upper_bound(_D, _SAME, 0.1, 4, 1.0, -1.0), "gamma"),
    (lambda: th.pair_statistics_upper_bound(_D, _SAME, 0.1, 4, 0.0, 1.0), "score_bound"),
    (lambda: th.pair_statistics_upper_bound(_D, _SAME, 0.1, 1, 1.0, 1.0), "batch_size"),
    (lambda: th.pair_statistics_upper_bound(_D, _SAME, 0.0, 4, 1.0, 1.0), "temperature"),
    (lambda: th.best_profile_bound(_D, _SAME, 0.1, 4, 1.0, []), "gammas"),
    (lambda: th.saturation_check(np.zeros((2, 3)), 0.1), "scores"),
    (lambda: th.saturation_loss_bound(4, 0.0, 1.0), "temperature"),
    (lambda: th.margin_needed(4, 0.1, 0.0), "eps"),
    (lambda: th.concentration_radius(0.0, 10, 0.1), "loss_range"),
    (lambda: th.concentration_radius(1.0, 0, 0.1), "n_batches"),
    (lambda: th.concentration_radius(1.0, 10, 0.0), "delta"),
    (lambda: th.concentration_radius(1.0, 10, 1.0), "delta"),
    (lambda: th.tv_class_prior([0.5, 0.6], [0.5, 0.5]), "pi"),
    (lambda: th.tv_class_prior([0.5, 0.5], [0.2, 0.3, 0.5]), "pi"),
    (lambda: th.reweighted_error([1.2, 0.0], [0.5, 0.5]), "per_class_error"),
    (lambda: th.shift_check(1.5, 0.2, 0.3), "err_d"),
    (lambda: th.tv_gaussian_same_mean_upper(np.eye(2), -np.eye(2)), "cov2"),
    (lambda: th.tv_gaussian_same_mean_upper(np.array([[1.0, 0.5], [0.0, 1.0]]), np.eye(2)),
     "cov1"),
    (lambda: th.tv_monte_carlo(lambda v: v, lambda v: v, np.zeros(1)), "samples_from_p"),
])
def test_invalid_arguments_are_named(call, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        call()


def test_error_message_states_allowed_range():
    with pytest.raises(ValueError, match=r"temperature = 0\.0 is invalid: must lie in \(0, inf\)"):
        th.row_loss_sandwich(_S, 0.0)
    with pytest.raises(ValueError, match=r"delta = 1\.5 is invalid: must lie in \(0, 1\)"):
        th.concentration_radius(1.0, 10, 1.5)
