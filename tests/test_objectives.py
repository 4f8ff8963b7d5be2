"""Tests of clipsim.objectives against plain NumPy references, golden values and properties.

The references below are written from THEORY.md section 3 with explicit loops in
float64; the JAX objectives must match them in value and in gradient (central
finite differences of the reference).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clipsim import config as config_mod
from clipsim import objectives
from clipsim.config import ConfigError, ObjectiveConfig

BUILTIN = ("clip", "clip_reg", "neg_reg", "both_reg", "square", "spectral", "align_only",
           "siglip", "cyclip")
CLIP_BASED = ("clip", "clip_reg", "neg_reg", "both_reg", "cyclip")
NO_TEMPERATURE = ("square", "spectral", "align_only")


@pytest.fixture
def x64() -> Iterator[None]:
    with jax.enable_x64(True):
        yield


# --------------------------------------------------------------------------- references
def ref_scores(za: np.ndarray, zb: np.ndarray) -> np.ndarray:
    b = za.shape[0]
    s = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            s[i, j] = sum(za[i, k] * zb[j, k] for k in range(za.shape[1]))
    return s


def ref_logsumexp(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def ref_log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def ref_tau(params: dict[str, float], cfg: ObjectiveConfig) -> float:
    if cfg.learn_temperature:
        p = params["log_inv_temperature"]
        return 1.0 / math.exp(min(p, math.log(1.0 / cfg.min_temperature)))
    return cfg.temperature


def ref_clip_rows(s: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    b = s.shape[0]
    row = np.array([ref_logsumexp([s[i, j] / tau for j in range(b)]) - s[i, i] / tau
                    for i in range(b)])
    col = np.array([ref_logsumexp([s[j, i] / tau for j in range(b)]) - s[i, i] / tau
                    for i in range(b)])
    return row, col


def ref_clip(za, zb, params, cfg) -> float:
    row, col = ref_clip_rows(ref_scores(za, zb), ref_tau(params, cfg))
    return float(sum(row[i] + col[i] for i in range(len(row))) / (2 * len(row)))


def ref_align(za, zb) -> float:
    b, d = za.shape
    return sum((za[i, k] - zb[i, k]) ** 2 for i in range(b) for k in range(d)) / b


def ref_neg_mean(s: np.ndarray) -> float:
    b = s.shape[0]
    return sum(s[i, j] for i in range(b) for j in range(b) if i != j) / (b * (b - 1))


def ref_clip_reg(za, zb, params, cfg) -> float:
    return ref_clip(za, zb, params, cfg) + cfg.reg_weight * ref_align(za, zb)


def ref_neg_reg(za, zb, params, cfg) -> float:
    return ref_clip(za, zb, params, cfg) + 2 * cfg.reg_weight * ref_neg_mean(ref_scores(za, zb))


def ref_both_reg(za, zb, params, cfg) -> float:
    s = ref_scores(za, zb)
    lam = cfg.reg_weight
    return ref_clip(za, zb, params, cfg) + lam * ref_align(za, zb) + 2 * lam * ref_neg_mean(s)


def ref_square(za, zb, params, cfg) -> float:
    s = ref_scores(za, zb)
    b = s.shape[0]
    pos = sum((s[i, i] - 1) ** 2 for i in range(b)) / b
    neg = sum(s[i, j] ** 2 for i in range(b) for j in range(b) if i != j) / (b * (b - 1))
    return pos + neg


def ref_spectral(za, zb, params, cfg) -> float:
    s = ref_scores(za, zb)
    b = s.shape[0]
    pos = -2 * sum(s[i, i] for i in range(b)) / b
    neg = sum(s[i, j] ** 2 for i in range(b) for j in range(b) if i != j) / (b * (b - 1))
    return pos + neg


def ref_align_only(za, zb, params, cfg) -> float:
    return ref_align(za, zb)


def ref_siglip(za, zb, params, cfg) -> float:
    s = ref_scores(za, zb)
    b = s.shape[0]
    scale, bias = math.exp(params["log_scale"]), params["bias"]
    total = 0.0
    for i in range(b):
        for j in range(b):
            t = 1.0 if i == j else -1.0
            total += ref_log_sigmoid(t * (s[i, j] * scale + bias))
    return -total / b


def ref_cyclip(za, zb, params, cfg) -> float:
    """CyCLIP's reduction: (1/B) sums of the squared asymmetries (mean over B^2 times B)."""
    s = ref_scores(za, zb)
    ga, gb = ref_scores(za, za), ref_scores(zb, zb)
    b = s.shape[0]
    cross = sum((s[i, j] - s[j, i]) ** 2 for i in range(b) for j in range(b)) / b
    inmod = sum((ga[i, j] - gb[i, j]) ** 2 for i in range(b) for j in range(b)) / b
    return ref_clip(za, zb, params, cfg) + cfg.reg_weight * cross + cfg.in_modal_weight * inmod


