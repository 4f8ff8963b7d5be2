"""P6: trained CLIP losses approach the E3 floor from above.

THEORY.md E3: with n_i the number of pairs in a batch that share pair i's
latent, every encoder pair has E[L_clip] >= E[log n_i] (given the latents, a
positive and its same-latent "unexpected positives" are exchangeable, so no
model can rank the true partner first among them more often than 1/n_i). For
one-hot latents with a uniform prior over K concepts, n_i - 1 ~ Binomial(B-1,
1/K) and the floor is exact (``clipsim.theory.collision_floor_onehot``). It
rises with the batch size B and falls with K. The paper's argument predicts
that training drives the loss down to this floor, not below it (E3 is exact)
and not far above it.

We train linear CLIP (tau = 0.1, 1000 steps) over a grid of B and K and measure
the CLIP loss of the final model on fresh batches of size B (both directions,
the definition of ``eval_clip_loss``), beside the exact floor and the loss of
the oracle encoders (projections onto the shared coordinates, normalized) on
the same batches at the same tau.

Run: ``python experiments/loss_floor.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from clipsim import objectives, theory
from clipsim.config import RunConfig
from clipsim.data import oracle_encoders, sample_pairs
from clipsim.evaluation import embedding_functions
from clipsim.experiment import Prediction, finish, run_script, run_stacked, seed_stats
from clipsim.plots import new_figure
from clipsim.train import STREAM_EVAL, train_program, world_for

PREDICTION = Prediction(
    key="P6",
    name="loss_floor",
    title="Trained loss vs the E3 collision floor",
    claim="Trained CLIP losses approach the floor E[log n_i] set by unexpected positives "
          "(pairs in the batch sharing a latent) from above, across batch sizes B and "
          "numbers of concepts K.",
    criterion="In every (B, K) cell (B in {16, 32, 64, 128, 256}, K in {4, 10, 32}; tau = 0.1, "
              "1000 steps) the seed-mean trained CLIP loss is >= floor - 3 s.e. (E3, exact), "
              "and the relative excess (loss - floor) / floor is below 0.2 in at least 80% of "
              "the cells.",
)

BASE = {
    "data": {"family": "onehot", "num_concepts": 10, "image_dim": 48, "text_dim": 48,
             "image_unique_dim": 8, "text_unique_dim": 8, "image_unique_scale": 0.5,
             "text_unique_scale": 0.5, "noise_scale": 0.05},
    "model": {"kind": "linear", "embed_dim": 32},
    "objective": {"name": "clip", "temperature": 0.1},
    "train": {"steps": 1000, "learning_rate": 0.01, "log_every": 50},
}
BATCH_SIZES = [16, 32, 64, 128, 256]
CONCEPTS = [4, 10, 32]
EVAL_PAIRS = 4096  # fresh pairs per run, cut into batches of size B (at least 8 batches)
N_SE, MAX_EXCESS, MIN_SHARE = 3.0, 0.2, 0.8
B_FIELD, K_FIELD = "train.batch_size", "data.num_concepts"


def setup(quick: bool) -> tuple[RunConfig, list[int], list[int], int]:
    """Base config, batch sizes, concept counts and number of seeds."""
    base = RunConfig.from_dict(BASE)
    if quick:
        return base.replace(**{"train.steps": 200}), [16, 128], [10], 2
    return base, BATCH_SIZES, CONCEPTS, 5


def program(cfg: RunConfig, key: jax.Array) -> dict[str, jax.Array]:
    """Train one run; CLIP loss of the model and of the oracle on the same fresh batches."""
    out = train_program(cfg, key)
    b = cfg.train.batch_size
    nb = max(8, EVAL_PAIRS // b)
    world = world_for(cfg)
    pairs = sample_pairs(cfg.data, world, key=jax.random.fold_in(key, STREAM_EVAL), n=nb * b)
    tau = cfg.objective.temperature

    def clip_loss(f, g) -> jax.Array:
        za = f(pairs.x).reshape(nb, b, -1)
        zb = g(pairs.y).reshape(nb, b, -1)
        rows, cols = jax.vmap(lambda a, c: objectives.clip_loss_from_scores(a @ c.T, tau))(za, zb)
        return 0.5 * (jnp.mean(rows, axis=1) + jnp.mean(cols, axis=1))  # (nb,)

    trained = clip_loss(*embedding_functions(out.params, cfg))
    oracle = clip_loss(*oracle_encoders(cfg.data, world, normalize=True))
    return {"loss": jnp.mean(trained), "loss_batch_se": jnp.std(trained, ddof=1) / jnp.sqrt(nb),
            "oracle_loss": jnp.mean(oracle), "first_bad_step": out.first_bad_step}


def run(base: RunConfig, bs: list[int], ks: list[int], seeds: int) -> pd.DataFrame:
    """One compiled batch per (B, K) cell (both static), the seeds inside it."""
    rows = []
    for k in ks:
        for b in bs:
            cell = base.replace(**{B_FIELD: b, K_FIELD: k})
            configs = [cell.replace(seed=s) for s in range(seeds)]
            out = jax.device_get(run_stacked(program, configs))
            if np.any(out["first_bad_step"] >= 0):
                raise FloatingPointError(f"non-finite training loss at B = {b}, K = {k}")
            floor = theory.collision_floor_onehot(b, k).value
            for s in range(seeds):
                rows.append({B_FIELD: b, K_FIELD: k, "seed": s, "floor": floor,
                             **{m: float(out[m][s]) for m in
                                ("loss", "loss_batch_se", "oracle_loss")}})
    df = pd.DataFrame(rows)
    df["excess"] = (df["loss"] - df["floor"]) / df["floor"]
    return df


def decide(df: pd.DataFrame, bs: list[int], ks: list[int]) -> tuple[bool, dict]:
    """Per cell: seed-mean loss vs floor - 3 s.e., and the relative excess."""
    by = [K_FIELD, B_FIELD]
    stats = {m: seed_stats(df, by, m).set_index(by) for m in ("loss", "oracle_loss", "excess")}
    numbers: dict[str, list] = {"K": [], "B": [], "floor": []}
    for k in ks:
        for b in bs:
            floor = float(df[(df[K_FIELD] == k) & (df[B_FIELD] == b)]["floor"].iloc[0])
            numbers["K"].append(k)
            numbers["B"].append(b)
            numbers["floor"].append(floor)
            for m, table in stats.items():
                numbers.setdefault(f"{m}_mean", []).append(float(table.loc[(k, b), "mean"]))
                numbers.setdefault(f"{m}_se", []).append(float(table.loc[(k, b), "se"]))
            mean, se = numbers["loss_mean"][-1], numbers["loss_se"][-1]
            numbers.setdefault("above_floor", []).append(bool(mean >= floor - N_SE * se))
            numbers.setdefault("excess_small", []).append(
                bool(numbers["excess_mean"][-1] < MAX_EXCESS))
    share = float(np.mean(numbers["excess_small"]))
    numbers["share_excess_small"] = share
    passed = all(numbers["above_floor"]) and share >= MIN_SHARE
    return passed, numbers


def plot(numbers: dict, bs: list[int], ks: list[int], base: RunConfig):
    """Left: loss, floor and oracle vs B per K; right: relative excess over the floor."""
    fig, axes = new_figure(ncols=2, width=4.6, height=3.6)
    b_grid = np.unique(np.geomspace(2, max(bs) * 1.1, 60).astype(int))
    for i, k in enumerate(ks):
        color = f"C{i}"
        cells = [j for j, kk in enumerate(numbers["K"]) if kk == k]
        xs = np.asarray([numbers["B"][j] for j in cells])
        for ax, metric in ((axes[0, 0], "loss"), (axes[0, 1], "excess")):
            mean = np.asarray([numbers[f"{metric}_mean"][j] for j in cells])
            se = np.asarray([numbers[f"{metric}_se"][j] for j in cells])
            ax.plot(xs, mean, color=color, marker="o", ms=3,
                    label=f"K={k} trained" if metric == "loss" else f"K={k}")
            ax.fill_between(xs, mean - se, mean + se, color=color, alpha=0.25, lw=0)
        ax = axes[0, 0]
        floor = [theory.collision_floor_onehot(int(b), k).value for b in b_grid]
        ax.plot(b_grid, floor, color=color, ls="--", lw=1, label=f"K={k} E3 floor")
        ax.plot(xs, [numbers["oracle_loss_mean"][j] for j in cells], color=color, ls=":",
                marker="x", ms=4, lw=1, label=f"K={k} oracle")
    ax = axes[0, 0]
    ax.plot(b_grid, np.log(b_grid), color="gray", lw=0.8, alpha=0.6, label="log B (chance)")
    ax.set_xscale("log")
    ax.set_ylim(0, max(max(numbers["loss_mean"]), max(numbers["oracle_loss_mean"])) * 1.15)
    ax.set_xlim(min(bs) * 0.8, max(bs) * 1.2)
    ax.set_xticks(bs, [str(b) for b in bs])
    ax.minorticks_off()
    ax.set_xlabel("batch size B")
    ax.set_ylabel("CLIP loss on fresh batches")
    ax.set_title("trained loss (solid), E3 floor E[log n_i] (dashed)", fontsize=9)
    ax.legend(fontsize=6.5, ncol=2)
    ax = axes[0, 1]
    ax.axhline(MAX_EXCESS, color="k", ls=":", lw=1, label=f"criterion {MAX_EXCESS:g}")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(bs, [str(b) for b in bs])
    ax.minorticks_off()
    ax.set_xlabel("batch size B")
    ax.set_ylabel("(loss - floor) / floor")
    ax.set_title("relative excess of the trained loss over the floor", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(f"Linear CLIP, one-hot latents (uniform), tau = {base.objective.temperature:g}, "
                 f"{base.train.steps} steps; mean +- s.e. over seeds", fontsize=10)
    fig.tight_layout()
    return fig


def summarize(numbers: dict) -> str:
    """One paragraph: the floor check, the excess, the oracle."""
    n = len(numbers["K"])
    below = [f"(B={numbers['B'][j]}, K={numbers['K'][j]})" for j in range(n)
             if not numbers["above_floor"][j]]
    worst = int(np.argmax(numbers["excess_mean"]))
    oracle_excess = [(numbers["oracle_loss_mean"][j] - numbers["floor"][j]) / numbers["floor"][j]
                     for j in range(n)]
    return (
        f"The seed-mean trained loss is at or above the E3 floor (within {N_SE:g} s.e.) in "
        f"{n - len(below)} of {n} cells" + (f"; below it in {', '.join(below)}" if below else "")
        + f". The relative excess over the floor is below {MAX_EXCESS:g} in "
        f"{sum(numbers['excess_small'])} of {n} cells (median "
        f"{np.median(numbers['excess_mean']):.3f}; largest {numbers['excess_mean'][worst]:.3f} "
        f"at B = {numbers['B'][worst]}, K = {numbers['K'][worst]}). The oracle encoders at the "
        f"same tau sit {np.median(oracle_excess):.3f} (median relative excess) above the floor."
    )


def main(quick: bool = False, out: str | Path = "runs/reproduce", quiet: bool = True) -> dict:
    """Run P6 and write ``loss_floor.png`` and ``.json`` to ``out``."""
    started = time.perf_counter()
    out = Path(out)
    base, bs, ks, seeds = setup(quick)
    df = run(base, bs, ks, seeds)
    passed, numbers = decide(df, bs, ks)
    fig = plot(numbers, bs, ks, base)
    return finish(
        PREDICTION, out=out, fig=fig, passed=passed,
        key_numbers={"cells >= floor - 3 s.e.": f"{sum(numbers['above_floor'])}/"
                                                f"{len(numbers['above_floor'])}",
                     "share of cells with excess < 0.2": numbers["share_excess_small"],
                     "median relative excess": float(np.median(numbers["excess_mean"])),
                     "largest relative excess": float(np.max(numbers["excess_mean"]))},
        numbers=numbers,
        configs={"base": base.to_dict(), "grid": {B_FIELD: bs, K_FIELD: ks},
                 "eval_pairs": EVAL_PAIRS},
        seeds=list(range(seeds)), started=started, quick=quick, summary=summarize(numbers),
    )


if __name__ == "__main__":
    run_script(main, __doc__)
