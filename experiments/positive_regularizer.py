"""P4: a regularizer on positive pairs raises margins and zero-shot accuracy.

docs/theory.md, section 3: ``clip_reg`` adds lambda (1/B) sum_i ||f(x_i) - g(y_i)||^2 to
the CLIP loss, which for unit vectors is 2 lambda (1/B) sum_i (1 - s_ii): it
touches positive pairs only. The paper argues that this one-sided term keeps
pulling positives together after the CLIP loss has saturated (E5: its gradient
decays like e^{-m/tau} once margins pass about tau*log(B-1)), so it enlarges the
margin and helps zero-shot transfer, most where saturation comes early, at
small batch size B.

We train linear encoders at a fixed tau = 0.1 with the same data, steps, batch
and learning rate, over a lambda grid, for the one-sided regularizer and the
ablations (``neg_reg``: negatives only; ``both_reg``: both), for CyCLIP
(lambda_cross = lambda_in = lambda) and, as lambda-free references, plain
``clip`` and ``siglip`` (its own learnable scale and bias, started at 10 and -10).
The data's difficulty (more concepts, larger noise, caption omission) was
calibrated with plain ``clip`` only, so that its zero-shot accuracy is well below
100% at both batch sizes.

Run: ``python experiments/positive_regularizer.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from clipsim.config import RunConfig
from clipsim.evaluation import oracle_program
from clipsim.experiment import Prediction, finish, run_grid, run_script, seed_stats
from clipsim.plots import new_figure, plot_metric

PREDICTION = Prediction(
    key="P4",
    name="positive_regularizer",
    title="One-sided (positive-pair) regularizer",
    claim="clip_reg raises margins and zero-shot accuracy over clip at the same tau, most at "
          "small batch size; compared with neg_reg, both_reg, cyclip and siglip over a "
          "lambda grid.",
    criterion="At the small batch size B = 16 (tau = 0.1), clip_reg at lambda = 0.1 beats "
              "clip in both the seed-mean median test margin and the seed-mean zero-shot "
              "top-1 accuracy, each by more than two combined standard errors.",
)

BASE = {
    "data": {"family": "onehot", "num_concepts": 20, "image_dim": 32, "text_dim": 32,
             "image_unique_dim": 8, "text_unique_dim": 8, "image_unique_scale": 0.5,
             "text_unique_scale": 0.5, "noise_scale": 0.3, "omit_prob": 0.2},
    "model": {"kind": "linear", "embed_dim": 16},
    "objective": {"name": "clip", "temperature": 0.1},
    "train": {"steps": 1000, "batch_size": 128, "learning_rate": 0.01, "log_every": 50},
    "eval": {"num_samples": 2000},
}
BATCHES = [16, 128]
LAMBDAS = [0.03, 0.1, 0.3, 1.0]
REGULARIZED = ["clip_reg", "neg_reg", "both_reg", "cyclip"]
REFERENCES = ["clip", "siglip"]
TEST_BATCH, TEST_LAMBDA, SE_FACTOR = 16, 0.1, 2.0
LAM = "objective.reg_weight"
BATCH = "train.batch_size"
NAME = "objective.name"


def setup(quick: bool) -> tuple[RunConfig, list[int], list[float], list[str], list[str], int]:
    """Base config, batch sizes, lambdas, regularized and reference objectives, seeds."""
    base = RunConfig.from_dict(BASE)
    if quick:
        base = base.replace(**{"train.steps": 150, "eval.num_samples": 500})
        return base, [TEST_BATCH], [TEST_LAMBDA, 1.0], ["clip_reg"], ["clip"], 2
    return base, BATCHES, LAMBDAS, REGULARIZED, REFERENCES, 5


def run(base: RunConfig, batches: list[int], lambdas: list[float], regularized: list[str],
        references: list[str], seeds: int, out: Path, quiet: bool) -> tuple[pd.DataFrame,
                                                                           pd.DataFrame]:
    """Regularized objectives over (batch, lambda); references over batch only.

    lambda sets ``reg_weight`` and, for CyCLIP, ``in_modal_weight`` too (unused by
    the other objectives).
    """
    reg = run_grid(PREDICTION.name, base, {BATCH: batches, NAME: regularized}, seeds=seeds,
                   out=out, quiet=quiet,
                   zip_groups=[{LAM: lambdas, "objective.in_modal_weight": lambdas}])
    ref = run_grid(PREDICTION.name + "_references", base, {BATCH: batches, NAME: references},
                   seeds=seeds, out=out, quiet=quiet)
    return reg, ref


def _stat(df: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    return seed_stats(df, by, metric).set_index(by)


def decide(reg: pd.DataFrame, ref: pd.DataFrame) -> tuple[bool, dict]:
    """Apply the criterion at (B = 16, lambda = 0.1); tabulate every cell."""
    test = {}
    for metric in ("margin_median", "zs_accuracy"):
        r = _stat(reg, [BATCH, NAME, LAM], metric).loc[(TEST_BATCH, "clip_reg", TEST_LAMBDA)]
        c = _stat(ref, [BATCH, NAME], metric).loc[(TEST_BATCH, "clip")]
        diff = float(r["mean"] - c["mean"])
        se = float(np.hypot(r["se"], c["se"]))
        test[metric] = {"clip_reg": float(r["mean"]), "clip": float(c["mean"]),
                        "difference": diff, "combined_se": se,
                        "beats": bool(diff > SE_FACTOR * se)}
    passed = test["margin_median"]["beats"] and test["zs_accuracy"]["beats"]
    numbers: dict = {"test": test, "regularized": {}, "references": {}}
    for metric in ("margin_median", "margin_p05", "zs_accuracy", "positive_cosine"):
        s = seed_stats(reg, [BATCH, NAME, LAM], metric)
        numbers["regularized"][metric] = {
            "batch_size": s[BATCH].tolist(), "objective": s[NAME].tolist(),
            "lambda": s[LAM].tolist(), "mean": s["mean"].tolist(), "se": s["se"].tolist()}
        s = seed_stats(ref, [BATCH, NAME], metric)
        numbers["references"][metric] = {
            "batch_size": s[BATCH].tolist(), "objective": s[NAME].tolist(),
            "mean": s["mean"].tolist(), "se": s["se"].tolist()}
    numbers["versus_clip"] = versus_clip(reg, ref)
    return passed, numbers


def versus_clip(reg: pd.DataFrame, ref: pd.DataFrame) -> dict:
    """For every (batch, objective, lambda): change over clip in margin and accuracy.

    Each change is labelled ``+`` (above clip by more than two combined standard
    errors), ``-`` (below by more than that) or ``0``.
    """
    out: dict[str, list] = {}
    for metric in ("margin_median", "zs_accuracy"):
        r = seed_stats(reg, [BATCH, NAME, LAM], metric)
        c = _stat(ref, [BATCH, NAME], metric)
        rows = []
        for _, row in r.iterrows():
            base = c.loc[(row[BATCH], "clip")]
            diff = row["mean"] - base["mean"]
            se = np.hypot(row["se"], base["se"])
            sign = "+" if diff > SE_FACTOR * se else "-" if diff < -SE_FACTOR * se else "0"
            rows.append(f"B={row[BATCH]} {row[NAME]} lambda={row[LAM]:g}: {diff:+.3f} ({sign})")
        out[metric] = rows
    return out


def oracle_metrics(base: RunConfig) -> dict[str, float]:
    """Median margin and zero-shot accuracy of the oracle encoders on the same data."""
    raw = jax.jit(oracle_program)(base, jax.random.key(0))
    return {k: float(raw[k]) for k in ("margin_median", "zs_accuracy")}


def plot(reg: pd.DataFrame, ref: pd.DataFrame, batches: list[int], oracle: dict | None,
         base: RunConfig):
    """Margin and zero-shot accuracy vs lambda; one column per batch size."""
    fig, axes = new_figure(ncols=len(batches), nrows=2, width=4.4, height=3.2)
    rows = [("margin_median", "median test margin"), ("zs_accuracy", "zero-shot top-1 accuracy")]
    for j, b in enumerate(batches):
        for i, (metric, label) in enumerate(rows):
            ax = axes[i, j]
            plot_metric(reg[reg[BATCH] == b], LAM, metric, hue=NAME, ax=ax, logx=True)
            _reference_bands(ax, ref[ref[BATCH] == b], metric, reg[NAME].nunique())
            if oracle is not None:
                ax.axhline(oracle[metric], color="gray", ls=":", lw=1, label="oracle encoders")
            ax.set_xlabel("lambda (reg_weight; cyclip: lambda_cross = lambda_in)")
            ax.set_ylabel(label)
            ax.set_title(f"B = {b}: {label}", fontsize=9)
            ax.get_legend().remove()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    labels = [lab + " (under clip_reg)" if lab == "both_reg" else lab for lab in labels]
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    d = base.data
    fig.suptitle(f"Linear encoders, tau = {base.objective.temperature:g}, "
                 f"{base.train.steps} steps; one-hot K = {d.num_concepts}, noise "
                 f"{d.noise_scale:g}, p_omit {d.omit_prob:g} (mean +- s.e. over seeds)\n"
                 f"margin: positive minus largest negative over all {base.eval.num_samples} "
                 "held-out pairs", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _reference_bands(ax, ref: pd.DataFrame, metric: str, offset: int) -> None:
    """Lambda-free objectives as horizontal mean +- s.e. bands."""
    stats = seed_stats(ref, [NAME], metric)
    styles = {"clip": ("k", "-"), "siglip": ("C6", "--")}
    for _, row in stats.iterrows():
        color, ls = styles.get(row[NAME], (f"C{offset}", "-."))
        ax.axhline(row["mean"], color=color, ls=ls, lw=1.2, label=f"{row[NAME]} (no lambda)")
        ax.axhspan(row["mean"] - row["se"], row["mean"] + row["se"], color=color, alpha=0.12,
                   lw=0)


def summarize(numbers: dict, passed: bool) -> str:
    """One paragraph on the test cell and the full picture."""
    t = numbers["test"]
    m, a = t["margin_median"], t["zs_accuracy"]
    helps = {k: [r for r in v if r.endswith("(+)")] for k, v in numbers["versus_clip"].items()}
    hurts = {k: [r for r in v if r.endswith("(-)")] for k, v in numbers["versus_clip"].items()}
    return (
        f"At B = {TEST_BATCH}, lambda = {TEST_LAMBDA}: clip_reg median margin {m['clip_reg']:.3f} "
        f"vs clip {m['clip']:.3f} ({m['difference']:+.3f}, 2 s.e. = {2 * m['combined_se']:.3f}); "
        f"zero-shot accuracy {a['clip_reg']:.3f} vs {a['clip']:.3f} ({a['difference']:+.3f}, "
        f"2 s.e. = {2 * a['combined_se']:.3f}). Over the whole grid, cells above clip by > 2 s.e. "
        f"in margin: {'; '.join(helps['margin_median']) or 'none'}; in accuracy: "
        f"{'; '.join(helps['zs_accuracy']) or 'none'}. Cells below clip in margin: "
        f"{'; '.join(hurts['margin_median']) or 'none'}; in accuracy: "
        f"{'; '.join(hurts['zs_accuracy']) or 'none'}."
    )


def main(quick: bool = False, out: str | Path = "runs/reproduce", quiet: bool = True) -> dict:
    """Run P4 and write ``positive_regularizer.png`` and ``.json`` to ``out``."""
    started = time.perf_counter()
    out = Path(out)
    base, batches, lambdas, regularized, references, seeds = setup(quick)
    reg, ref = run(base, batches, lambdas, regularized, references, seeds, out, quiet)
    passed, numbers = decide(reg, ref)
    oracle = None if quick else oracle_metrics(base)  # its compilation would dominate quick mode
    numbers["oracle"] = oracle
    fig = plot(reg, ref, batches, oracle, base)
    t = numbers["test"]
    key_numbers = {"margin gain (B=16, lambda=0.1)": t["margin_median"]["difference"],
                   "accuracy gain (B=16, lambda=0.1)": t["zs_accuracy"]["difference"],
                   "clip accuracy (B=16)": t["zs_accuracy"]["clip"]}
    if oracle is not None:
        key_numbers["oracle accuracy"] = oracle["zs_accuracy"]
    return finish(
        PREDICTION, out=out, fig=fig, passed=passed,
        key_numbers=key_numbers,
        numbers=numbers,
        configs={"base": base.to_dict(),
                 "grid": {BATCH: batches, NAME: regularized},
                 "zip": {LAM: lambdas, "objective.in_modal_weight": lambdas},
                 "references": {BATCH: batches, NAME: references}},
        seeds=list(range(seeds)), started=started, quick=quick,
        summary=summarize(numbers, passed),
    )


if __name__ == "__main__":
    run_script(main, __doc__)
