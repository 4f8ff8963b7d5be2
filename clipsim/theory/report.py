"""The E-statements of THEORY.md section 5 measured on a model (trained or oracle).

``bounds_table(result)`` draws fresh population batches and zero-shot test sets
from the run's data, embeds them with the trained encoders (or the oracle
encoders), and evaluates every calculator of ``clipsim.theory`` on them. Each
row of the table is one statement: the measured side, the bound, whether it
holds, and the Monte Carlo error of the comparison (0 for statements that hold
exactly batch by batch).

``clipsim bounds`` prints this table; ``clipsim train`` stores it in
``metrics.json``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from clipsim import objectives, theory
from clipsim.config import RunConfig
from clipsim.data import oracle_encoders, prompts, sample_pairs, sample_test_images
from clipsim.evaluation import embedding_functions
from clipsim.models import normalize_rows
from clipsim.train.loop import STREAM_EVAL, TrainResult, world_for

__all__ = ["bounds_table", "bound_samples", "shift_prior", "effective_temperature",
           "DEFAULT_TEMPERATURE_GRID"]

DEFAULT_TEMPERATURE_GRID = np.geomspace(1e-3, 10.0, 41)
"""Temperatures over which the zero-shot E2 bound is minimized."""


def effective_temperature(cfg: RunConfig, params: dict | None) -> jax.Array:
    """The temperature the run trained at: learned (clamped) or fixed.

    Args:
        cfg: the run config.
        params: trained parameters, or None (the oracle: the configured temperature).

    Returns:
        tau, a scalar array.
    """
    if params is not None and cfg.objective.learn_temperature:
        return objectives.clip_temperature(params["objective"], cfg.objective)
    return jnp.asarray(cfg.objective.temperature)


def shift_prior(cfg: RunConfig) -> tuple[float, ...]:
    """The shifted class prior used for E7: ``eval.test_class_probs``, else pi'_c ∝ c + 1.

    Args:
        cfg: the run config.

    Returns:
        The shifted prior pi', a tuple of C probabilities.
    """
    if cfg.eval.test_class_probs is not None:
        return tuple(cfg.eval.test_class_probs)
    c = cfg.data.num_zero_shot_classes
    ramp = np.arange(1, c + 1, dtype=float)
    return tuple((ramp / ramp.sum()).tolist())


@partial(jax.jit, static_argnames=("num_batches", "oracle", "shifted"))
def _samples(cfg: RunConfig, params: dict | None, key: jax.Array, *, num_batches: int,
             oracle: bool, shifted: tuple[float, ...]) -> dict[str, jax.Array]:
    world = world_for(cfg)
    if oracle:
        f, g = oracle_encoders(cfg.data, world, normalize=True)
        normalize = True
    else:
        f, g = embedding_functions(params, cfg)
        normalize = cfg.model.normalize
    b, n_test = cfg.train.batch_size, cfg.eval.num_samples
    k_pairs, k_test, k_shift = jax.random.split(key, 3)
    pairs = sample_pairs(cfg.data, world, key=k_pairs, n=num_batches * b)
    ea = f(pairs.x).reshape(num_batches, b, -1)
    eb = g(pairs.y).reshape(num_batches, b, -1)
    class_emb = jnp.mean(g(prompts(cfg.data, world)), axis=1)
    if normalize:
        class_emb = normalize_rows(class_emb)
    out = {
        "scores": jnp.einsum("nid,njd->nij", ea, eb),
        "latents": pairs.z.reshape(num_batches, b, -1),
    }
    for name, probs, k in (("test", None, k_test), ("shifted", shifted, k_shift)):
        test = sample_test_images(cfg.data, world, key=k, n=n_test, class_probs=probs)
        out[f"{name}_scores"] = f(test.x) @ class_emb.T
        out[f"{name}_labels"] = test.labels
    return out


def bound_samples(cfg: RunConfig, params: dict | None, *, key: jax.Array,
                  num_batches: int = 64) -> dict[str, np.ndarray]:
    """Score matrices of ``num_batches`` population batches and zero-shot score tables.

    Args:
        cfg: the run config.
        params: trained parameters, or None for the oracle encoders.
        key: PRNG key (use an evaluation stream).
        num_batches: number of batches of size ``train.batch_size``.

    Returns:
        ``scores`` (n, B, B), ``latents`` (n, B, k), ``test_scores`` (N, C) and
        ``test_labels`` (N,) under the training prior, ``shifted_scores`` and
        ``shifted_labels`` under ``shift_prior(cfg)``.
    """
    out = _samples(cfg, params, key, num_batches=num_batches, oracle=params is None,
                   shifted=shift_prior(cfg))
    return {k: np.asarray(v) for k, v in out.items()}


def _row(statement: str, measured: Any, bound: Any, holds: Any, mc_error: Any = 0.0) -> dict:
    return {"statement": statement, "measured": float(measured), "bound": float(bound),
            "holds": bool(np.all(holds)), "mc_error": float(mc_error)}


def _per_class_error(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    ranks = (scores >= scores[np.arange(len(labels)), labels][:, None]).sum(1) - 1
    wrong = (ranks >= 1).astype(float)
    counts = np.bincount(labels, minlength=num_classes)
    return np.bincount(labels, weights=wrong, minlength=num_classes) / np.maximum(counts, 1)


def _exact_rows(s: dict, tau: float, batch_size: int, m: float, top_r: tuple[int, ...]):
    rows: list[dict] = []
    sandwiches = [theory.row_loss_sandwich(x, tau) for x in s["scores"]]
    loss = np.mean([np.mean(w.value) for w in sandwiches])
    rows.append(_row("E1 l_i >= log(1+e^(-m_i/tau))", loss,
                     np.mean([np.mean(w.lower) for w in sandwiches]),
                     [bool(np.all(np.asarray(w.value) >= np.asarray(w.lower) - 1e-5))
                      for w in sandwiches]))
    rows.append(_row("E1 l_i <= log(1+(B-1)e^(-m_i/tau))", loss,
                     np.mean([np.mean(w.upper) for w in sandwiches]),
                     [bool(np.all(w.holds)) for w in sandwiches]))
    rng = theory.score_range_bounds(batch_size, tau, m)
    values = np.concatenate([np.asarray(w.value) for w in sandwiches])
    rows.append(_row("E1 l_i <= log(1+(B-1)e^(2M/tau))", values.max(), rng.upper,
                     values.max() <= float(rng.upper) * (1 + 1e-6) + 1e-6))
    for r in top_r:
        if r >= batch_size:
            continue
        checks = [theory.ranking_bound(x, tau, r) for x in s["scores"]]
        rows.append(_row(f"E2 P(pos not top-{r}) <= E[l]/log(1+{r})",
                         np.mean([c.value for c in checks]), np.mean([c.bound for c in checks]),
                         [bool(c.holds) for c in checks]))
    sats = [theory.saturation_check(x, tau) for x in s["scores"]]
    rows.append(_row("E5 L <= log(1+(B-1)e^(-mu/tau))", np.mean([c.value for c in sats]),
                     np.mean([c.bound for c in sats]), [bool(c.holds) for c in sats]))
    return rows, sandwiches


def _zero_shot_rows(s: dict, cfg: RunConfig) -> list[dict]:
    rows = []
    num_classes = cfg.data.num_zero_shot_classes
    for r in cfg.eval.top_r:
        if r >= num_classes:
            continue
        zs = theory.zero_shot_ranking_bound(s["test_scores"], s["test_labels"], r,
                                            DEFAULT_TEMPERATURE_GRID)
        rows.append(_row(f"E2 zero-shot top-{r} err <= min_tau E[l_zs]/log(1+{r})",
                         zs.value, zs.bound, zs.holds, zs.stderr))
    # E7: class-prior shift. Per-class errors measured under the training prior.
    pi = np.exp(np.asarray(_log_prior(cfg)))
    pi_shift = np.asarray(shift_prior(cfg))
    err_c = _per_class_error(s["test_scores"], s["test_labels"], num_classes)
    n = len(s["test_labels"])
    err = float(np.sum(pi * err_c))
    reweighted = float(theory.reweighted_error(err_c, pi_shift))
    shifted_wrong = _per_class_error(s["shifted_scores"], s["shifted_labels"], num_classes)
    shifted_counts = np.bincount(s["shifted_labels"], minlength=num_classes)
    shifted_err = float(np.sum(shifted_wrong * shifted_counts) / n)
    se = float(np.sqrt(max(shifted_err * (1 - shifted_err), 1e-12) / n)
               + np.sqrt(max(reweighted * (1 - reweighted), 1e-12) / n))
    rows.append(_row("E7 err_D' = sum_c pi'_c err_c", shifted_err, reweighted,
                     abs(shifted_err - reweighted) <= 3 * se + 1e-12, se))
    tv = float(theory.tv_class_prior(pi, pi_shift))
    check = theory.shift_check(err, shifted_err, tv, err_d_stderr=np.sqrt(err * (1 - err) / n),
                               err_d_prime_stderr=np.sqrt(shifted_err * (1 - shifted_err) / n))
    rows.append(_row("E7 |err_D' - err_D| <= TV(D, D')", check.value, check.bound, check.holds,
                     check.stderr))
    return rows


def _log_prior(cfg: RunConfig) -> jax.Array:
    from clipsim.data import class_log_probs

    return class_log_probs(cfg.data)


def _monte_carlo_rows(s: dict, cfg: RunConfig, tau: float, m: float,
                      sandwiches: list, delta: float) -> list[dict]:
    rows = []
    b = cfg.train.batch_size
    batch_losses = np.array([
        0.5 * sum(float(np.mean(v)) for v in objectives.clip_loss_from_scores(x, tau))
        for x in s["scores"]])
    mean_loss = float(batch_losses.mean())
    loss_se = float(batch_losses.std(ddof=1) / np.sqrt(len(batch_losses)))
    floor = _floor(cfg)
    check = theory.clip_floor_check(mean_loss, loss_se, floor.value, floor.stderr)
    rows.append(_row("E3 E[L_clip] >= E[log n_i]", mean_loss, check.bound, check.holds,
                     check.stderr))
    # E4 from independent pairs: pair 2j against pair 2j+1 within each batch.
    scores, lat = s["scores"], s["latents"]
    i = np.arange(0, b - 1, 2)
    deltas = (scores[:, i, i + 1] - scores[:, i, i]).ravel()
    same = np.all(np.abs(lat[:, i] - lat[:, i + 1]) < 1e-6, axis=-1).ravel()
    row_batch = np.array([float(np.mean(w.value)) for w in sandwiches])
    row_mean = float(row_batch.mean())
    row_se = float(row_batch.std(ddof=1) / np.sqrt(len(row_batch)))
    best = theory.best_profile_bound(deltas, same, tau, b, m, np.linspace(0.0, 2 * m, 21)).best
    for name, bound, bound_se in (("Jensen", best.jensen, best.jensen_stderr),
                                  ("profile", best.profile, best.profile_stderr)):
        c = theory.mean_loss_upper_check(row_mean, row_se, float(bound), float(bound_se))
        rows.append(_row(f"E4 E[l] <= {name} bound", row_mean, c.bound, c.holds, c.stderr))
    # E6: the mean of the first half of the batch losses against the mean of the second
    # half (a stand-in for the expectation, its own error reported as mc_error).
    half = len(batch_losses) // 2
    radius = theory.concentration_radius(theory.batch_loss_range(b, tau, m), half, delta)
    deviation = abs(batch_losses[:half].mean() - batch_losses[half:].mean())
    rows.append(_row(f"E6 |mean of {half} batches - E| <= radius (delta={delta})", deviation,
                     radius, deviation <= float(radius),
                     batch_losses[half:].std(ddof=1) / np.sqrt(len(batch_losses) - half)))
    return rows


def _floor(cfg: RunConfig) -> theory.CollisionFloor:
    d = cfg.data
    return theory.collision_floor(
        d.family if d.family in ("onehot", "sparse", "gaussian") else "gaussian",
        cfg.train.batch_size, num_concepts=d.num_concepts, class_probs=d.class_probs,
        sparse_prob=d.sparse_prob, sparse_active=d.sparse_active)


def bounds_table(result: TrainResult | RunConfig, *, key: jax.Array | None = None,
                 num_batches: int = 64, delta: float = 0.05) -> list[dict]:
    """Every E-statement measured on a trained run (or, given a config, its oracle).

    Args:
        result: a ``TrainResult``, or a ``RunConfig`` to measure the oracle encoders.
        key: PRNG key; defaults to the run's evaluation stream.
        num_batches: population batches drawn for the expectations.
        delta: confidence level of the E6 radius.

    Returns:
        A list of dicts with ``statement``, ``measured``, ``bound``, ``holds`` and
        ``mc_error`` (Monte Carlo standard error of the comparison; 0 when exact).
    """
    if isinstance(result, TrainResult):
        cfg, params = result.config, result.params
        default_key = jax.random.fold_in(result.key, STREAM_EVAL)
    else:
        cfg, params = result, None
        default_key = jax.random.fold_in(jax.random.key(cfg.seed), STREAM_EVAL)
    key = default_key if key is None else key
    s = bound_samples(cfg, params, key=jax.random.fold_in(key, 1), num_batches=num_batches)
    tau = float(effective_temperature(cfg, params))
    normalized = params is None or cfg.model.normalize
    m = 1.0 if normalized else float(np.abs(s["scores"]).max())
    rows, sandwiches = _exact_rows(s, tau, cfg.train.batch_size, m, cfg.eval.top_r)
    rows += _zero_shot_rows(s, cfg)
    rows += _monte_carlo_rows(s, cfg, tau, m, sandwiches, delta)
    return rows


def format_table(rows: list[dict]) -> str:
    """The bounds table as aligned text."""
    width = max(len(r["statement"]) for r in rows)
    header = f"{'statement':<{width}}  {'measured':>10} {'bound':>10} {'holds':>6} {'mc err':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['statement']:<{width}}  {r['measured']:>10.4f} {r['bound']:>10.4f} "
                     f"{'yes' if r['holds'] else 'NO':>6} {r['mc_error']:>8.4f}")
    return "\n".join(lines)
