"""The exact statements of docs/theory.md measured on a model (trained or oracle).

``bounds_table(result)`` draws fresh population batches and zero-shot test sets
from the run's data, embeds them with the trained encoders (or the oracle
encoders), and evaluates every calculator of ``clipsim.theory`` on them. Each
row of the table is one statement: the measured side, the bound, whether it
holds, how it was checked, and the Monte Carlo error of the comparison (0 for
statements that hold exactly batch by batch).

Rows are checked in one of three ways (the row's ``check`` field):

* ``exact``: holds for every batch up to float rounding (E1, E2, E5);
* ``monte_carlo``: an inequality between estimates, accepted within
  ``n_sigma`` (3) combined standard errors (E3, E4, E7). When the measured
  value lies on the wrong side of its bound but within that tolerance, the
  row's ``verdict`` says so ("holds within 3 s.e."), never a bare "holds";
* ``probability``: holds with probability at least ``1 - delta`` (E6), so a
  single failure is not a bug by itself.

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
from clipsim.config import RunConfig, precision
from clipsim.data import (
    class_log_probs,
    get_latent_family,
    oracle_encoders,
    prompts,
    sample_pairs,
    sample_test_images,
)
from clipsim.models import normalize_rows
from clipsim.train.loop import STREAM_EVAL, TrainResult, embedding_functions, world_for

__all__ = ["bounds_table", "bound_samples", "shift_prior", "effective_temperature",
           "format_table", "data_floor", "DEFAULT_TEMPERATURE_GRID", "N_SIGMA"]

DEFAULT_TEMPERATURE_GRID = np.geomspace(1e-3, 10.0, 41)
"""Temperatures over which the zero-shot E2 bound is minimized."""

N_SIGMA = 3.0
"""Tolerance of the Monte Carlo rows, in combined standard errors."""


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


def _verdict(holds: bool, strictly: bool, check: str, n_sigma: float) -> str:
    if not holds:
        return "FAILS"
    if check == "monte_carlo" and not strictly:
        return f"holds within {n_sigma:g} s.e."
    return "holds"


def _row(statement: str, measured: Any, bound: Any, holds: Any, mc_error: Any = 0.0, *,
         check: str = "exact", direction: str = "<=", n_sigma: float = N_SIGMA) -> dict:
    """One table row; ``direction`` is how ``measured`` should compare with ``bound``."""
    measured, bound, holds = float(measured), float(bound), bool(np.all(holds))
    strictly = {"<=": measured <= bound, ">=": measured >= bound,
                "==": measured == bound}[direction]
    tolerance = {"exact": "rounding", "monte_carlo": f"{n_sigma:g} s.e.",
                 "probability": "chance"}[check]
    return {"statement": statement, "measured": measured, "bound": bound, "holds": holds,
            "mc_error": float(mc_error), "check": check, "tolerance": tolerance,
            "verdict": _verdict(holds, strictly, check, n_sigma)}


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
                      for w in sandwiches], direction=">="))
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
                     abs(shifted_err - reweighted) <= N_SIGMA * se + 1e-12, se,
                     check="monte_carlo", direction="=="))
    tv = float(theory.tv_class_prior(pi, pi_shift))
    check = theory.shift_check(err, shifted_err, tv, err_d_stderr=np.sqrt(err * (1 - err) / n),
                               err_d_prime_stderr=np.sqrt(shifted_err * (1 - shifted_err) / n),
                               n_sigma=N_SIGMA)
    rows.append(_row("E7 |err_D' - err_D| <= TV(D, D')", check.value, check.bound, check.holds,
                     check.stderr, check="monte_carlo"))
    return rows


def _log_prior(cfg: RunConfig) -> jax.Array:
    return class_log_probs(cfg.data)


def _monte_carlo_rows(s: dict, cfg: RunConfig, tau: float, m: float,
                      sandwiches: list, delta: float, floor_key: jax.Array) -> list[dict]:
    rows = []
    b = cfg.train.batch_size
    batch_losses = np.array([
        0.5 * sum(float(np.mean(v)) for v in objectives.clip_loss_from_scores(x, tau))
        for x in s["scores"]])
    mean_loss = float(batch_losses.mean())
    loss_se = float(batch_losses.std(ddof=1) / np.sqrt(len(batch_losses)))
    floor = data_floor(cfg, key=floor_key)
    check = theory.clip_floor_check(mean_loss, loss_se, floor.value, floor.stderr,
                                    n_sigma=N_SIGMA)
    rows.append(_row("E3 E[L_clip] >= E[log n_i]", mean_loss, check.bound, check.holds,
                     check.stderr, check="monte_carlo", direction=">="))
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
        c = theory.mean_loss_upper_check(row_mean, row_se, float(bound), float(bound_se),
                                         n_sigma=N_SIGMA)
        rows.append(_row(f"E4 E[l] <= {name} bound", row_mean, c.bound, c.holds, c.stderr,
                         check="monte_carlo"))
    rows.append(_concentration_row(batch_losses, b, tau, m, delta))
    return rows


def _concentration_row(batch_losses: np.ndarray, batch_size: int, tau: float, m: float,
                       delta: float) -> dict:
    """E6 for the fixed model: the mean of n batches against an independent estimate.

    The first quarter of the batches (n of them) gives the mean of E6; the other
    N = 3n batches give an independent estimate of the expectation. Each mean lies
    within its own Hoeffding radius of the expectation with probability at least
    ``1 - delta/2``, so by the union bound ``|mean_n - mean_N| <= r_n(delta/2) +
    r_N(delta/2)`` with probability at least ``1 - delta``.
    """
    n = max(1, len(batch_losses) // 4)
    first, rest = batch_losses[:n], batch_losses[n:]
    loss_range = theory.batch_loss_range(batch_size, tau, m)
    radius = float(theory.two_sample_radius(loss_range, n, len(rest), delta))
    deviation = abs(float(first.mean()) - float(rest.mean()))
    var = float(batch_losses.var(ddof=1))
    se = np.sqrt(var / n + var / len(rest))
    return _row(f"E6 |mean of {n} batches - E| <= r_n + r_N, N={len(rest)} others "
                f"(w.p. >= 1-{delta:g})", deviation, radius, deviation <= radius, se,
                check="probability")


def data_floor(cfg: RunConfig, *, key: jax.Array,
               num_batches: int | None = None) -> theory.CollisionFloor:
    """The E3 floor of a run's data, asked of its latent family object.

    Continuous families (``LatentFamily.discrete`` False) have floor 0; discrete
    ones (built-in or registered) get a Monte Carlo estimate over in-batch
    collision counts (:func:`clipsim.theory.family_floor`).

    Args:
        cfg: the run config (family, data fields and ``train.batch_size``).
        key: PRNG key of the Monte Carlo draw.
        num_batches: Monte Carlo batches; see :func:`clipsim.theory.family_floor`.

    Returns:
        A ``CollisionFloor`` (value and standard error).
    """
    family = get_latent_family(cfg.data.family)
    return theory.family_floor(family, cfg.data, cfg.train.batch_size, key=key,
                               num_batches=num_batches)


def bounds_table(result: TrainResult | RunConfig, *, key: jax.Array | None = None,
                 num_batches: int = 64, delta: float = 0.05) -> list[dict]:
    """Every E-statement measured on a trained run (or, given a config, its oracle).

    Args:
        result: a ``TrainResult``, or a ``RunConfig`` to measure the oracle encoders.
        key: PRNG key; defaults to the run's evaluation stream.
        num_batches: population batches drawn for the expectations.
        delta: confidence level of the E6 radius.

    Returns:
        A list of dicts with ``statement``, ``measured``, ``bound``, ``holds``,
        ``mc_error`` (Monte Carlo standard error of the comparison; 0 when exact),
        ``check`` (``exact``, ``monte_carlo`` or ``probability``), ``tolerance``
        (``rounding``, ``3 s.e.`` or ``chance``) and ``verdict`` (``holds``,
        ``holds within 3 s.e.`` when the measured value is on the wrong side of its
        bound but within the tolerance, or ``FAILS``).
    """
    if isinstance(num_batches, bool) or not isinstance(num_batches, (int, np.integer)) \
            or num_batches < 2:
        raise ValueError(f"num_batches = {num_batches!r} is invalid: must be an integer >= 2")
    if isinstance(result, TrainResult):
        cfg, params = result.config, result.params
        default_key = jax.random.fold_in(result.key, STREAM_EVAL)
    else:
        cfg, params = result, None
        default_key = jax.random.fold_in(jax.random.key(cfg.seed), STREAM_EVAL)
    key = default_key if key is None else key
    with precision(cfg.train.dtype):  # the run's own dtype, whatever x64 is outside
        s = bound_samples(cfg, params, key=jax.random.fold_in(key, 1), num_batches=num_batches)
        tau = float(effective_temperature(cfg, params))
        normalized = params is None or cfg.model.normalize
        m = 1.0 if normalized else float(np.abs(s["scores"]).max())
        rows, sandwiches = _exact_rows(s, tau, cfg.train.batch_size, m, cfg.eval.top_r)
        rows += _zero_shot_rows(s, cfg)
        rows += _monte_carlo_rows(s, cfg, tau, m, sandwiches, delta,
                                  jax.random.fold_in(key, 2))
    return rows


def format_table(rows: list[dict]) -> str:
    """The bounds table as aligned text, with each row's verdict and tolerance.

    Args:
        rows: the rows of :func:`bounds_table`.

    Returns:
        The table, one line per row: statement, measured side, bound, verdict
        (``holds``, ``holds within 3 s.e.`` or ``FAILS``), how the row is checked
        and the Monte Carlo error.
    """
    width = max(len(r["statement"]) for r in rows)
    verdicts = [r.get("verdict", "holds" if r["holds"] else "FAILS") for r in rows]
    vw = max(7, *(len(v) for v in verdicts))
    header = (f"{'statement':<{width}}  {'measured':>10} {'bound':>10}  {'verdict':<{vw}}  "
              f"{'check':<11} {'mc err':>8}")
    lines = [header, "-" * len(header)]
    for r, verdict in zip(rows, verdicts, strict=True):
        lines.append(f"{r['statement']:<{width}}  {r['measured']:>10.4f} {r['bound']:>10.4f}  "
                     f"{verdict:<{vw}}  {r.get('check', ''):<11} {r['mc_error']:>8.4f}")
    lines.append("check: exact = every batch, up to rounding; monte_carlo = within "
                 f"{N_SIGMA:g} combined s.e.; probability = fails with chance <= delta.")
    return "\n".join(lines)
