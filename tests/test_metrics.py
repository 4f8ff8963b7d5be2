"""Tests of clipsim.metrics against plain NumPy references (loops, float64)."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import clipsim.metrics as M

# --------------------------------------------------------------------------------------
# Jitted entry points, reused across tests so each shape compiles once.
# --------------------------------------------------------------------------------------

KS = (1, 2, 5)
TOP_R = (1, 2, 3)

j_scores = jax.jit(M.scores)
j_pair_margins = jax.jit(M.pair_margins, static_argnames="atol")
j_margin_stats = jax.jit(M.margin_stats, static_argnames="atol")
j_ranks = jax.jit(M.zero_shot_ranks)
j_zs_loss = jax.jit(M.zero_shot_loss)
j_zs_metrics = jax.jit(functools.partial(M.zero_shot_metrics, top_r=TOP_R))
j_recall = jax.jit(functools.partial(M.retrieval_recall, ks=KS))
j_cosine = jax.jit(M.positive_cosine)
j_gap = jax.jit(M.modality_gap)
j_uniformity = jax.jit(M.uniformity)
j_ridge_r2 = jax.jit(M.ridge_r2, static_argnames=("train_frac",))
j_probe = jax.jit(M.linear_probe_accuracy, static_argnames=("num_classes", "train_frac"))
j_share = jax.jit(M.unique_weight_share)
j_bundle = jax.jit(functools.partial(M.embedding_metrics, ks=KS))


@pytest.fixture
def x64() -> Iterator[None]:
    with jax.enable_x64(True):
        yield


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> Iterator[np.dtype]:
    """Runs a test in float32 (default config) and in float64 (x64 enabled)."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield np.dtype(np.float64)
    else:
        yield np.dtype(np.float32)


def _tol(dtype: np.dtype) -> dict[str, float]:
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}


def _unnormalized(rng: np.random.Generator, n: int, d: int, dtype: np.dtype) -> np.ndarray:
    """Gaussian rows with widely varying norms."""
    x = rng.standard_normal((n, d)) * rng.uniform(0.2, 5.0, size=(n, 1))
    return x.astype(dtype)


# --------------------------------------------------------------------------------------
# Plain NumPy references (float64, explicit loops).
# --------------------------------------------------------------------------------------


def ref_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.float64(a), np.float64(b)
    out = np.zeros((a.shape[0], b.shape[0]))
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = sum(a[i, t] * b[j, t] for t in range(a.shape[1]))
    return out


def ref_same_latent(zi: np.ndarray, zj: np.ndarray, atol: float) -> bool:
    return all(abs(float(x) - float(y)) <= atol for x, y in zip(zi, zj, strict=True))


def ref_pair_margins(
    a: np.ndarray, b: np.ndarray, latents: np.ndarray, atol: float
) -> tuple[np.ndarray, np.ndarray]:
    s = ref_scores(a, b)
    n = s.shape[0]
    margins = np.full(n, np.nan)
    counts = np.zeros(n, dtype=int)
    for i in range(n):
        hardest = None
        for j in range(n):
            if j == i:
                continue
            if ref_same_latent(latents[i], latents[j], atol):
                counts[i] += 1
            elif hardest is None or s[i, j] > hardest:
                hardest = s[i, j]
        if hardest is not None:
            margins[i] = s[i, i] - hardest
    return margins, counts


def ref_margin_stats(
    a: np.ndarray, b: np.ndarray, latents: np.ndarray, atol: float
) -> dict[str, float]:
    m, u = ref_pair_margins(a, b, latents, atol)
    defined = [x for x in m if not math.isnan(x)]
    return {
        "margin_median": float(np.median(defined)),
        "margin_p05": float(np.percentile(defined, 5)),
        "margin_frac_nonpositive": sum(x <= 0 for x in defined) / len(defined),
        "unexpected_positive_rate": sum(c > 0 for c in u) / len(u),
        "unexpected_positive_mean": sum(u) / len(u),
    }


def ref_ranks(img: np.ndarray, cls: np.ndarray, labels: np.ndarray) -> np.ndarray:
    s = ref_scores(img, cls)
    out = np.zeros(len(labels), dtype=int)
    for i, y in enumerate(labels):
        for c in range(cls.shape[0]):
            if c != y and s[i, c] >= s[i, y]:
                out[i] += 1
    return out