REFS: dict[str, Callable[..., float]] = {
    "clip": ref_clip,
    "clip_reg": ref_clip_reg,
    "neg_reg": ref_neg_reg,
    "both_reg": ref_both_reg,
    "square": ref_square,
    "spectral": ref_spectral,
    "align_only": ref_align_only,
    "siglip": ref_siglip,
    "cyclip": ref_cyclip,
}


def ref_stats(s: np.ndarray) -> dict[str, float]:
    b = s.shape[0]
    max_neg = [max(s[i, j] for j in range(b) if j != i) for i in range(b)]
    return {
        "pos_mean": sum(s[i, i] for i in range(b)) / b,
        "neg_mean": ref_neg_mean(s),
        "accuracy": sum(1.0 for i in range(b) if s[i, i] > max_neg[i]) / b,
        "margin": sum(s[i, i] - max_neg[i] for i in range(b)) / b,
    }


def fd_grad(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        g[idx] = (f(xp) - f(xm)) / (2 * eps)
    return g


# --------------------------------------------------------------------------- helpers
# Compilation dominates the run time, so every test evaluates all built-in objectives
# (value and gradient) in one jitted program, with configs passed as traced arguments,
# and the tests share a few shapes.
def _all_objectives(za, zb, params, cfgs):
    out = {}
    for name in BUILTIN:
        fn = objectives.get(name).loss_fn

        def value(a, b, p, fn=fn, cfg=cfgs[name]):
            return fn(a, b, p, cfg=cfg)

        out[name] = jax.value_and_grad(value, argnums=(0, 1, 2), has_aux=True)(
            za, zb, params[name])
    return out


all_objectives = jax.jit(_all_objectives)


def configs(**kwargs) -> dict[str, ObjectiveConfig]:
    return {name: ObjectiveConfig(name=name, **kwargs) for name in BUILTIN}


def init_params(cfgs: dict[str, ObjectiveConfig], shift: float = 0.0) -> dict[str, dict]:
    """Each objective's init_params, every entry moved by ``shift`` (as floats)."""
    return {name: {k: float(v) + shift for k, v in objectives.get(name).init_params(cfg).items()}
            for name, cfg in cfgs.items()}


def as_jax(params: dict[str, dict], dtype=None) -> dict[str, dict]:
    return {n: {k: jnp.asarray(v, dtype) for k, v in p.items()} for n, p in params.items()}


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


CASES = [
    # B, d, tau, learn_temperature, normalize, siglip (scale, bias), reg_weight, in_modal_weight
    (2, 4, 0.5, False, False, (10.0, -10.0), 0.3, 0.7),
    (5, 4, 0.1, True, True, (2.0, -1.0), 0.5, 0.2),
    (6, 3, 0.05, True, False, (5.0, 0.5), 1.0, 1.5),
]


def make_case(case_id: int):
    b, d, tau, learn, normalize, (scale, bias), lam, lam_in = CASES[case_id]
    rng = np.random.default_rng(case_id)
    za, zb = rng.normal(size=(b, d)), rng.normal(size=(b, d))
    if normalize:
        za, zb = unit_rows(za), unit_rows(zb)
    cfgs = configs(learn_temperature=learn, temperature=tau, min_temperature=0.01,
                   reg_weight=lam, in_modal_weight=lam_in, siglip_scale=scale, siglip_bias=bias)
    # learnable parameters moved off their initial values (the clamp stays inactive)
    return za, zb, init_params(cfgs, shift=0.1), cfgs


# --------------------------------------------------------------------------- reference parity
def check_against_reference(name: str, za, zb, p: dict, cfg: ObjectiveConfig, result,
                            msg: str) -> None:
    """Value and gradients (za, zb, params) against REFS[name] and its finite differences."""
    ref = REFS[name]
    (loss, aux), (gza, gzb, gparams) = result
    assert loss.dtype == jnp.float64, msg
    assert set(aux) == set(objectives.AUX_KEYS), msg
    np.testing.assert_allclose(float(loss), ref(za, zb, p, cfg), rtol=1e-10, atol=1e-12,
                               err_msg=msg)
    np.testing.assert_allclose(gza, fd_grad(lambda x: ref(x, zb, p, cfg), za),
                               rtol=1e-5, atol=1e-6, err_msg=msg)
    np.testing.assert_allclose(gzb, fd_grad(lambda x: ref(za, x, p, cfg), zb),
                               rtol=1e-5, atol=1e-6, err_msg=msg)
    assert set(gparams) == set(p), msg
    for key in p:
        def f(v: np.ndarray, key: str = key) -> float:
            return ref(za, zb, {**p, key: float(v[0])}, cfg)

        expected = fd_grad(f, np.array([p[key]]))[0]
        np.testing.assert_allclose(float(gparams[key]), expected, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{msg}, d/d{key}")


@pytest.mark.parametrize("case_id", range(len(CASES)))
def test_matches_reference_value_and_grad(x64, case_id: int) -> None:
    za, zb, params, cfgs = make_case(case_id)
    results = all_objectives(jnp.asarray(za), jnp.asarray(zb), as_jax(params), cfgs)
    for name in BUILTIN:
        check_against_reference(name, za, zb, params[name], cfgs[name], results[name],
                                f"objective {name}, case {case_id}")


def test_cyclip_matches_cyclips_training_code_formula(x64) -> None:
    """CyCLIP's src/train.py reduction: mean((I I^T - T T^T)^2) * B and mean((I T^T - T I^T)^2) * B.

    Written with NumPy matrix products exactly as that code reads (unit rows I, T; the
    logit scale divided back out), with the paper's lambda_cross = lambda_in = 0.25.
    """
    rng = np.random.default_rng(21)
    b = 6
    image = unit_rows(rng.normal(size=(b, 4)))
    text = unit_rows(image + 0.8 * rng.normal(size=(b, 4)))
    cfg = ObjectiveConfig(name="cyclip", temperature=0.07, reg_weight=0.25, in_modal_weight=0.25)
    logits = image @ text.T
    inmodal = np.mean(np.square(image @ image.T - text @ text.T)) * b
    crossmodal = np.mean(np.square(logits - logits.T)) * b
    row = [math.log(np.sum(np.exp((logits[i] - logits[i, i]) / 0.07))) for i in range(b)]
    col = [math.log(np.sum(np.exp((logits[:, j] - logits[j, j]) / 0.07))) for j in range(b)]
    expected = 0.5 * (np.mean(row) + np.mean(col)) + 0.25 * inmodal + 0.25 * crossmodal
    loss, _ = objectives.cyclip(jnp.asarray(image), jnp.asarray(text), {}, cfg=cfg)
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    # the cyclic part is B times the (1/B^2) mean: at B = 6 the extra terms are 6x those means
    clip_only, _ = objectives.clip(jnp.asarray(image), jnp.asarray(text), {}, cfg=cfg)
    extra = float(loss) - float(clip_only)
    means = 0.25 * np.mean(np.square(image @ image.T - text @ text.T)) + 0.25 * np.mean(
        np.square(logits - logits.T))
    assert extra == pytest.approx(b * means, rel=1e-10)
    assert extra > 0


def test_learned_parameters_are_present_and_used() -> None:
    learned = init_params(configs(learn_temperature=True))
    fixed = init_params(configs(learn_temperature=False))
    for name in BUILTIN:
        if name in CLIP_BASED:
            assert set(learned[name]) == {"log_inv_temperature"} and fixed[name] == {}
        elif name == "siglip":
            assert set(learned[name]) == set(fixed[name]) == {"log_scale", "bias"}
        else:
            assert learned[name] == fixed[name] == {}


def test_init_params_values() -> None:
    cfgs = configs(learn_temperature=True, temperature=0.07, siglip_scale=10.0, siglip_bias=-10.0)
    params = init_params(cfgs)
    for name in CLIP_BASED:
        assert params[name]["log_inv_temperature"] == pytest.approx(math.log(1 / 0.07), rel=1e-6)
    assert params["siglip"]["log_scale"] == pytest.approx(math.log(10.0), rel=1e-6)
    assert params["siglip"]["bias"] == pytest.approx(-10.0)


_rows = jax.jit(objectives.clip_loss_from_scores)


@pytest.mark.parametrize("case_id", [1, 2])
def test_clip_loss_from_scores_matches_reference(x64, case_id: int) -> None:
    za, zb, params, cfgs = make_case(case_id)
    s = ref_scores(za, zb)
    tau = ref_tau(params["clip"], cfgs["clip"])
    row, col = _rows(jnp.asarray(s), tau)
    ref_row, ref_col = ref_clip_rows(s, tau)
    np.testing.assert_allclose(row, ref_row, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(col, ref_col, rtol=1e-10, atol=1e-12)


_multimodal = jax.jit(jax.value_and_grad(
    lambda embs, p, cfg: objectives.multimodal_clip(embs, p, cfg=cfg), argnums=(0, 1),
    has_aux=True))


def test_multimodal_matches_reference(x64) -> None:
    rng = np.random.default_rng(7)
    embs = [unit_rows(rng.normal(size=(5, 4))) for _ in range(3)]
    cfg = ObjectiveConfig(learn_temperature=True, temperature=0.2)
    params = {"log_inv_temperature": math.log(1 / 0.2) + 0.2}

    def ref(es: list[np.ndarray]) -> float:
        pairs = list(itertools.combinations(range(len(es)), 2))
        return sum(ref_clip(es[a], es[b], params, cfg) for a, b in pairs) / len(pairs)

    (loss, aux), (gembs, gp) = _multimodal([jnp.asarray(e) for e in embs],
                                           as_jax({"p": params})["p"], cfg)
    np.testing.assert_allclose(float(loss), ref(embs), rtol=1e-10)
    for m in range(3):
        def f(x: np.ndarray, m: int = m) -> float:
            return ref([x if k == m else e for k, e in enumerate(embs)])

        np.testing.assert_allclose(gembs[m], fd_grad(f, embs[m]), rtol=1e-5, atol=1e-6)
    pairs = list(itertools.combinations(range(3), 2))
    expected_aux = {k: np.mean([ref_stats(ref_scores(embs[a], embs[b]))[k] for a, b in pairs])
                    for k in ("pos_mean", "neg_mean", "accuracy", "margin")}
    for key, value in expected_aux.items():
        np.testing.assert_allclose(float(aux[key]), value, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(aux["temperature"]), ref_tau(params, cfg), rtol=1e-10)
    assert set(aux) == set(objectives.AUX_KEYS)
    def f_p(v: np.ndarray) -> float:
        return sum(ref_clip(embs[a], embs[b], {"log_inv_temperature": float(v[0])}, cfg)
                   for a, b in pairs) / len(pairs)

    np.testing.assert_allclose(float(gp["log_inv_temperature"]),
                               fd_grad(f_p, np.array([params["log_inv_temperature"]]))[0],
                               rtol=1e-5, atol=1e-6)


def test_multimodal_two_modalities_is_clip(x64) -> None:
    za, zb, params, cfgs = make_case(1)
    p = as_jax(params)["clip"]
    (loss_m, aux_m), _ = _multimodal([jnp.asarray(za), jnp.asarray(zb)], p, cfgs["clip"])
    (loss_c, aux_c), _ = all_objectives(jnp.asarray(za), jnp.asarray(zb), as_jax(params),
                                        cfgs)["clip"]
    np.testing.assert_allclose(float(loss_m), float(loss_c), rtol=1e-12)
    for key in objectives.AUX_KEYS:
        np.testing.assert_allclose(float(aux_m[key]), float(aux_c[key]), rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2 modalities"):
        objectives.multimodal_clip([jnp.asarray(za)], p, cfg=cfgs["clip"])
    with pytest.raises(ValueError, match="same"):
        objectives.multimodal_clip([jnp.asarray(za), jnp.asarray(zb[:, :3])], p,
                                   cfg=cfgs["clip"])


# --------------------------------------------------------------------------- golden values
_clip = jax.jit(lambda za, zb, cfg: objectives.clip(za, zb, {}, cfg=cfg))


@pytest.mark.parametrize("b", [3, 6])
def test_clip_zero_scores_is_log_b(x64, b: int) -> None:
    eye = np.eye(2 * b)
    za, zb = eye[:b], eye[b:]  # orthogonal blocks: every score is 0
    for tau in (0.01, 0.1, 1.0):
        loss, _ = _clip(jnp.asarray(za), jnp.asarray(zb), ObjectiveConfig(temperature=tau))
        np.testing.assert_allclose(float(loss), math.log(b), rtol=1e-12)
    row, col = _rows(jnp.zeros((5, 5)), 0.1)
    np.testing.assert_allclose(row, np.full(5, math.log(5)), rtol=1e-12)
    np.testing.assert_allclose(col, np.full(5, math.log(5)), rtol=1e-12)


@pytest.mark.parametrize("b", [3, 6])
def test_clip_aligned_with_margin(x64, b: int) -> None:
    for mu, tau in itertools.product([0.2, 0.9, 1.1], [0.05, 0.5]):
        # unit u_i with Gram matrix 1 on the diagonal, 1 - mu off it (PD for mu < b/(b-1));
        # padded with zero columns to share the compiled shape of the zero-score test
        gram = np.full((b, b), 1.0 - mu) + mu * np.eye(b)
        u = np.hstack([np.linalg.cholesky(gram), np.zeros((b, b))])
        np.testing.assert_allclose(u @ u.T, gram, atol=1e-12)
        loss, aux = _clip(jnp.asarray(u), jnp.asarray(u), ObjectiveConfig(temperature=tau))
        expected = math.log(1 + (b - 1) * math.exp(-mu / tau))
        np.testing.assert_allclose(float(loss), expected, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(float(aux["margin"]), mu, rtol=1e-10)
        assert float(aux["accuracy"]) == 1.0


def test_hand_values(x64) -> None:
    b, bias = 2, -2.0  # shapes (2, 4) as in CASES[0]
    eye = jnp.eye(2 * b)
    cfgs = configs(reg_weight=0.4, siglip_scale=10.0, siglip_bias=bias)
    params = as_jax(init_params(cfgs))
    identity = all_objectives(eye[:b], eye[:b], params, cfgs)  # S = I
    zero = all_objectives(eye[:b], eye[b:], params, cfgs)  # S = 0
    assert float(identity["square"][0][0]) == pytest.approx(0.0, abs=1e-14)
    assert float(identity["spectral"][0][0]) == pytest.approx(-2.0, rel=1e-14)
    assert float(identity["align_only"][0][0]) == pytest.approx(0.0, abs=1e-14)
    assert float(zero["square"][0][0]) == pytest.approx(1.0, rel=1e-14)
    assert float(zero["spectral"][0][0]) == pytest.approx(0.0, abs=1e-14)
    assert float(zero["align_only"][0][0]) == pytest.approx(2.0, rel=1e-14)
    # siglip at S = 0: -log sig(b) - (B-1) log sig(-b)
    expected = -ref_log_sigmoid(bias) - (b - 1) * ref_log_sigmoid(-bias)
    (loss, aux), _ = zero["siglip"]
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    assert float(aux["temperature"]) == pytest.approx(0.1, rel=1e-12)
    # S = 0, unit vectors: clip_reg = both_reg = clip + 2 lambda, neg_reg = clip
    clip_zero = float(zero["clip"][0][0])
    assert clip_zero == pytest.approx(math.log(b), rel=1e-12)
    assert float(zero["clip_reg"][0][0]) == pytest.approx(clip_zero + 0.8, rel=1e-12)
    assert float(zero["neg_reg"][0][0]) == pytest.approx(clip_zero, rel=1e-12)
    assert float(zero["both_reg"][0][0]) == pytest.approx(clip_zero + 0.8, rel=1e-12)
    # cyclip at S = 0 with za, zb both orthonormal: extra terms vanish
    assert float(zero["cyclip"][0][0]) == pytest.approx(clip_zero, rel=1e-12)


# --------------------------------------------------------------------------- stability
@pytest.mark.parametrize("tau", [0.01, 0.001])
def test_float32_stable_at_small_temperature(tau: float) -> None:
    rng = np.random.default_rng(11)
    za = unit_rows(rng.normal(size=(16, 8))).astype(np.float32)
    zb = unit_rows(rng.normal(size=(16, 8))).astype(np.float32)
    noisy = unit_rows(za + 0.01 * rng.normal(size=za.shape)).astype(np.float32)
    # learned temperature starting at tau (above the floor): exercises the learned path
    cfgs = configs(temperature=tau, learn_temperature=True, min_temperature=tau / 2,
                   siglip_scale=1 / tau, siglip_bias=-10.0)
    params = init_params(cfgs)
    for other in (zb, za, noisy):  # random, identical, nearly aligned pairs
        results = all_objectives(jnp.asarray(za), jnp.asarray(other), as_jax(params, jnp.float32),
                                 cfgs)
        for name in ("clip", "siglip", "cyclip"):
            (loss, aux), grads = results[name]
            assert loss.dtype == jnp.float32
            assert np.isfinite(float(loss)), name
            for g in jax.tree.leaves(grads):
                assert np.all(np.isfinite(np.asarray(g))), name
            for value in aux.values():
                assert np.isfinite(float(value)), name
            # float32 against the float64 reference on the same inputs
            expected = REFS[name](za.astype(np.float64), other.astype(np.float64), params[name],
                                  cfgs[name])
            np.testing.assert_allclose(float(loss), expected, rtol=1e-4, atol=1e-4, err_msg=name)


# --------------------------------------------------------------------------- temperature clamp
def test_learned_temperature_clamp(x64) -> None:
    za, zb, _, _ = make_case(1)  # shapes and static fields of CASES[1]: no new compilation
    za, zb = jnp.asarray(za), jnp.asarray(zb)
    cfgs = configs(learn_temperature=True, temperature=0.1, min_temperature=0.02)
    p_max = math.log(1 / 0.02)
    params = init_params(cfgs)
    above = all_objectives(za, zb, as_jax({n: {**p, "log_inv_temperature": p_max + 1.5}
                                           if n in CLIP_BASED else p
                                           for n, p in params.items()}), cfgs)
    at_floor = all_objectives(za, zb, as_jax({n: {**p, "log_inv_temperature": p_max}
                                              if n in CLIP_BASED else p
                                              for n, p in params.items()}), cfgs)
    below = all_objectives(za, zb, as_jax({n: {**p, "log_inv_temperature": p_max - 0.5}
                                           if n in CLIP_BASED else p
                                           for n, p in params.items()}), cfgs)
    for name in CLIP_BASED:
        (loss, aux), (_, _, gp) = above[name]
        assert float(aux["temperature"]) == pytest.approx(0.02, rel=1e-12), name
        assert float(gp["log_inv_temperature"]) == 0.0, name
        (loss_floor, _), _ = at_floor[name]
        assert float(loss) == pytest.approx(float(loss_floor), rel=1e-12), name
        (_, aux), (_, _, gp) = below[name]
        assert float(aux["temperature"]) == pytest.approx(math.exp(0.5) * 0.02, rel=1e-12), name
        assert abs(float(gp["log_inv_temperature"])) > 1e-6, name
    tau = objectives.clip_temperature({"log_inv_temperature": jnp.asarray(p_max + 1.5)},
                                      cfgs["clip"])
    assert float(tau) == pytest.approx(0.02, rel=1e-12)
    # a clamped learned temperature gives the same loss as the fixed floor
    fixed, _ = _clip(za, zb, ObjectiveConfig(temperature=0.02))
    assert float(above["clip"][0][0]) == pytest.approx(float(fixed), rel=1e-12)


def test_missing_temperature_param_raises() -> None:
    cfg = ObjectiveConfig(learn_temperature=True)
    with pytest.raises(ValueError, match="log_inv_temperature"):
        objectives.clip(jnp.eye(3), jnp.eye(3), {}, cfg=cfg)


# --------------------------------------------------------------------------- aux
def test_aux_keys_identical_across_registered_objectives(x64) -> None:
    za, zb, params, cfgs = make_case(1)
    results = all_objectives(jnp.asarray(za), jnp.asarray(zb), as_jax(params), cfgs)
    assert set(results) == set(BUILTIN)
    for name, ((_, aux), _) in results.items():
        assert set(aux) == set(objectives.AUX_KEYS), name
        assert all(jnp.shape(v) == () for v in aux.values()), name


def test_aux_values_match_numpy(x64) -> None:
    # integer-valued embeddings: exact scores, so ties between s_ii and a negative are exact.
    # Rows of S: 0 ties (error, margin 0), 1 correct, 2 wrong, 3 ties, 4 wrong.
    za = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1]], float)
    zb = np.array([[2, 0, 0, 0], [0, 3, 0, 1], [1, 0, -1, 0], [2, 0, 0, 1], [0, 1, 1, 0]], float)
    s = ref_scores(za, zb)
    assert s[0, 0] == s[0, 3] == max(s[0, j] for j in range(5) if j != 0)
    _, _, params, cfgs = make_case(1)
    results = all_objectives(jnp.asarray(za), jnp.asarray(zb), as_jax(params), cfgs)
    expected = ref_stats(s)
    assert expected["accuracy"] == pytest.approx(0.2)
    for name, ((_, aux), _) in results.items():
        for key, value in expected.items():
            np.testing.assert_allclose(float(aux[key]), value, rtol=1e-12, atol=1e-14,
                                       err_msg=f"{name} {key}")
        if name in CLIP_BASED:
            tau = ref_tau(params[name], cfgs[name])
            np.testing.assert_allclose(float(aux["temperature"]), tau, rtol=1e-12)
        elif name == "siglip":
            np.testing.assert_allclose(float(aux["temperature"]),
                                       1 / math.exp(params[name]["log_scale"]), rtol=1e-12)
        else:
            assert math.isnan(float(aux["temperature"])), name


# --------------------------------------------------------------------------- traced configs
def _objective_values(za, zb, cfgs):
    out = {}
    for name in BUILTIN:
        obj = objectives.get(name)
        out[name] = obj.loss_fn(za, zb, obj.init_params(cfgs[name]), cfg=cfgs[name])[0]
    return out


def test_vmap_over_configs(x64) -> None:
    za, zb, _, _ = make_case(1)
    grid = [(0.1, 0.2, 0.3, 10.0, -10.0), (0.5, 1.0, 0.05, 3.0, 1.0)]
    cfg_list = [configs(learn_temperature=True, temperature=t, reg_weight=r, in_modal_weight=m,
                        siglip_scale=sc, siglip_bias=bi) for t, r, m, sc, bi in grid]
    stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *cfg_list)
    losses = jax.jit(jax.vmap(_objective_values, in_axes=(None, None, 0)))(
        jnp.asarray(za), jnp.asarray(zb), stacked)
    for k, cfgs in enumerate(cfg_list):
        params = init_params(cfgs)
        for name in BUILTIN:
            expected = REFS[name](za, zb, params[name], cfgs[name])
            np.testing.assert_allclose(float(losses[name][k]), expected, rtol=1e-10,
                                       err_msg=name)


# --------------------------------------------------------------------------- properties
@settings(max_examples=30, deadline=None)
@given(s=hnp.arrays(np.float64, (5, 5), elements=st.floats(-1, 1)),
       tau=st.sampled_from([0.02, 0.1, 1.0]))
def test_row_losses_within_margin_sandwich(s: np.ndarray, tau: float) -> None:
    # THEORY.md E1: log(1 + exp(-m_i/tau)) <= l_i <= log(1 + (B-1) exp(-m_i/tau))
    with jax.enable_x64(True):
        row, col = _rows(jnp.asarray(s), tau)
    for losses, mat in ((np.asarray(row), s), (np.asarray(col), s.T)):
        b = mat.shape[0]
        margins = np.array([mat[i, i] - max(mat[i, j] for j in range(b) if j != i)
                            for i in range(b)])
        lower = np.log1p(np.exp(-margins / tau))
        upper = np.log1p((b - 1) * np.exp(-margins / tau))
        assert np.all(losses >= 0)
        assert np.all(losses >= lower - 1e-9 * (1 + lower))
        assert np.all(losses <= upper + 1e-9 * (1 + upper))


def test_symmetric_under_swap_and_permutation(x64) -> None:
    za, zb, params, cfgs = make_case(1)
    params = as_jax(params)
    perm = np.random.default_rng(0).permutation(za.shape[0])
    base = all_objectives(jnp.asarray(za), jnp.asarray(zb), params, cfgs)
    swapped = all_objectives(jnp.asarray(zb), jnp.asarray(za), params, cfgs)
    permuted = all_objectives(jnp.asarray(za[perm]), jnp.asarray(zb[perm]), params, cfgs)
    for name in BUILTIN:
        loss = float(base[name][0][0])
        assert float(swapped[name][0][0]) == pytest.approx(loss, rel=1e-12), name
        assert float(permuted[name][0][0]) == pytest.approx(loss, rel=1e-12), name


# --------------------------------------------------------------------------- input checks
@pytest.mark.parametrize("shapes", [((4, 3), (4, 2)), ((4,), (4,)), ((1, 3), (1, 3)),
                                    ((4, 3), (5, 3))])
def test_bad_shapes_raise(shapes) -> None:
    za, zb = np.ones(shapes[0], np.float32), np.ones(shapes[1], np.float32)
    cfgs = configs()
    params = init_params(cfgs)
    for name in BUILTIN:
        with pytest.raises(ValueError):
            objectives.get(name).loss_fn(za, zb, params[name], cfg=cfgs[name])


def test_integer_embeddings_raise() -> None:
    with pytest.raises(ValueError, match="floating"):
        objectives.clip(np.ones((3, 2), np.int32), np.ones((3, 2), np.int32), {},
                        cfg=ObjectiveConfig())


# --------------------------------------------------------------------------- registry
@pytest.fixture
def custom_objective() -> Iterator[str]:
    name = "test_custom_objective"

    def loss_fn(za, zb, params, *, cfg):
        scores = za @ zb.T
        return jnp.mean((za - zb) ** 2) * params["w"], objectives.batch_stats(scores)

    def init(cfg):
        return {"w": jnp.asarray(2.0)}

    objectives.register(name, loss_fn, init)
    yield name
    objectives.OBJECTIVES.unregister(name)


def test_register_and_get(custom_objective: str) -> None:
    obj = objectives.get(custom_objective)
    assert isinstance(obj, objectives.Objective)
    assert obj.name == custom_objective
    assert objectives.OBJECTIVES[custom_objective] is obj
    assert custom_objective in config_mod.OBJECTIVES
    cfg = ObjectiveConfig(name=custom_objective)
    params = obj.init_params(cfg)
    loss, aux = obj(jnp.zeros((3, 2)), jnp.ones((3, 2)), params, cfg=cfg)
    assert float(loss) == pytest.approx(2.0)
    assert set(aux) == set(objectives.AUX_KEYS)
    with pytest.raises(ValueError, match="already registered"):
        objectives.register(custom_objective, obj.loss_fn)


def test_registry_teardown_removed_custom_name() -> None:
    assert "test_custom_objective" not in objectives.OBJECTIVES
    assert "test_custom_objective" not in config_mod.OBJECTIVES
    with pytest.raises(ConfigError):
        ObjectiveConfig(name="test_custom_objective")


def test_register_without_params_and_bad_arguments() -> None:
    name = "test_no_params_objective"
    try:
        obj = objectives.register(name, objectives.square)
        assert obj.init_params(ObjectiveConfig(name=name)) == {}
    finally:
        objectives.OBJECTIVES.unregister(name)
    with pytest.raises(ValueError, match="callable"):
        objectives.register("test_not_callable", 3)
    with pytest.raises(ValueError, match="non-empty"):
        objectives.register("", objectives.square)
    assert "test_not_callable" not in config_mod.OBJECTIVES


def test_unknown_name_lists_known_objectives() -> None:
    with pytest.raises(ValueError, match="unknown objective") as err:
        objectives.get("no_such_objective")
    for name in BUILTIN:
        assert repr(name) in str(err.value)


def test_builtin_names_match_config() -> None:
    assert set(BUILTIN) <= set(objectives.OBJECTIVES)
    assert set(BUILTIN) <= set(config_mod.OBJECTIVES)
