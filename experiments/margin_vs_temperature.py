"""P1: the margin CLIP training delivers depends on the temperature.

THEORY.md E5: once every margin exceeds about tau*log(B-1) the CLIP loss is
nearly zero and its gradient decays like e^{-m/tau}, so training stops pushing
margins up. The paper's argument predicts that the margin delivered by
(near-)optimal training grows with tau. We train linear CLIP on one-hot data
over a temperature grid and measure the median and 5th-percentile margins of
held-out pairs (same-latent negatives excluded), beside tau*log(B-1) and the
oracle encoders' median margin. A run with a learnable temperature (CLIP's
log-parametrization, initial tau = 0.07, floor 0.01) shows where tau goes.

Run: ``python experiments/margin_vs_temperature.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from clipsim.config import RunConfig
from clipsim.evaluation import oracle_program
from clipsim.experiment import Prediction, finish, run_grid, run_script, seed_stats
from clipsim.plots import new_figure, plot_metric

PREDICTION = Prediction(
    key="P1",
    name="margin_vs_temperature",
    title="Margin vs temperature",
    claim="The margin that CLIP training delivers depends on the temperature tau: "
          "the loss stops pushing once margins pass about tau*log(B-1) (E5).",
    criterion="Seed-averaged median test margin increases at every step of the temperature "
              "grid from tau = 0.01 to tau = 0.3, and margin(0.3) - margin(0.01) exceeds "
              "two combined standard errors.",
)

BASE = {
    "data": {"family": "onehot", "num_concepts": 10, "image_dim": 32, "text_dim": 32,
             "image_unique_dim": 8, "text_unique_dim": 8, "image_unique_scale": 0.5,
             "text_unique_scale": 0.5, "noise_scale": 0.05},
    "model": {"kind": "linear", "embed_dim": 16},
    "objective": {"name": "clip"},
    "train": {"steps": 1000, "batch_size": 128, "learning_rate": 0.01, "log_every": 50},
    "eval": {"num_samples": 2000},
}
TAUS = [0.01, 0.03, 0.1, 0.3, 1.0]
RISING = [0.01, 0.03, 0.1, 0.3]


def main(quick: bool = False, out: str | Path = "runs/reproduce", quiet: bool = True) -> dict:
    """Run P1 and write ``margin_vs_temperature.png`` and ``.json`` to ``out``."""
    started = time.perf_counter()
    out = Path(out)
    seeds = 2 if quick else 5
    base = RunConfig.from_dict(BASE)
    taus, rising = TAUS, RISING
    if quick:
        base = base.replace(**{"train.steps": 150, "eval.num_samples": 500})
        taus, rising = [0.01, 0.3], [0.01, 0.3]
    df = run_grid(PREDICTION.name, base, {"objective.temperature": taus}, seeds=seeds,
                  out=out, quiet=quiet)
    learned_base = base.replace(**{"objective.learn_temperature": True,
                                   "objective.temperature": 0.07,
                                   "objective.min_temperature": 0.01})
    learned = run_grid(PREDICTION.name + "_learned", learned_base, {}, seeds=seeds, out=out,
                       quiet=quiet)
    oracle = jax.jit(oracle_program)(base, jax.random.key(0))
    oracle_margin = float(oracle["margin_median"])

    med = seed_stats(df, ["objective.temperature"], "margin_median")
    p05 = seed_stats(df, ["objective.temperature"], "margin_p05")
    acc = seed_stats(df, ["objective.temperature"], "zs_accuracy")
    lt = seed_stats(learned, ["objective.learn_temperature"], "eval_temperature")
    lm = seed_stats(learned, ["objective.learn_temperature"], "margin_median")

    by_tau = med.set_index("objective.temperature")
    means = by_tau.loc[rising, "mean"].to_numpy()
    ses = by_tau.loc[rising, "se"].to_numpy()
    increasing = bool(np.all(np.diff(means) > 0))
    spread = means[-1] - means[0]
    passed = increasing and spread > 2 * np.hypot(ses[-1], ses[0])

    b = base.train.batch_size
    fig, axes = new_figure(ncols=2, width=4.4, height=3.4)
    ax = axes[0, 0]
    plot_metric(df, "objective.temperature", "margin_median", ax=ax, logx=True,
                label="median margin", color="C0")
    plot_metric(df, "objective.temperature", "margin_p05", ax=ax, logx=True,
                label="5th percentile", color="C1")
    grid = np.geomspace(min(taus), max(taus), 50)
    ax.plot(grid, np.minimum(grid * np.log(b - 1), 2.0), "k--", lw=1,
            label="tau log(B-1) (capped at 2)")
    ax.axhline(oracle_margin, color="gray", ls=":", label="oracle median margin")
    ax.errorbar(lt["mean"], lm["mean"], xerr=lt["se"], yerr=lm["se"], fmt="*", ms=10,
                color="C3", label="learned tau")
    ax.set_xlabel("temperature tau")
    ax.set_ylabel("test margin")
    ax.legend(fontsize=7)
    ax.set_title("margin delivered by training")
    plot_metric(df, "objective.temperature", "zs_accuracy", ax=axes[0, 1], logx=True)
    axes[0, 1].set_xlabel("temperature tau")
    axes[0, 1].set_ylabel("zero-shot top-1 accuracy")
    axes[0, 1].set_ylim(0.0, 1.05)
    axes[0, 1].set_title("zero-shot accuracy")

    numbers = {
        "temperature": med["objective.temperature"].tolist(),
        "margin_median_mean": med["mean"].tolist(), "margin_median_se": med["se"].tolist(),
        "margin_p05_mean": p05["mean"].tolist(), "margin_p05_se": p05["se"].tolist(),
        "zs_accuracy_mean": acc["mean"].tolist(), "zs_accuracy_se": acc["se"].tolist(),
        "tau_log_b_minus_1": [t * float(np.log(b - 1)) for t in med["objective.temperature"]],
        "oracle_margin_median": oracle_margin,
        "learned_temperature_mean": float(lt["mean"].iloc[0]),
        "learned_temperature_se": float(lt["se"].iloc[0]),
        "learned_margin_median_mean": float(lm["mean"].iloc[0]),
    }
    summary = (
        f"Median margins rise from {means[0]:.3f} at tau = {rising[0]} to {means[-1]:.3f} at "
        f"tau = {rising[-1]} ({'monotone' if increasing else 'not monotone'} over the rising "
        f"range); the oracle's median margin is {oracle_margin:.3f}. A learnable temperature "
        f"started at 0.07 ends at tau = {numbers['learned_temperature_mean']:.3f} with median "
        f"margin {numbers['learned_margin_median_mean']:.3f}."
    )
    return finish(
        PREDICTION, out=out, fig=fig, passed=passed,
        key_numbers={"margin(0.01)": float(means[0]), f"margin({rising[-1]})": float(means[-1]),
                     "learned tau": numbers["learned_temperature_mean"],
                     "oracle margin": oracle_margin},
        numbers=numbers,
        configs={"base": base.to_dict(), "grid": {"objective.temperature": taus},
                 "learned": learned_base.to_dict()},
        seeds=list(range(seeds)), started=started, quick=quick, summary=summary,
    )


if __name__ == "__main__":
    run_script(main, __doc__)