def ref_zs_loss(img: np.ndarray, cls: np.ndarray, labels: np.ndarray, tau: float) -> np.ndarray:
    s = ref_scores(img, cls)
    out = np.zeros(len(labels))
    for i, y in enumerate(labels):
        total = sum(math.exp((s[i, c] - s[i, y]) / tau) for c in range(cls.shape[0]) if c != y)
        out[i] = math.log1p(total)
    return out


def ref_zs_metrics(
    img: np.ndarray, cls: np.ndarray, labels: np.ndarray, top_r: tuple[int, ...], tau: float
) -> dict[str, float]:
    ranks = ref_ranks(img, cls, labels)
    out: dict[str, float] = {}
    for r in top_r:
        # Not in the top r: the r highest scores (ties broken against the true
        # class) all belong to other classes.
        s = ref_scores(img, cls)
        misses = 0
        for i, y in enumerate(labels):
            order = sorted(range(cls.shape[0]), key=lambda c: (-s[i, c], c == y))
            misses += y not in order[:r]
        out[f"zs_top{r}_error"] = misses / len(labels)
    out["zs_accuracy"] = float(np.mean(ranks == 0))
    out["zs_loss"] = float(np.mean(ref_zs_loss(img, cls, labels, tau)))
    return out


def ref_recall(a: np.ndarray, b: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    s = ref_scores(a, b)
    n = s.shape[0]
    out: dict[str, float] = {}
    for name, mat in (("a2b", s), ("b2a", s.T)):
        for k in ks:
            hits = 0
            for i in range(n):
                beating = sum(1 for j in range(n) if j != i and mat[i, j] >= mat[i, i])
                hits += beating < k
            out[f"recall_{name}@{k}"] = hits / n
    return out


def ref_unit(x: np.ndarray) -> np.ndarray:
    x = np.float64(x)
    return np.array([row / math.sqrt(sum(v * v for v in row)) for row in x])


def ref_positive_cosine(a: np.ndarray, b: np.ndarray) -> float:
    ua, ub = ref_unit(a), ref_unit(b)
    return float(np.mean([float(ua[i] @ ub[i]) for i in range(len(ua))]))


def ref_modality_gap(a: np.ndarray, b: np.ndarray) -> float:
    diff = np.float64(a).mean(axis=0) - np.float64(b).mean(axis=0)
    return math.sqrt(sum(v * v for v in diff))


def ref_uniformity(x: np.ndarray) -> float:
    u = ref_unit(x)
    n = len(u)
    terms = [
        math.exp(-2.0 * float(np.sum((u[i] - u[j]) ** 2)))
        for i in range(n)
        for j in range(i + 1, n)
    ]
    return math.log(sum(terms) / len(terms))


def ref_ridge_predict(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, ridge: float
) -> np.ndarray:
    """Ridge with unpenalized intercept as one augmented least-squares problem."""
    x_train, y_train, x_test = np.float64(x_train), np.float64(y_train), np.float64(x_test)
    n, p = x_train.shape
    design = np.hstack([np.ones((n, 1)), x_train])
    penalty = np.hstack([np.zeros((p, 1)), math.sqrt(ridge * n) * np.eye(p)])
    coef, *_ = scipy.linalg.lstsq(
        np.vstack([design, penalty]), np.vstack([y_train, np.zeros((p, y_train.shape[1]))])
    )
    return np.hstack([np.ones((len(x_test), 1)), x_test]) @ coef


def ref_ridge_r2(x: np.ndarray, y: np.ndarray, ridge: float, train_frac: float) -> float:
    n_train = math.floor(train_frac * len(x))
    pred = ref_ridge_predict(x[:n_train], y[:n_train], x[n_train:], ridge)
    y_test = np.float64(y[n_train:])
    sse = sum(float(v) ** 2 for v in (y_test - pred).ravel())
    sst = sum(float(v) ** 2 for v in (y_test - y_test.mean(axis=0)).ravel())
    return 1.0 - sse / sst


def ref_probe(
    x: np.ndarray, labels: np.ndarray, num_classes: int, ridge: float, train_frac: float
) -> float:
    n_train = math.floor(train_frac * len(x))
    onehot = np.zeros((len(x), num_classes))
    for i, y in enumerate(labels):
        onehot[i, y] = 1.0
    pred = ref_ridge_predict(x[:n_train], onehot[:n_train], x[n_train:], ridge)
    return float(np.mean(np.argmax(pred, axis=1) == labels[n_train:]))


def ref_unique_share(w: np.ndarray, shared: np.ndarray, unique: np.ndarray) -> float:
    w = np.float64(w)
    e_shared = sum(float(v) ** 2 for v in (w @ shared).ravel())
    e_unique = sum(float(v) ** 2 for v in (w @ unique).ravel())
    return e_unique / (e_shared + e_unique)


def _central_fd(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of a scalar function, all coordinates in one call."""
    steps = eps * np.eye(x.size).reshape(x.size, *x.shape)
    values = jax.jit(jax.vmap(f))(np.stack([x + steps, x - steps]).reshape(-1, *x.shape))
    plus, minus = np.asarray(values).reshape(2, x.size)
    return ((plus - minus) / (2.0 * eps)).reshape(x.shape)


def _assert_dict_close(got: dict, want: dict, **tol: float) -> None:
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(np.asarray(got[key]), want[key], err_msg=key, **tol)


# --------------------------------------------------------------------------------------
# Scores and margins.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m", "d"), [(5, 7, 3), (12, 12, 6)])
def test_scores_match_reference(dtype: np.dtype, n: int, m: int, d: int) -> None:
    rng = np.random.default_rng(0)
    a, b = _unnormalized(rng, n, d, dtype), _unnormalized(rng, m, d, dtype)
    got = j_scores(a, b)
    assert got.shape == (n, m) and got.dtype == dtype
    np.testing.assert_allclose(got, ref_scores(a, b), **_tol(dtype))


def _margin_case(seed: int, n: int, d: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """Embeddings plus latents drawn from few values, so groups repeat."""
    rng = np.random.default_rng(seed)
    a, b = _unnormalized(rng, n, d, dtype), _unnormalized(rng, n, d, dtype)
    latents = rng.integers(0, 2, size=(n, 2)).astype(dtype)
    # Perturbations below atol keep a latent equal; above atol make it new.
    latents[0] = latents[1] + 1e-8
    latents[2] = latents[3] + np.array([0.0, 1e-2], dtype=dtype)
    return a, b, latents


@pytest.mark.parametrize(("n", "d"), [(10, 3), (24, 5)])
def test_pair_margins_match_reference(dtype: np.dtype, n: int, d: int) -> None:
    a, b, latents = _margin_case(1, n, d, dtype)
    margins, counts = j_pair_margins(a, b, latents)
    want_m, want_u = ref_pair_margins(a, b, latents, atol=1e-6)
    assert want_u.sum() > 0, "test data must contain same-latent negatives"
    assert margins.dtype == dtype and counts.dtype == jnp.int32
    np.testing.assert_allclose(margins, want_m, **_tol(dtype))
    np.testing.assert_array_equal(counts, want_u)


def test_pair_margins_nan_when_every_negative_shares_the_latent() -> None:
    # With atol, equality is not transitive: the middle row matches both ends,
    # the ends do not match each other.
    latents = np.array([[0.0], [0.6], [1.2]])
    a = np.eye(3, dtype=np.float32)
    margins, counts = j_pair_margins(a, a, latents.astype(np.float32), atol=1.0)
    want_m, want_u = ref_pair_margins(a, a, latents, atol=1.0)
    assert np.isnan(margins[1]) and np.isnan(want_m[1])
    np.testing.assert_allclose(margins, want_m)
    np.testing.assert_array_equal(counts, want_u)

    stats = j_margin_stats(a, a, latents.astype(np.float32), atol=1.0)
    _assert_dict_close(stats, ref_margin_stats(a, a, latents, atol=1.0), rtol=1e-6)

    same = np.zeros((4, 2), dtype=np.float32)
    stats = j_margin_stats(np.eye(4, 2, dtype=np.float32), np.eye(4, 2, dtype=np.float32), same)
    assert np.isnan(stats["margin_median"]) and np.isnan(stats["margin_p05"])
    assert np.isnan(stats["margin_frac_nonpositive"])
    assert stats["unexpected_positive_rate"] == 1.0
    assert stats["unexpected_positive_mean"] == 3.0


def test_latent_equality_includes_atol_boundary() -> None:
    # Differences exactly at atol (exact in binary) count as equal.
    latents = np.array([[0.0, 1.0], [0.5, 1.5], [0.0, 2.0]], dtype=np.float32)
    same = np.asarray(M.same_latent_mask(latents, atol=0.5))
    want = [[ref_same_latent(zi, zj, 0.5) for zj in latents] for zi in latents]
    np.testing.assert_array_equal(same, want)
    assert same[0, 1] and not same[0, 2]


@pytest.mark.parametrize(("n", "d"), [(10, 3), (24, 5)])
def test_margin_stats_match_reference(dtype: np.dtype, n: int, d: int) -> None:
    a, b, latents = _margin_case(2, n, d, dtype)
    got = j_margin_stats(a, b, latents)
    assert all(v.shape == () and v.dtype == dtype for v in got.values())
    _assert_dict_close(got, ref_margin_stats(a, b, latents, atol=1e-6), **_tol(dtype))


def test_margins_positive_for_aligned_distinct_pairs() -> None:
    a = np.eye(5, dtype=np.float32) * 2.0
    latents = np.arange(5, dtype=np.float32)[:, None]
    margins, counts = j_pair_margins(a, a, latents)
    np.testing.assert_allclose(margins, 4.0)
    np.testing.assert_array_equal(counts, 0)


# --------------------------------------------------------------------------------------
# Zero-shot.
# --------------------------------------------------------------------------------------


def _zero_shot_case(seed: int, n: int, num_classes: int, d: int, dtype: np.dtype):
    """Small-integer embeddings (exact scores) with duplicated classes: many ties."""
    rng = np.random.default_rng(seed)
    img = rng.integers(-1, 2, size=(n, d)).astype(dtype)
    img[0] = 0.0  # every class ties
    cls = rng.integers(-1, 2, size=(num_classes, d)).astype(dtype)
    cls[1] = cls[0]
    labels = rng.integers(0, num_classes, size=n).astype(np.int32)
    labels[1] = 0
    return img, cls, labels


@pytest.mark.parametrize(("n", "num_classes", "d"), [(9, 4, 3), (30, 6, 4)])
def test_zero_shot_ranks_match_reference_with_ties(
    dtype: np.dtype, n: int, num_classes: int, d: int
) -> None:
    img, cls, labels = _zero_shot_case(3, n, num_classes, d, dtype)
    got = j_ranks(img, cls, labels)
    assert got.dtype == jnp.int32
    want = ref_ranks(img, cls, labels)
    np.testing.assert_array_equal(got, want)
    assert got[0] == num_classes - 1  # all tied: ranked last
    assert got[1] >= 1  # the duplicate of class 0 ties with it


@pytest.mark.parametrize(("n", "num_classes", "d"), [(9, 4, 3), (30, 6, 4)])
def test_zero_shot_loss_and_metrics_match_reference(
    dtype: np.dtype, n: int, num_classes: int, d: int
) -> None:
    img, cls, labels = _zero_shot_case(4, n, num_classes, d, dtype)
    img = img + _unnormalized(np.random.default_rng(5), n, d, dtype) * dtype.type(0.3)
    for tau in (0.07, 1.0):
        loss = j_zs_loss(img, cls, labels, tau)
        assert loss.shape == (n,) and loss.dtype == dtype
        np.testing.assert_allclose(loss, ref_zs_loss(img, cls, labels, tau), **_tol(dtype))
        got = j_zs_metrics(img, cls, labels, temperature=tau)
        assert all(v.dtype == dtype for v in got.values())
        want = ref_zs_metrics(img, cls, labels, TOP_R, tau)
        _assert_dict_close(got, want, **_tol(dtype))


def test_zero_shot_loss_all_tied_is_log_num_classes() -> None:
    img = np.zeros((3, 2), dtype=np.float32)
    cls = np.ones((5, 2), dtype=np.float32)
    np.testing.assert_allclose(
        j_zs_loss(img, cls, np.array([0, 2, 4]), 0.5), math.log(5), rtol=1e-6
    )


def test_zero_shot_loss_is_stable_at_small_temperature() -> None:
    img = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    cls = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    labels = np.array([0, 0])
    loss = j_zs_loss(img, cls, labels, 1e-3)
    assert np.all(np.isfinite(loss))
    np.testing.assert_allclose(loss[0], math.log1p(math.exp(-1000.0)), atol=1e-30)
    np.testing.assert_allclose(loss[1], 1000.0, rtol=1e-6)


def test_zero_shot_loss_vmaps_over_temperature() -> None:
    img, cls, labels = _zero_shot_case(6, 9, 4, 3, np.dtype(np.float32))
    taus = np.array([0.05, 0.3, 2.0], dtype=np.float32)
    batched = jax.jit(jax.vmap(M.zero_shot_loss, in_axes=(None, None, None, 0)))(
        img, cls, labels, taus
    )
    for t, tau in enumerate(taus):
        np.testing.assert_allclose(batched[t], j_zs_loss(img, cls, labels, tau), rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    tau=st.floats(0.05, 20.0),
)
def test_zero_shot_ranking_bound_e2(seed: int, tau: float) -> None:
    """top-r error <= E[l_zs] / log(1 + r) for every tau (THEORY.md E2), with ties."""
    img, cls, labels = _zero_shot_case(seed, 9, 4, 3, np.dtype(np.float32))
    got = j_zs_metrics(img, cls, labels, temperature=tau)
    for r in TOP_R:
        assert float(got[f"zs_top{r}_error"]) <= float(got["zs_loss"]) / math.log1p(r) + 1e-6


def test_zero_shot_loss_gradient_matches_finite_differences(x64: None) -> None:
    rng = np.random.default_rng(7)
    img, cls = rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    labels = np.array([0, 1, 2, 3, 1])
    tau = 0.4

    def mean_loss(img: jnp.ndarray, cls: jnp.ndarray) -> jnp.ndarray:
        return jnp.mean(M.zero_shot_loss(img, cls, labels, tau))

    grads = jax.jit(jax.grad(mean_loss, argnums=(0, 1)))(img, cls)
    np.testing.assert_allclose(grads[0], _central_fd(lambda x: mean_loss(x, cls), img), rtol=1e-6)
    np.testing.assert_allclose(grads[1], _central_fd(lambda x: mean_loss(img, x), cls), rtol=1e-6)


# --------------------------------------------------------------------------------------
# Retrieval and alignment.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d"), [(8, 3), (20, 2)])
def test_retrieval_recall_matches_reference(dtype: np.dtype, n: int, d: int) -> None:
    rng = np.random.default_rng(8)
    a = _unnormalized(rng, n, d, dtype)
    b = a + _unnormalized(rng, n, d, dtype)
    got = j_recall(a, b)
    assert all(v.dtype == dtype for v in got.values())
    _assert_dict_close(got, ref_recall(a, b, KS), **_tol(dtype))
    # Integer embeddings: exact ties, which count as misses.
    ai = rng.integers(-1, 2, size=(n, d)).astype(dtype)
    bi = rng.integers(-1, 2, size=(n, d)).astype(dtype)
    _assert_dict_close(j_recall(ai, bi), ref_recall(ai, bi, KS), **_tol(dtype))


def test_retrieval_recall_all_tied_is_zero() -> None:
    a = np.ones((4, 2), dtype=np.float32)
    got = jax.jit(functools.partial(M.retrieval_recall, ks=(1, 3, 4)))(a, a)
    assert float(got["recall_a2b@3"]) == 0.0 and float(got["recall_b2a@4"]) == 1.0


@pytest.mark.parametrize(("n", "m", "d"), [(6, 6, 3), (17, 11, 5)])
def test_alignment_metrics_match_reference(dtype: np.dtype, n: int, m: int, d: int) -> None:
    rng = np.random.default_rng(9)
    a, b = _unnormalized(rng, n, d, dtype), _unnormalized(rng, m, d, dtype)
    tol = _tol(dtype)
    gap, unif = j_gap(a, b), j_uniformity(a)
    assert gap.dtype == dtype and unif.dtype == dtype
    np.testing.assert_allclose(gap, ref_modality_gap(a, b), **tol)
    np.testing.assert_allclose(unif, ref_uniformity(a), **tol)
    np.testing.assert_allclose(j_uniformity(b), ref_uniformity(b), **tol)
    bp = b[:1].repeat(n, axis=0) + _unnormalized(rng, n, d, dtype)
    cos = j_cosine(a, bp)
    assert cos.dtype == dtype
    np.testing.assert_allclose(cos, ref_positive_cosine(a, bp), **tol)


def test_alignment_extremes() -> None:
    a = np.array([[3.0, 0.0], [0.0, 0.5], [-2.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(j_cosine(a, 7.0 * a), 1.0, rtol=1e-6)
    np.testing.assert_allclose(j_cosine(a, -a), -1.0, rtol=1e-6)
    # A zero row is safe and has cosine 0.
    z = a.copy()
    z[1] = 0.0
    np.testing.assert_allclose(j_cosine(a, z), 2.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(j_uniformity(np.tile([[1.0, 2.0]], (4, 1))), 0.0, atol=1e-6)
    # Antipodal pair: ||u - v||^2 = 4.
    np.testing.assert_allclose(j_uniformity(np.array([[1.0, 0.0], [-5.0, 0.0]])), -8.0, rtol=1e-6)
    np.testing.assert_allclose(j_gap(a, a + np.array([3.0, 4.0])), 5.0, rtol=1e-6)


def test_uniformity_gradient_matches_finite_differences(x64: None) -> None:
    x = _unnormalized(np.random.default_rng(10), 6, 3, np.dtype(np.float64))
    grad = jax.jit(jax.grad(M.uniformity))(x)
    np.testing.assert_allclose(grad, _central_fd(M.uniformity, x), rtol=1e-6, atol=1e-9)


def test_embedding_metrics_bundle(dtype: np.dtype) -> None:
    a, b, latents = _margin_case(11, 10, 3, dtype)
    got = j_bundle(a, b, latents)
    want = dict(ref_margin_stats(a, b, latents, atol=1e-6))
    want.update(ref_recall(a, b, KS))
    want["positive_cosine"] = ref_positive_cosine(a, b)
    want["modality_gap"] = ref_modality_gap(a, b)
    want["uniformity_a"] = ref_uniformity(a)
    want["uniformity_b"] = ref_uniformity(b)
    assert all(v.shape == () and v.dtype == dtype for v in got.values())
    _assert_dict_close(got, want, **_tol(dtype))


# --------------------------------------------------------------------------------------
# Feature recovery and probes.
# --------------------------------------------------------------------------------------


def test_ridge_r2_matches_least_squares_reference(x64: None) -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((41, 6)) * rng.uniform(0.5, 3.0, size=6) + 2.0
    y = x @ rng.standard_normal((6, 3)) + 1.5 * rng.standard_normal((41, 3)) - 4.0
    for ridge, frac in ((0.3, 0.5), (1e-3, 0.7)):
        got = j_ridge_r2(x, y, ridge=ridge, train_frac=frac)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, ref_ridge_r2(x, y, ridge, frac), rtol=1e-9)
    np.testing.assert_allclose(
        j_ridge_r2(x, y[:, 0], ridge=0.3), ref_ridge_r2(x, y[:, :1], 0.3, 0.5), rtol=1e-9
    )


def test_ridge_r2_float32_matches_reference() -> None:
    rng = np.random.default_rng(13)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 2)) + rng.standard_normal((60, 2))).astype(np.float32)
    got = j_ridge_r2(x, y, ridge=0.1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref_ridge_r2(x, y, 0.1, 0.5), rtol=1e-4)


def test_ridge_r2_recovers_linear_and_rejects_independent_targets() -> None:
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2000, 5)).astype(np.float32)
    linear = (x @ rng.standard_normal((5, 3)) + 2.0).astype(np.float32)
    independent = rng.standard_normal((2000, 3)).astype(np.float32)
    assert float(j_ridge_r2(x, linear)) > 0.999
    assert abs(float(j_ridge_r2(x, independent))) < 0.1


def test_ridge_r2_nan_for_constant_or_empty_targets() -> None:
    x = np.random.default_rng(15).standard_normal((20, 3)).astype(np.float32)
    assert np.isnan(j_ridge_r2(x, np.zeros((20, 0), dtype=np.float32)))
    assert np.isnan(j_ridge_r2(x, np.full((20, 2), 3.7, dtype=np.float32)))


def test_linear_probe_separable_clusters_are_perfect() -> None:
    rng = np.random.default_rng(16)
    means = 10.0 * np.eye(3, 4)
    labels = rng.integers(0, 3, size=150).astype(np.int32)
    x = (means[labels] + rng.standard_normal((150, 4))).astype(np.float32)
    acc = j_probe(x, labels, num_classes=3)
    assert acc.dtype == np.float32
    assert float(acc) == 1.0


def test_linear_probe_random_labels_near_chance() -> None:
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2000, 5)).astype(np.float32)
    labels = rng.integers(0, 4, size=2000).astype(np.int32)
    assert abs(float(j_probe(x, labels, num_classes=4)) - 0.25) < 0.06


def test_linear_probe_matches_reference(x64: None) -> None:
    rng = np.random.default_rng(18)
    labels = rng.integers(0, 4, size=80)
    x = rng.standard_normal((80, 3)) + 0.8 * np.eye(4, 3)[labels]
    for ridge, frac in ((1e-3, 0.5), (0.5, 0.6)):
        got = j_probe(x, labels, num_classes=4, ridge=ridge, train_frac=frac)
        assert float(got) == pytest.approx(ref_probe(x, labels, 4, ridge, frac), abs=1e-12)


def test_unique_weight_share_matches_reference(dtype: np.dtype) -> None:
    rng = np.random.default_rng(19)
    w = rng.standard_normal((3, 7)).astype(dtype)
    shared, unique = rng.standard_normal((7, 2)), rng.standard_normal((7, 4))
    got = j_share(w, shared.astype(dtype), unique.astype(dtype))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref_unique_share(w, shared, unique), **_tol(dtype))


def test_unique_weight_share_ideal_and_worst() -> None:
    eye = np.eye(5, dtype=np.float32)
    shared, unique = eye[:, :2], eye[:, 2:]
    np.testing.assert_allclose(j_share(shared.T, shared, unique), 0.0)
    np.testing.assert_allclose(j_share(unique.T, shared, unique), 1.0)
    np.testing.assert_allclose(j_share(eye, shared, unique), 3.0 / 5.0, rtol=1e-6)
    np.testing.assert_allclose(j_share(eye, shared, eye[:, :0]), 0.0)


def test_principal_angles_hand_computed() -> None:
    theta = 0.3
    e = np.eye(3)
    # Encoder row rotated by theta inside the (e1, e2) plane; shared basis e1.
    w = np.array([math.cos(theta) * e[0] + math.sin(theta) * e[1]])
    np.testing.assert_allclose(M.principal_angles(w, e[:, :1]), [theta], rtol=1e-12)
    # Two angles, sorted descending: theta and 0.
    w2 = np.vstack([w, 4.0 * e[2]])
    angles = M.principal_angles(w2, e[:, [0, 2]])
    assert angles.shape == (2,)
    np.testing.assert_allclose(angles, [theta, 0.0], atol=1e-12)
    # Orthogonal subspaces.
    np.testing.assert_allclose(M.principal_angles(e[:1], e[:, 1:2]), [math.pi / 2])


def test_principal_angles_zero_when_row_space_contains_shared_basis() -> None:
    rng = np.random.default_rng(20)
    shared = rng.standard_normal((6, 2))
    w = (np.hstack([shared, rng.standard_normal((6, 2))]) @ rng.standard_normal((4, 4))).T
    angles = M.principal_angles(jnp.asarray(w, dtype=jnp.float32), shared)
    assert isinstance(angles, np.ndarray) and angles.shape == (2,)
    np.testing.assert_allclose(angles, 0.0, atol=1e-3)


def test_principal_angles_match_svd_reference() -> None:
    rng = np.random.default_rng(21)
    w, shared = rng.standard_normal((3, 8)), rng.standard_normal((8, 2))
    qw, _ = np.linalg.qr(w.T)
    qa, _ = np.linalg.qr(shared)
    cosines = np.linalg.svd(qw.T @ qa, compute_uv=False)
    want = np.sort(np.arccos(np.clip(cosines, -1.0, 1.0)))[::-1]
    np.testing.assert_allclose(M.principal_angles(w, shared), want, atol=1e-9)


# --------------------------------------------------------------------------------------
# Batching over runs.
# --------------------------------------------------------------------------------------


def test_vmap_over_runs_equals_loop() -> None:
    runs = [_margin_case(30 + r, 10, 3, np.dtype(np.float32)) for r in range(3)]
    a, b, latents = (np.stack(x) for x in zip(*runs, strict=True))
    batched = jax.jit(jax.vmap(M.margin_stats))(a, b, latents)
    for r in range(3):
        _assert_dict_close(
            {k: v[r] for k, v in batched.items()}, j_margin_stats(*runs[r]), rtol=1e-6
        )

    zs = [_zero_shot_case(40 + r, 9, 4, 3, np.dtype(np.float32)) for r in range(3)]
    img, cls, labels = (np.stack(x) for x in zip(*zs, strict=True))
    taus = np.array([0.1, 0.5, 2.0], dtype=np.float32)
    fn = jax.jit(
        jax.vmap(lambda i, c, y, t: M.zero_shot_metrics(i, c, y, top_r=TOP_R, temperature=t))
    )
    batched = fn(img, cls, labels, taus)
    for r in range(3):
        one = j_zs_metrics(*zs[r], temperature=taus[r])
        _assert_dict_close({k: v[r] for k, v in batched.items()}, one, rtol=1e-6)

    bundle = jax.jit(jax.vmap(functools.partial(M.embedding_metrics, ks=KS)))(a, b, latents)
    for r in range(3):
        _assert_dict_close({k: v[r] for k, v in bundle.items()}, j_bundle(*runs[r]), rtol=1e-6)


def test_vmap_recovery_over_runs() -> None:
    rng = np.random.default_rng(50)
    x = rng.standard_normal((3, 40, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 2)) + rng.standard_normal((3, 40, 2))).astype(np.float32)
    labels = rng.integers(0, 3, size=(3, 40)).astype(np.int32)
    r2 = jax.jit(jax.vmap(M.ridge_r2))(x, y)
    acc = jax.jit(jax.vmap(lambda f, c: M.linear_probe_accuracy(f, c, 3)))(x, labels)
    for r in range(3):
        np.testing.assert_allclose(r2[r], j_ridge_r2(x[r], y[r]), rtol=1e-5)
        np.testing.assert_allclose(acc[r], j_probe(x[r], labels[r], num_classes=3))


# --------------------------------------------------------------------------------------
# Input checks.
# --------------------------------------------------------------------------------------


def test_input_checks() -> None:
    a = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="same last dimension"):
        M.scores(a, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="same number of rows"):
        M.pair_margins(a, np.zeros((5, 3)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="rank 2"):
        M.margin_stats(a, a, np.zeros(4))
    with pytest.raises(TypeError, match="integer"):
        M.zero_shot_ranks(a, a, np.zeros(4))
    with pytest.raises(ValueError, match="top_r"):
        M.zero_shot_metrics(a, a, np.zeros(4, dtype=int), top_r=(0,), temperature=1.0)
    with pytest.raises(ValueError, match="ks"):
        M.retrieval_recall(a, a, ks=(1.5,))
    with pytest.raises(ValueError, match="train_frac"):
        M.ridge_r2(a, a, train_frac=1.0)
    with pytest.raises(ValueError, match="held-out"):
        M.linear_probe_accuracy(a[:1], np.zeros(1, dtype=int), 2)
    with pytest.raises(ValueError, match="at least 2 rows"):
        M.uniformity(a[:1])
    with pytest.raises(ValueError, match="rows"):
        M.unique_weight_share(a, np.zeros((2, 1)), np.zeros((3, 1)))


def test_input_errors_name_the_arrays_and_both_shapes() -> None:
    """One style (``clipsim.metrics._checks``): messages name the arrays and show both shapes."""
    a = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"emb_a and emb_b .* got \(4, 3\) and \(5, 3\)"):
        M.retrieval_recall(a, np.zeros((5, 3)), ks=(1,))
    with pytest.raises(ValueError, match=r"emb_a and emb_b .* got \(4, 3\) and \(4, 2\)"):
        M.positive_cosine(a, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"emb_a and latents .* got \(4, 3\) and \(6, 1\)"):
        M.margin_stats(a, a, np.zeros((6, 1)))
    with pytest.raises(ValueError, match=r"weight and shared_basis .* got \(4, 3\) and \(2, 1\)"):
        M.unique_weight_share(a, np.zeros((2, 1)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"weight and shared_basis .* got \(4, 3\) and \(2, 1\)"):
        M.principal_angles(a, np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"emb must have at least 2 rows, got shape \(1, 3\)"):
        M.uniformity(a[:1])
