"""P3: the square loss fails at zero-shot transfer where CLIP succeeds: a phase diagram.

Design (fixed before the full run; the criteria ledger below keeps every earlier one).

Claim. The square loss regresses the score matrix onto the identity,
(1/B) sum_i (s_ii - 1)^2 + (1/(B(B-1))) sum_{i != j} s_ij^2; the paper argues that,
unlike CLIP's softmax objective, it need not deliver the ranking zero-shot
classification needs. ``spectral`` (-2 (1/B) sum_i s_ii + the same negative term) is
its linear-in-positives sibling.

Grid. Linear encoders with L2-normalized outputs, K = 16 concepts, B = 128, Adam at
lr 0.01, 1000 steps, noise 0.05, unique features 0.5; ``clip`` at tau = 0.1 against
``square`` and ``spectral`` on the same data, steps and batches. Cells: embedding
dimension d in {2, 4, 8, 16} (d = 16 = K for uniform one-hot latents only: each
(cell, objective) compiles its own program, and the 2026-11-28 run already put every
objective at accuracy 1 at d = 16 with one-hot and with sparse latents) x latents
  - one-hot, uniform class prior;
  - one-hot, geometric prior pi_c proportional to 0.75^c (class 15 is 75 times rarer
    than class 0);
  - sparse, exactly 2 of the 16 concepts on (so batch pairs often share a concept:
    "sparse collisions"), concepts uniform; zero-shot classes are the single concepts.
    (The sparse family has no class prior, so there is no geometric sparse cell.)
The zero-shot test prior is uniform in every cell (``eval.test_class_probs``), so a
model that gives up the rare classes of the geometric prior pays for it.

Metric. Zero-shot top-1 accuracy on 2,000 clean test images, and beside it the
class-prompt margin (score of the true prompt minus the best other prompt, median
over test images), which still varies where accuracy saturates at 1.

Mechanism, measured inside the program: the smallest angle between two class prompt
embeddings (degrees; normalized prompts) and the spread of the prompts' norms before
normalization (std / mean). Why it should separate the objectives: the negative term
of ``square`` and ``spectral`` depends on s_ij^2 only. It cannot tell a class
embedding from its antipode (cos = -1 costs as much as cos = +1), and at d < K its
minimizers (the tight frames) include configurations where several classes share
one direction. CLIP's softmax makes a coincident class a hard negative of every
image of the other, so it spreads the K prompts over the sphere.

Positive control (a planted effect, same metric, same analysis). In the one-hot
uniform cell with the largest d (16 = K), where every objective is expected to reach
accuracy 1, each trained CLIP model is also scored with a planted collision of the
kind the mechanism describes: the prompts of classes 12-15 replaced by copies of
those of classes 0-3. Ties count as errors, so the 8 merged classes must be lost: the
criterion's test (CLIP ahead of the planted model by > 0.1 and > 2 combined s.e.)
must register it, and the planted smallest prompt angle must fall below CLIP's. (A
first draft used ``align_only``, which has no negative term, as the planted loser; a
100-step trial kept it at accuracy 1 at d = 16, so it is no loser by construction.)

Adversarial review of this design (before the full run):
  - saturated cells: at d >= 8 every objective may sit at accuracy 1; that is a finding
    of the phase diagram (where they do not part), and the prompt-margin panel still
    varies there. The verdict needs only one cell, so saturation cannot decide it.
  - cells where nothing works: "square fails where CLIP succeeds" needs CLIP to succeed,
    so a cell counts only if CLIP's own accuracy is at least 0.5 (chance is 1/16).
  - the other direction: cells where square or spectral beats CLIP by the same test are
    reported as such (the geometric prior can favour a loss that fits the head classes).
  - multiple cells: 12 cells are tested; a gap above 0.1 that also exceeds 2 s.e. is not
    a chance event at 5 seeds.
  - the old grid's blind spot (its only low-rank cell was d = 8 with uniform classes) is
    what this grid fixes; the noise-0.4 arm of the 2026-11-28 run is dropped.

Run: ``python experiments/square_loss_zero_shot.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from clipsim.config import RunConfig
from clipsim.data import prompts, sample_pairs, sample_test_images
from clipsim.experiment import (
    Control,
    ControlResult,
    Criterion,
    Prediction,
    finish,
    run_grid,
    run_script,
    seed_stats,
)
from clipsim.models import encode, normalize_rows
from clipsim.plots import new_figure
from clipsim.sweep.engine import Program, RunOutput
from clipsim.train.loop import STREAM_EVAL, train_program, world_for

K = 16
GEOMETRIC = tuple(float(v) for v in 0.75 ** np.arange(K) / np.sum(0.75 ** np.arange(K)))
UNIFORM = tuple([1.0 / K] * K)
GAP, SE_FACTOR, CLIP_SUCCEEDS = 0.1, 2.0, 0.5

PREDICTION = Prediction(
    key="P3",
    name="square_loss_zero_shot",
    title="Square loss fails at zero-shot where CLIP succeeds",
    claim="Trained with the square loss, encoders can fail at zero-shot classification in "
          "conditions where CLIP's objective succeeds (sparse latents with collisions, "
          "d < k, normalization).",
    criteria=(
        Criterion(
            text="In at least one of the four conditions (one-hot baseline K = 10, d = 16; "
                 "sparse 2-of-16 latents; d = 8 < k = 16; unnormalized), at noise 0.05, "
                 "CLIP's seed-mean zero-shot top-1 accuracy exceeds the square loss's by "
                 "more than 0.1 and by more than two combined standard errors.",
            adopted="2026-11-28",
            reason="Original criterion, reconstructed from the script's own account of its "
                   "first run (only noise 0.05 existed then); that run's record was not kept.",
            verdict="not confirmed"),
        Criterion(
            text="In at least one of the eight cells (conditions: one-hot baseline, sparse "
                 "2-of-16 latents, d = 8 < k = 16, unnormalized; noise 0.05 and 0.4), CLIP's "
                 "seed-mean zero-shot top-1 accuracy exceeds the square loss's by more than "
                 "0.1 and by more than two combined standard errors.",
            adopted="2026-11-28",
            reason="The first run put both objectives at 100% zero-shot accuracy in every "
                   "condition, so a noise-0.4 arm (noise calibrated with plain clip on the "
                   "one-hot baseline to about 0.8 accuracy) was added after that run and the "
                   "criterion extended to its cells. An amendment made after seeing a result.",
            verdict="not confirmed"),
        Criterion(
            text="Phase diagram for K = 16 with a uniform zero-shot test prior: d in "
                 "{2, 4, 8, 16} for one-hot latents with a uniform prior, d in {2, 4, 8} for "
                 "one-hot latents with a geometric prior 0.75^c and for sparse 2-of-16 "
                 "latents; clip (tau = 0.1) against square and spectral. Confirmed if in at "
                 "least one cell CLIP's own seed-mean zero-shot top-1 accuracy is at least "
                 "0.5 and exceeds the square loss's by more than 0.1 and by more than two "
                 "combined standard errors.",
            adopted="2026-12-01",
            reason="The old grid never reached the regimes where the two objectives part (its "
                   "only low-rank cell was d = 8 with uniform classes), so its negative "
                   "verdict described the grid, not the loss; it had no positive control. "
                   "This grid varies d down to 2 and the class prior, with a control.",
        ),
    ),
    control=Control(
        setting="planted collision: each trained clip model of the one-hot uniform cell with "
                "the largest d, scored with the prompts of classes 12-15 replaced by copies "
                "of those of classes 0-3 (ties count as errors)",
        expected="clip's seed-mean zero-shot accuracy exceeds the planted model's by more "
                 "than 0.1 and 2 combined s.e. (the verdict's test), and the planted smallest "
                 "prompt angle is below clip's by more than 2 combined s.e."),
)

BASE = {
    "data": {"family": "onehot", "num_concepts": K, "image_dim": 32, "text_dim": 32,
             "image_unique_dim": 8, "text_unique_dim": 8, "image_unique_scale": 0.5,
             "text_unique_scale": 0.5, "noise_scale": 0.05},
    "model": {"kind": "linear", "embed_dim": 16},
    "objective": {"name": "clip", "temperature": 0.1},
    "train": {"steps": 1000, "batch_size": 128, "learning_rate": 0.01, "log_every": 50},
    "eval": {"num_samples": 2000, "test_class_probs": list(UNIFORM)},
}
LATENTS: dict[str, dict] = {
    "one-hot uniform": {},
    "one-hot geometric": {"data.class_probs": list(GEOMETRIC)},
    "sparse 2 of 16": {"data.family": "sparse", "data.sparse_active": 2},
}
DIMS: dict[str, list[int]] = {"one-hot uniform": [2, 4, 8, 16],
                              "one-hot geometric": [2, 4, 8], "sparse 2 of 16": [2, 4, 8]}
OBJECTIVES = ["clip", "square", "spectral"]
CONTROL_LATENTS = "one-hot uniform"
PLANTED, PLANTED_FROM = slice(12, 16), slice(0, 4)
DIM, NAME = "model.embed_dim", "objective.name"
METRICS = ("zs_accuracy", "prompt_margin", "prompt_min_angle", "prompt_norm_spread",
           "zs_accuracy_rare", "positive_cosine", "planted_zs_accuracy", "planted_min_angle")


def _min_angle(class_emb: jax.Array) -> jax.Array:
    """Smallest angle (degrees) between two rows of a (C, d) matrix of unit rows."""
    cos = class_emb @ class_emb.T
    off = ~jnp.eye(class_emb.shape[0], dtype=bool)
    return jnp.degrees(jnp.arccos(jnp.clip(jnp.max(jnp.where(off, cos, -1.0)), -1.0, 1.0)))


def zero_shot_geometry(cfg: RunConfig, key: jax.Array) -> RunOutput:
    """Train one run; measure zero-shot accuracy, prompt margins and the prompts' geometry.

    Metrics (scalars): ``zs_accuracy`` (top-1 on ``eval.num_samples`` clean test images
    drawn from ``eval.test_class_probs``), ``zs_accuracy_rare`` (the same over the
    classes C/2 .. C-1, the rarest under the geometric prior), ``prompt_margin`` (median
    over test images of s_true - max_{c != true} s_c), ``prompt_min_angle`` (degrees, the
    smallest angle between two normalized class prompt embeddings), ``prompt_norm_spread``
    (std / mean of the class prompts' norms before normalization), ``positive_cosine``
    (mean held-out positive score); ``planted_zs_accuracy`` and ``planted_min_angle``
    (the same with the prompts of classes 12-15 replaced by those of classes 0-3: the
    positive control's planted collision; needs C = 16).
    """
    out = train_program(cfg, key)
    world = world_for(cfg)
    k_test, k_pairs = jax.random.split(jax.random.fold_in(key, STREAM_EVAL))
    enc = out.params["encoders"]
    raw = dataclasses.replace(cfg.model, normalize=False)
    f = lambda x: encode(enc["image"], x, cfg=cfg.model)  # noqa: E731
    c = cfg.data.num_zero_shot_classes
    test = sample_test_images(cfg.data, world, key=k_test, n=cfg.eval.num_samples,
                              class_probs=cfg.eval.test_class_probs)
    prompt_raw = encode(enc["text"], prompts(cfg.data, world)[:, 0], cfg=raw)
    class_emb = normalize_rows(prompt_raw)
    image_emb = f(test.x)
    s = image_emb @ class_emb.T
    true = jnp.take_along_axis(s, test.labels[:, None], axis=1)[:, 0]
    other = jnp.max(jnp.where(jax.nn.one_hot(test.labels, c, dtype=bool), -jnp.inf, s), axis=1)
    hit = (true > other).astype(s.dtype)  # ties count as errors, as in clipsim.metrics
    rare = (test.labels >= c // 2).astype(s.dtype)
    planted = class_emb.at[PLANTED].set(class_emb[PLANTED_FROM])
    sp = image_emb @ planted.T
    true_p = jnp.take_along_axis(sp, test.labels[:, None], axis=1)[:, 0]
    other_p = jnp.max(jnp.where(jax.nn.one_hot(test.labels, c, dtype=bool), -jnp.inf, sp), 1)
    norms = jnp.linalg.norm(prompt_raw, axis=1)
    pairs = sample_pairs(cfg.data, world, key=k_pairs, n=cfg.eval.num_samples)
    pos = jnp.mean(jnp.sum(f(pairs.x) * encode(enc["text"], pairs.y, cfg=cfg.model), axis=1))
    m = {
        "zs_accuracy": jnp.mean(hit),
        "zs_accuracy_rare": jnp.sum(hit * rare) / jnp.maximum(jnp.sum(rare), 1.0),
        "prompt_margin": jnp.median(true - other),
        "prompt_min_angle": _min_angle(class_emb),
        "prompt_norm_spread": jnp.std(norms) / jnp.mean(norms),
        "positive_cosine": pos,
        "planted_zs_accuracy": jnp.mean((true_p > other_p).astype(s.dtype)),
        "planted_min_angle": _min_angle(planted),
    }
    return RunOutput(history=out.history, metrics=m, first_bad_step=out.first_bad_step)


PROGRAM = Program("square_loss_zero_shot/zero_shot_geometry", zero_shot_geometry)


def setup(quick: bool) -> tuple[RunConfig, dict[str, list[int]], list[str], int]:
    """Base config, the dimensions of each latent condition, the objectives, the seeds."""
    base = RunConfig.from_dict(BASE)
    if quick:
        base = base.replace(**{"train.steps": 100, "eval.num_samples": 300})
        return base, {CONTROL_LATENTS: [2]}, ["clip", "square"], 2
    return base, DIMS, OBJECTIVES, 5


def run(base: RunConfig, dims: dict[str, list[int]], objectives: list[str], seeds: int,
        out: Path, quiet: bool) -> pd.DataFrame:
    """One sweep per latent condition, d x objective inside it."""
    frames = []
    for i, (label, ds) in enumerate(dims.items()):
        df = run_grid(f"{PREDICTION.name}_l{i}", base.replace(**LATENTS[label]),
                      {DIM: ds, NAME: objectives}, seeds=seeds, out=out, program=PROGRAM,
                      quiet=quiet)
        frames.append(df.assign(latents=label))
    return pd.concat(frames, ignore_index=True)


def _gap(stats: pd.DataFrame, cell: tuple, a: str, b: str) -> tuple[float, float]:
    ra, rb = stats.loc[(*cell, a)], stats.loc[(*cell, b)]
    return float(ra["mean"] - rb["mean"]), float(np.hypot(ra["se"], rb["se"]))


def _beats(gap: float, se: float) -> bool:
    return bool(gap > GAP and gap > SE_FACTOR * se)


def decide(df: pd.DataFrame, dims: dict[str, list[int]],
           objectives: list[str]) -> tuple[bool, ControlResult, dict]:
    """Per cell: each objective's numbers, CLIP's gaps over its rivals; the control."""
    by = ["latents", DIM, NAME]
    stats = {m: seed_stats(df, by, m).set_index(by) for m in METRICS}
    acc = stats["zs_accuracy"]
    rivals = [o for o in objectives if o != "clip"]
    numbers: dict[str, list] = {"latents": [], "embed_dim": []}
    for label, ds in dims.items():
        for d in ds:
            cell = (label, d)
            numbers["latents"].append(label)
            numbers["embed_dim"].append(d)
            for obj in objectives:
                for metric, table in stats.items():
                    row = table.loc[(*cell, obj)]
                    numbers.setdefault(f"{obj}_{metric}_mean", []).append(float(row["mean"]))
                    numbers.setdefault(f"{obj}_{metric}_se", []).append(float(row["se"]))
            clip_ok = float(acc.loc[(*cell, "clip")]["mean"]) >= CLIP_SUCCEEDS
            for rival in rivals:
                gap, se = _gap(acc, cell, "clip", rival)
                angle, angle_se = _gap(stats["prompt_min_angle"], cell, "clip", rival)
                numbers.setdefault(f"{rival}_gap", []).append(gap)
                numbers.setdefault(f"{rival}_gap_se", []).append(se)
                numbers.setdefault(f"{rival}_fails", []).append(clip_ok and _beats(gap, se))
                numbers.setdefault(f"{rival}_wins", []).append(_beats(-gap, se))
                numbers.setdefault(f"{rival}_angle_deficit", []).append(angle)
                numbers.setdefault(f"{rival}_angle_deficit_se", []).append(angle_se)
    passed = any(numbers["square_fails"])
    # positive control: the planted collision on the clip runs of the control cell
    cell = (CONTROL_LATENTS, max(dims[CONTROL_LATENTS]))
    final = df[df["final"]] if "final" in df else df
    clip_runs = final[(final["latents"] == cell[0]) & (final[DIM] == cell[1])
                      & (final[NAME] == "clip")]
    seeds = clip_runs.groupby("seed")[["zs_accuracy", "planted_zs_accuracy", "prompt_min_angle",
                                       "planted_min_angle"]].mean()
    n = len(seeds)

    def diff(a: str, b: str) -> tuple[float, float]:
        return (float(seeds[a].mean() - seeds[b].mean()),
                float(np.hypot(seeds[a].std(ddof=1), seeds[b].std(ddof=1)) / np.sqrt(n)))

    gap, se = diff("zs_accuracy", "planted_zs_accuracy")
    angle, angle_se = diff("prompt_min_angle", "planted_min_angle")
    ctrl_ok = _beats(gap, se) and angle > SE_FACTOR * angle_se
    numbers["control"] = {"cell": f"{cell[0]}, d = {cell[1]}", "accuracy_gap": gap,
                          "accuracy_gap_se": se, "angle_deficit_deg": angle,
                          "angle_deficit_se": angle_se,
                          "planted_accuracy": float(seeds["planted_zs_accuracy"].mean())}
    control = ControlResult(
        measured=f"{cell[0]}, d = {cell[1]}: clip {seeds['zs_accuracy'].mean():.3f} vs planted "
                 f"{seeds['planted_zs_accuracy'].mean():.3f} accuracy (gap {gap:+.3f} +- "
                 f"{se:.3f}); smallest prompt angle {seeds['prompt_min_angle'].mean():.1f} vs "
                 f"{seeds['planted_min_angle'].mean():.1f} deg", passed=ctrl_ok)
    return passed, control, numbers


def plot(numbers: dict, dims: dict[str, list[int]], objectives: list[str], base: RunConfig,
         seeds: int):
    """Columns: latent conditions; rows: accuracy, prompt margin, smallest prompt angle."""
    latents = list(dims)
    fig, axes = new_figure(ncols=len(latents), nrows=3, width=4.0, height=2.9)
    rows = [("zs_accuracy", "zero-shot top-1 accuracy"),
            ("prompt_margin", "median class-prompt margin"),
            ("prompt_min_angle", "smallest angle between\nclass prompts (deg)")]
    for j, label in enumerate(latents):
        idx = [i for i, lab in enumerate(numbers["latents"]) if lab == label]
        x = np.arange(len(idx))
        for r, (metric, ylabel) in enumerate(rows):
            ax = axes[r, j]
            for k, obj in enumerate(objectives):
                mean = np.array([numbers[f"{obj}_{metric}_mean"][i] for i in idx])
                se = np.nan_to_num(np.array([numbers[f"{obj}_{metric}_se"][i] for i in idx]))
                ax.errorbar(x + (k - 1) * 0.06, mean, yerr=se, marker="o", ms=4, capsize=3,
                            color=f"C{k}", label=obj)
            if metric == "zs_accuracy":
                ax.axhline(1.0 / K, color="k", ls=":", lw=1, label="chance 1/16")
                ax.set_ylim(0, 1.05)
            if metric == "prompt_min_angle":
                ax.set_ylim(bottom=0)
            ax.set_xticks(x, [str(numbers["embed_dim"][i]) for i in idx])
            ax.set_xlabel("embedding dimension d")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{label}", fontsize=9)
        for i_cell, i in enumerate(idx):
            if numbers["square_fails"][i]:
                axes[0, j].annotate("square fails", (i_cell, numbers["square_zs_accuracy_mean"][i]),
                                    textcoords="offset points", xytext=(4, -12), fontsize=7)
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle(
        "P3 (the paper's square-loss result): zero-shot top-1 accuracy, uniform test prior; "
        f"linear encoders, K = {K}, B = {base.train.batch_size}, {base.train.steps} steps, "
        f"clip tau = {base.objective.temperature:g}, noise {base.data.noise_scale:g};\n"
        f"geometric prior pi_c ~ 0.75^c; mean +- s.e. over {seeds} seeds", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def summarize(numbers: dict, objectives: list[str], control: ControlResult) -> str:
    """Where the square loss fails, where it does not, and the mechanism's numbers."""
    cells = [f"{lab}, d = {d}" for lab, d in zip(numbers["latents"], numbers["embed_dim"],
                                                  strict=True)]
    rivals = [o for o in objectives if o != "clip"]

    def where(rival: str, key: str) -> str:
        hits = [f"{c} ({numbers[rival + '_gap'][i]:+.2f})" for i, c in enumerate(cells)
                if numbers[f"{rival}_{key}"][i]]
        return "; ".join(hits) or "no cell"

    verdicts = [f"{r.capitalize()} fails (clip ahead by > 0.1 and 2 s.e., clip >= 0.5) in: "
                f"{where(r, 'fails')}; {r} beats clip in: {where(r, 'wins')}." for r in rivals]
    parts = []
    for i, c in enumerate(cells):
        acc = " / ".join(f"{numbers[f'{o}_zs_accuracy_mean'][i]:.2f}" for o in objectives)
        ang = " / ".join(f"{numbers[f'{o}_prompt_min_angle_mean'][i]:.0f}" for o in objectives)
        parts.append(f"{c}: {acc}, smallest prompt angle {ang} deg")
    return (" ".join(verdicts) + f" Per cell (accuracy {' / '.join(objectives)}): "
            + "; ".join(parts) + f". Positive control: {control.measured}.")


def main(quick: bool = False, out: str | Path = "runs/reproduce", quiet: bool = True) -> dict:
    """Run P3 and write ``square_loss_zero_shot.png`` and ``.json`` to ``out``."""
    started = time.perf_counter()
    out = Path(out)
    base, dims, objectives, seeds = setup(quick)
    df = run(base, dims, objectives, seeds, out, quiet)
    passed, control, numbers = decide(df, dims, objectives)
    fig = plot(numbers, dims, objectives, base, seeds)
    best = int(np.argmax(numbers["square_gap"]))
    key_numbers = {f"cells where {r} fails": int(sum(numbers[f"{r}_fails"]))
                   for r in objectives if r != "clip"}
    key_numbers.update({
        "cells where square beats clip": int(sum(numbers["square_wins"])),
        "largest clip - square gap": float(numbers["square_gap"][best]),
        "largest gap cell": f"{numbers['latents'][best]}, d = {numbers['embed_dim'][best]}",
        "control gap (clip - planted)": float(numbers["control"]["accuracy_gap"])})
    return finish(
        PREDICTION, out=out, fig=fig, passed=passed, control=control,
        key_numbers=key_numbers, numbers=numbers,
        configs={"base": base.to_dict(), "dims": dims, NAME: objectives,
                 "latents": {k: LATENTS[k] for k in dims}, "program": PROGRAM.key,
                 "control": {"latents": CONTROL_LATENTS, "planted": "prompts 12-15 := 0-3"}},
        seeds=list(range(seeds)), started=started, quick=quick,
        summary=summarize(numbers, objectives, control),
    )


if __name__ == "__main__":
    run_script(main, __doc__)
