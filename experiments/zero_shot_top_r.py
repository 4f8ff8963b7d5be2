"""P7: zero-shot transfer: pretraining excess loss against zero-shot error, and under shift.

Design (fixed before the full run)
----------------------------------
Claim. The paper's transfer argument: a model whose *pretraining* CLIP loss is
close to its optimum (here: to the E3 floor E[log n_i], the optimum as tau ->
0) has a small zero-shot top-r error; and since such a model ignores the
modality's unique features, a shift of those features at test time (sigma_xi
larger) degrades it little.

Metrics, per run (``evaluate_program``, the default evaluation, on the run's
evaluation key): the pretraining population loss ``eval_clip_loss`` (fresh
batches of the training size B) minus the exact E3 floor
(``clipsim.theory.family_floor``): the *excess*; the zero-shot top-1/3/5 errors
and the zero-shot loss; the unique share of the image encoder's weights. The
same evaluation with ``eval.test_image_unique_scale`` = 3 (sigma_xi tripled at
test time, same draws otherwise) gives the shifted error; the *degradation*
is shifted minus clean top-1 error.

Grid. Linear CLIP on one-hot data (K = 10, dx = dy = 32, unique features at
scale 1, d = 16, B = 64), checkpoints train.steps in {10, 50, 250, 1000}
(separate static groups: with a constant learning rate and step-indexed
batches a shorter run is exactly the start of a longer one), tau in {0.05,
0.1, 0.2}, caption omission in {0, 0.3}, noise in {0.1, 0.3}; 5 seeds.

Criterion. (i) Transfer: for every tau, across the 16 (checkpoint, omission,
noise) settings, the Spearman rank correlation between the seed-mean excess and
the seed-mean top-1 error is >= 0.6 (within one tau, since the loss at a given
tau has its own scale); (ii) bounded shifted degradation: at the final
checkpoint the seed-mean degradation is <= 0.05 in every (tau, omission,
noise) setting; (iii) E2, top-r error <= E[l_zs] / log(1 + r) on the same test
images, holds in every run for r = 1, 3, 5. (iii) is Markov's inequality, a
consistency check that can fail only through a bug: it is not a test of
transfer and is kept in the record beside (i) and (ii).

Positive control. The relation must be detectable: in every (tau, omission,
noise) setting the 10-step checkpoint must show both a larger excess and a
larger top-1 error than the final checkpoint, each by more than 3 combined
standard errors; and the shift must be able to hurt: at every tau some
checkpoint before the last must show a seed-mean degradation > 0.05.

Adversary's notes. Omission raises the pretraining loss (a caption that lost
its concept cannot be matched) without necessarily hurting zero-shot with clean
prompts, and noise raises both: the settings can break the rank relation, so
(i) can fail. A relation driven by checkpoints alone would still be the claim
(training lowers both together), but the control makes sure both quantities
move where they must. An error saturated at chance cannot degrade further, so
the shift control asks for *some* early checkpoint, not the first.

Amendment (criterion 3, 2026-12-02, after an independent review of criterion 2's full
run). Part (ii) is conditional: a model *close to its optimum* degrades little. Every
cell that failed it had an excess of 1.1-2.0 nats over a floor computed for the base
data, which ignores noise and omission, so the premise was never established; the
oracle is no reference either (trained models beat it under omission and noise). (ii)
is reported without a verdict until the grid has a per-setting reference loss and
cells that land near it; the prediction is then inconclusive when (i) and (iii) hold.
The control keeps its first half (10 steps worse than 1000 in both quantities); its
second half (some early checkpoint degrades by > 0.05) guarded (ii) and is now only
reported.

Run: ``python experiments/zero_shot_top_r.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from scipy import stats

from clipsim import theory
from clipsim.config import RunConfig
from clipsim.data import get_latent_family
from clipsim.evaluation import evaluate_program
from clipsim.experiment import (
    Control,
    ControlResult,
    Criterion,
    Prediction,
    final_rows,
    finish,
    run_grid,
    run_script,
    seed_stats,
)
from clipsim.plots import new_figure
from clipsim.sweep.engine import Program, RunOutput
from clipsim.train import STREAM_EVAL, train_program

PREDICTION = Prediction(
    key="P7",
    name="zero_shot_top_r",
    title="Zero-shot transfer: excess pretraining loss vs zero-shot error, and under shift",
    claim="A pretraining CLIP loss close to its optimum (the E3 floor) implies a small "
          "zero-shot top-r error, and a shift of the unique features degrades it little; "
          "top-r error <= E[l_zs] / log(1 + r) (E2) holds for any model.",
    criteria=(
        Criterion(
            text="For every seed and every r = 1..8 the E2 bound (best tau on a grid) is >= the "
                 "measured top-r error; for every class prior the seed-pooled difference "
                 "between the measured shifted error and sum_c pi'_c err_c is within 3 standard "
                 "errors; and for every shift (priors and feature scales) and seed, |err' - "
                 "err| <= TV (or its upper bound) within 3 standard errors. These are exact "
                 "statements: a failure is a bug.",
            adopted="2026-11-28", verdict="confirmed"),
        Criterion(
            text="Checkpoints steps in {10, 50, 250, 1000} x tau in {0.05, 0.1, 0.2} x omission "
                 "in {0, 0.3} x noise in {0.1, 0.3}, 5 seeds: (i) for every tau, the Spearman "
                 "correlation across the (checkpoint, omission, noise) settings between the "
                 "seed-mean excess pretraining loss over the E3 floor and the seed-mean "
                 "zero-shot top-1 error is >= 0.6; (ii) at 1000 steps the seed-mean increase of "
                 "top-1 error when sigma_xi is tripled at test time is <= 0.05 in every setting; "
                 "(iii) E2 (top-r error <= E[l_zs] / log(1 + r), r = 1, 3, 5) holds in every run "
                 "(a consistency check, not a test of transfer).",
            adopted="2026-12-01",
            reason="E2 on the test images is Markov's inequality and can fail only through a "
                   "bug; it did not test the transfer claim (a near-optimal pretraining loss "
                   "implies a small zero-shot error, and bounded degradation under a shift of "
                   "the unique features) (issue 10).",
            verdict="not confirmed"),
        Criterion(
            text="The same grid and seeds. (i) For every tau, the Spearman correlation across "
                 "the (checkpoint, omission, noise) settings between the seed-mean excess "
                 "pretraining loss over the E3 floor and the seed-mean zero-shot top-1 error "
                 "is >= 0.6; (iii) E2 holds in every run (a consistency check). (ii), bounded "
                 "degradation under the sigma_xi shift, is conditional on a near-optimal "
                 "pretraining loss, which this grid cannot establish in the omission and noise "
                 "cells (no reference loss for them: the E3 floor ignores noise and omission, "
                 "and the oracle is not optimal there); it is reported without a verdict. Not "
                 "confirmed when (i) or (iii) fails; otherwise inconclusive, as (ii) is "
                 "untested.",
            adopted="2026-12-02",
            reason="An independent review of criterion 2's full run: every cell that failed "
                   "(ii) had an excess of 1.1-2.0 nats over a floor computed for the base "
                   "data (omission 0, noise 0.1), while the paper's claim is about models "
                   "close to their optimum; at tau = 0.05 the final models still held half "
                   "their initial unique share. (ii) tested an unconditional claim the paper "
                   "does not make, and its control guarded only the failing direction."),
    ),
    control=Control(
        setting="under-trained checkpoints (10 steps) against the final one (1000 steps), "
                "every (tau, omission, noise) setting",
        expected="excess and top-1 error both larger at 10 steps by > 3 combined s.e. in every "
                 "setting (criterion 3 dropped the shift part, which guarded (ii))"),
)

BASE = {
    "data": {"family": "onehot", "num_concepts": 10, "image_dim": 32, "text_dim": 32,
             "image_unique_dim": 8, "text_unique_dim": 8, "image_unique_scale": 1.0,
             "text_unique_scale": 1.0, "noise_scale": 0.1},
    "model": {"kind": "linear", "embed_dim": 16},
    "objective": {"name": "clip", "temperature": 0.1},
    "train": {"steps": 1000, "batch_size": 64, "learning_rate": 0.01, "log_every": 10},
    "eval": {"num_samples": 1000},
}
CHECKPOINTS = [10, 50, 250, 1000]
TAUS = [0.05, 0.1, 0.2]
OMITS = [0.0, 0.3]
NOISES = [0.1, 0.3]
SHIFT_SCALE = 3.0  # eval.test_image_unique_scale of the shifted evaluation (base sigma_xi 1)
RANKS = (1, 3, 5)
MIN_RHO, MAX_DEGRADATION, N_SE = 0.6, 0.05, 3.0
STEPS, TAU, OMIT, NOISE = ("train.steps", "objective.temperature", "data.omit_prob",
                           "data.noise_scale")
SETTING = [OMIT, NOISE]


def transfer_program(cfg: RunConfig, key: jax.Array) -> RunOutput:
    """Train; the default evaluation, clean and with sigma_xi shifted at test time.

    Metrics: every ``evaluate_program`` metric, plus ``shift_zs_top1_error`` and
    ``shift_zs_loss`` from the same evaluation (same key, so the same test draws
    up to the feature scale) with ``eval.test_image_unique_scale = SHIFT_SCALE``.
    """
    out = train_program(cfg, key)
    k_eval = jax.random.fold_in(key, STREAM_EVAL)
    metrics = dict(evaluate_program(cfg, out.params, k_eval))
    shifted = dataclasses.replace(
        cfg, eval=dataclasses.replace(cfg.eval, test_image_unique_scale=SHIFT_SCALE))
    moved = evaluate_program(shifted, out.params, k_eval)
    metrics["shift_zs_top1_error"] = moved["zs_top1_error"]
    metrics["shift_zs_loss"] = moved["zs_loss"]
    return RunOutput(history=out.history, metrics=metrics, first_bad_step=out.first_bad_step)


PROGRAM = Program(name="zero_shot_top_r/transfer", fn=transfer_program)


def setup(quick: bool) -> tuple[RunConfig, dict[str, list], int]:
    """Base config, the grid and the number of seeds."""
    base = RunConfig.from_dict(BASE)
    if quick:
        return (base.replace(**{"eval.num_samples": 500}),
                {STEPS: [10, 200], TAU: [0.1], OMIT: [0.0, 0.3], NOISE: [0.1]}, 2)
    return base, {STEPS: CHECKPOINTS, TAU: TAUS, OMIT: OMITS, NOISE: NOISES}, 5


def run(base: RunConfig, grid: dict[str, list], seeds: int, out: Path,
        quiet: bool) -> pd.DataFrame:
    """Every checkpoint (a static group each, the other axes inside); final rows."""
    df = final_rows(run_grid(PREDICTION.name, base, grid, seeds=seeds, out=out, program=PROGRAM,
                             quiet=quiet))
    if (df["nonfinite_step"] >= 0).any():
        raise FloatingPointError("non-finite training loss in P7")
    floor = theory.family_floor(get_latent_family(base.data.family), base.data,
                                base.train.batch_size, key=jax.random.key(0)).value
    df["floor"] = floor
    df["excess"] = df["eval_clip_loss"] - floor
    df["degradation"] = df["shift_zs_top1_error"] - df["zs_top1_error"]
    return df


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(stats.spearmanr(x, y).statistic)


def decide(df: pd.DataFrame, grid: dict[str, list]) -> tuple[bool | None, ControlResult, dict]:
    """Within-tau rank correlations, final degradation, E2 per run; the control."""
    by = [TAU, STEPS, *SETTING]
    metrics = ("excess", "zs_top1_error", "zs_loss", "degradation", "unique_share_image",
               "eval_clip_loss", "shift_zs_top1_error")
    tables = {m: seed_stats(df, by, m) for m in metrics}
    cells = tables["excess"][by].copy()
    for m, t in tables.items():
        cells[m] = t["mean"].to_numpy()
        cells[f"{m}_se"] = t["se"].to_numpy()
    numbers: dict = {"floor": float(df["floor"].iloc[0]), "shift_scale": SHIFT_SCALE,
                     "cells": {c: cells[c].tolist() for c in cells.columns}}
    rho, rho_zs = {}, {}
    for tau, sub in cells.groupby(TAU):
        rho[f"{tau:g}"] = _spearman(sub["excess"].to_numpy(), sub["zs_top1_error"].to_numpy())
        rho_zs[f"{tau:g}"] = _spearman(sub["excess"].to_numpy(), sub["zs_loss"].to_numpy())
    numbers["spearman_excess_top1"] = rho
    numbers["spearman_excess_zs_loss"] = rho_zs
    numbers["spearman_share_degradation"] = _spearman(df["unique_share_image"].to_numpy(),
                                                      df["degradation"].to_numpy())
    last, first = max(grid[STEPS]), min(grid[STEPS])
    final = cells[cells[STEPS] == last]
    numbers["final_degradation_max"] = float(final["degradation"].max())
    e2 = {r: bool(np.all(df[f"zs_top{r}_error"] <= df["zs_loss"] / np.log1p(r) + 1e-6))
          for r in RANKS}
    numbers["e2_identity_holds"] = {str(r): v for r, v in e2.items()}
    numbers["e2_bound_over_error_median"] = {
        str(r): float(np.median((df["zs_loss"] / np.log1p(r))
                                / np.maximum(df[f"zs_top{r}_error"], 1e-3))) for r in RANKS}
    checks = {"transfer": all(v is not None and v >= MIN_RHO for v in rho.values()),
              "bounded_shift": numbers["final_degradation_max"] <= MAX_DEGRADATION,
              "e2_identity": all(e2.values())}
    numbers["checks"] = checks
    # (ii) is reported, not judged (criterion 3): its premise is not established here
    decided = checks["transfer"] and checks["e2_identity"]
    passed = None if any(v is None for v in rho.values()) or decided else False
    # positive control: early vs final checkpoint, same metrics
    detect = []
    idx = [TAU, *SETTING]
    early = cells[cells[STEPS] == first].set_index(idx)
    late = final.set_index(idx)
    for key in late.index:
        ok = all(early.loc[key, m] - late.loc[key, m]
                 > N_SE * np.hypot(early.loc[key, f"{m}_se"], late.loc[key, f"{m}_se"])
                 for m in ("excess", "zs_top1_error"))
        detect.append(bool(ok))
    before = cells[cells[STEPS] < last]
    shift_seen = {f"{t:g}": float(s["degradation"].max()) for t, s in before.groupby(TAU)}
    numbers["control_early_vs_final"] = detect
    numbers["control_max_early_degradation"] = shift_seen
    # criterion 3: the shift part of the control belonged to (ii), now reported only
    control = ControlResult(
        measured={"settings where 10 steps is worse in both": f"{sum(detect)}/{len(detect)}",
                  "largest early degradation per tau (reported)": shift_seen},
        passed=bool(detect) and all(detect))
    return passed, control, numbers


def plot(numbers: dict, grid: dict[str, list], base: RunConfig, seeds: int):
    """Top-1 error and zero-shot loss vs excess; degradation vs unique share."""
    cells = pd.DataFrame(numbers["cells"])
    fig, axes = new_figure(ncols=3, width=4.3, height=3.7)
    markers = dict(zip(sorted(grid[STEPS]), "^sDo", strict=False))
    taus = sorted(cells[TAU].unique())
    for i, tau in enumerate(taus):
        for steps, m in markers.items():
            sub = cells[(cells[TAU] == tau) & (cells[STEPS] == steps)]
            for ax, metric in ((axes[0, 0], "zs_top1_error"), (axes[0, 1], "zs_loss")):
                ax.errorbar(sub["excess"], sub[metric], xerr=sub["excess_se"],
                            yerr=sub[f"{metric}_se"], fmt=m, color=f"C{i}", ms=4,
                            elinewidth=0.6, alpha=0.85)
            share = sub["unique_share_image"].clip(lower=1e-5)
            axes[0, 2].errorbar(share, sub["degradation"], yerr=sub["degradation_se"], fmt=m,
                                color=f"C{i}", ms=4, elinewidth=0.6, alpha=0.85)
        axes[0, 0].plot([], [], "o", color=f"C{i}",
                        label=f"tau={tau:g} (rho={numbers['spearman_excess_top1'][f'{tau:g}']})"
                        if numbers['spearman_excess_top1'][f'{tau:g}'] is None else
                        f"tau={tau:g} (rho={numbers['spearman_excess_top1'][f'{tau:g}']:.2f})")
    for steps, m in markers.items():
        axes[0, 1].plot([], [], m, color="gray", label=f"{steps} steps")
    ax = axes[0, 0]
    ax.set_xlabel("excess pretraining loss over the E3 floor (nats)")
    ax.set_ylabel("zero-shot top-1 error")
    ax.set_title("transfer: top-1 error vs excess (Spearman within tau)", fontsize=8.5)
    ax.legend(fontsize=6.5)
    ax = axes[0, 1]
    ax.set_xlabel("excess pretraining loss over the E3 floor (nats)")
    ax.set_ylabel("zero-shot loss (run's tau)")
    ax.set_title("zero-shot loss vs excess", fontsize=8.5)
    ax.set_yscale("log")
    ax.legend(fontsize=6.5)
    ax = axes[0, 2]
    ax.axhline(MAX_DEGRADATION, color="k", ls=":", lw=1,
               label=f"bound at the final checkpoint ({MAX_DEGRADATION:g})")
    ax.axhline(0.0, color="gray", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("unique share of the image encoder's weights")
    ax.set_ylabel(f"top-1 error increase, sigma_xi x{SHIFT_SCALE:g} at test")
    rho = numbers["spearman_share_degradation"]
    ax.set_title("shift of the unique features" + ("" if rho is None else
                                                  f" (Spearman over runs {rho:.2f})"),
                 fontsize=8.5)
    ax.legend(fontsize=6.5)
    fig.suptitle(f"P7 (zero-shot transfer; E2 checked beside): linear CLIP, one-hot K = "
                 f"{base.data.num_concepts}, d = {base.model.embed_dim}, B = "
                 f"{base.train.batch_size}; omission {grid[OMIT]}, noise {grid[NOISE]}; "
                 f"seed means +- s.e. of {seeds} seeds", fontsize=9)
    fig.tight_layout()
    return fig


def summarize(numbers: dict, control: ControlResult) -> str:
    """One paragraph: the rank relations, the shift, E2, the control."""
    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    rho = ", ".join(f"{fmt(v)} at tau = {t}" for t, v in numbers["spearman_excess_top1"].items())
    rho_zs = ", ".join(f"{fmt(v)} at tau = {t}"
                       for t, v in numbers["spearman_excess_zs_loss"].items())
    e2 = all(numbers["e2_identity_holds"].values())
    c = control.measured
    return (
        f"Spearman correlation of the excess pretraining loss (over the E3 floor "
        f"{numbers['floor']:.3f}) with the zero-shot top-1 error across checkpoints, omission "
        f"and noise: {rho}; with the zero-shot loss: {rho_zs}. At the final checkpoint the "
        f"top-1 error rises by at most {numbers['final_degradation_max']:.3f} when sigma_xi is "
        f"multiplied by {numbers['shift_scale']:g} at test time; across runs the degradation's "
        f"Spearman correlation with the unique weight share is "
        f"{fmt(numbers['spearman_share_degradation'])}. E2 (Markov: top-r error <= "
        f"E[l_zs]/log(1+r)) {'holds' if e2 else 'FAILS'} in every run for r = 1, 3, 5. "
        f"Control: the earliest checkpoint is worse in both excess and error in "
        f"{c['settings where 10 steps is worse in both']} settings; the largest early "
        f"degradation per tau is {c['largest early degradation per tau (reported)']} "
        f"({'passed' if control.passed else 'FAILED'})."
    )


def main(quick: bool = False, out: str | Path = "runs/reproduce", quiet: bool = True) -> dict:
    """Run P7 and write ``zero_shot_top_r.png`` and ``.json`` to ``out``."""
    started = time.perf_counter()
    out = Path(out)
    base, grid, seeds = setup(quick)
    df = run(base, grid, seeds, out, quiet)
    passed, control, numbers = decide(df, grid)
    fig = plot(numbers, grid, base, seeds)
    return finish(
        PREDICTION, out=out, fig=fig, passed=passed, control=control,
        key_numbers={**{f"Spearman excess/top-1 at tau={t}": v
                        for t, v in numbers["spearman_excess_top1"].items()},
                     "largest final degradation": numbers["final_degradation_max"],
                     "E2 identity holds": all(numbers["e2_identity_holds"].values())},
        numbers=numbers,
        configs={"base": base.to_dict(), "grid": grid, "shift_scale": SHIFT_SCALE,
                 "program": PROGRAM.key},
        seeds=list(range(seeds)), started=started, quick=quick,
        summary=summarize(numbers, control),
    )


if __name__ == "__main__":
    run_script(main, __doc__)
