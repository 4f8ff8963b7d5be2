"""P2: CLIP keeps the shared features and drops the modality-unique ones.

docs/theory.md, section 1: an image x = A_z z + A_xi xi + eps carries the shared latent
z and image-unique features xi that its caption does not describe (the caption
carries its own text-unique features zeta, and may omit shared coordinates).
Since xi is independent of the text, CLIP's objective gains nothing from it, and
the paper's argument predicts that training aligns the shared part and discards
the unique one. We train linear CLIP on one-hot data at a temperature fixed a
priori at tau = 0.1 (close to CLIP's initial 0.07; the default of this toolkit)
for 2000 steps, over the unique-feature scale sigma_xi = sigma_zeta (varied
together) and the caption omission rate p_omit, and measure on held-out pairs
the ridge R^2 from the image embedding to z and to xi, and, during training, the
share of the image encoder's weight energy on the unique block,
||W A_xi||_F^2 / (||W A_z||_F^2 + ||W A_xi||_F^2).

E5 is the caveat: once margins pass about tau*log(B-1) the CLIP gradient
decays like e^{-m/tau}, so unique weights that no longer cost margin are no
longer pushed out, and R^2(xi) can stay above zero.

Run: ``python experiments/alignment_unique_features.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from clipsim.config import RunConfig
from clipsim.experiment import Prediction, final_rows, finish, run_grid, run_script, seed_stats
from clipsim.plots import new_figure, plot_metric

PREDICTION = Prediction(
    key="P2",
    name="alignment_unique_features",
    title="CLIP keeps shared features, drops unique ones",
    claim="CLIP aligns the shared latent z and discards modality-unique features: R^2(z) "
          "high, R^2(xi) near zero, and the unique-block weight share falls during "
          "training, for growing sigma_xi, sigma_zeta and p_omit.",
    criterion="Averaged over seeds, at every grid point (sigma_xi = sigma_zeta in "
              "{0.25, 0.5, 1, 2} x p_omit in {0, 0.3}; tau = 0.1, 2000 steps): R^2(z) >= 0.8, "
              "R^2(xi) <= 0.2, and the final image unique-block weight share is below a "
              "tenth of its first logged value (step 50).",
)

BASE = {
    "data": {"family": "onehot", "num_concepts": 10, "image_dim": 32, "text_dim": 32,
             "image_unique_dim": 8, "text_unique_dim": 8, "noise_scale": 0.05},
    "model": {"kind": "linear", "embed_dim": 16},
    "objective": {"name": "clip", "temperature": 0.1},
    "train": {"steps": 2000, "batch_size": 128, "learning_rate": 0.01, "log_every": 50},
    "eval": {"num_samples": 2000},
}
SCALES = [0.25, 0.5, 1.0, 2.0]
OMITS = [0.0, 0.3]
R2_Z_MIN, R2_XI_MAX, SHARE_DROP = 0.8, 0.2, 0.1
SCALE = "data.image_unique_scale"
OMIT = "data.omit_prob"


def setup(quick: bool) -> tuple[RunConfig, list[float], list[float], int]:
    """Base config, scale grid, omission grid and number of seeds."""
    base = RunConfig.from_dict(BASE)
    if quick:
        base = base.replace(**{"train.steps": 200, "train.log_every": 20,
                               "eval.num_samples": 500})
        return base, [0.5, 2.0], OMITS, 2
    return base, SCALES, OMITS, 5


def run(base: RunConfig, scales: list[float], omits: list[float], seeds: int, out: Path,
        quiet: bool) -> pd.DataFrame:
    """Train every (scale, omission, seed) point; sigma_xi and sigma_zeta move together."""
    return run_grid(PREDICTION.name, base, {OMIT: omits}, seeds=seeds, out=out, quiet=quiet,
                    zip_groups=[{SCALE: scales, "data.text_unique_scale": scales}])


def share_drop(df: pd.DataFrame) -> pd.DataFrame:
    """Per grid point: seed mean of the image unique share at the first logged step,
    half-way through training, and at the end; ``ratio`` = final / first."""
    def at(step: int) -> pd.Series:
        return df[df["step"] == step].groupby([OMIT, SCALE])["unique_share_image"].mean()

    steps = np.sort(df["step"].unique())
    last = final_rows(df).groupby([OMIT, SCALE])["unique_share_image"].mean()
    table = pd.DataFrame({"first": at(steps[0]), "half": at(steps[len(steps) // 2 - 1]),
                          "final": last}).reset_index()
    table["ratio"] = table["final"] / table["first"]
    return table


def decide(df: pd.DataFrame) -> tuple[bool, dict]:
    """Apply the criterion; return the verdict and the per-point numbers."""
    by = [OMIT, SCALE]
    r2z = seed_stats(df, by, "r2_shared")
    r2xi = seed_stats(df, by, "r2_image_unique")
    r2zeta = seed_stats(df, by, "r2_text_unique")
    acc = seed_stats(df, by, "zs_accuracy")
    margin = seed_stats(df, by, "margin_median")
    shares = share_drop(df)
    ok_z = r2z["mean"].to_numpy() >= R2_Z_MIN
    ok_xi = r2xi["mean"].to_numpy() <= R2_XI_MAX
    ok_share = shares["ratio"].to_numpy() < SHARE_DROP
    ok_all = ok_z & ok_xi & ok_share
    passed = bool(ok_all.all())
    numbers = {
        "omit_prob": r2z[OMIT].tolist(), "unique_scale": r2z[SCALE].tolist(),
        "r2_shared_mean": r2z["mean"].tolist(), "r2_shared_se": r2z["se"].tolist(),
        "r2_image_unique_mean": r2xi["mean"].tolist(), "r2_image_unique_se": r2xi["se"].tolist(),
        "r2_text_unique_mean": r2zeta["mean"].tolist(), "r2_text_unique_se": r2zeta["se"].tolist(),
        "zs_accuracy_mean": acc["mean"].tolist(), "zs_accuracy_se": acc["se"].tolist(),
        "margin_median_mean": margin["mean"].tolist(), "margin_median_se": margin["se"].tolist(),
        "unique_share_first_mean": shares["first"].tolist(),
        "unique_share_half_mean": shares["half"].tolist(),
        "unique_share_final_mean": shares["final"].tolist(),
        "unique_share_ratio": shares["ratio"].tolist(),
        "first_logged_step": int(df["step"].min()),
        "half_step": int(np.sort(df["step"].unique())[df["step"].nunique() // 2 - 1]),
        "tau_log_b_minus_1": float(np.log(df["train.batch_size"].iloc[0] - 1)
                                   * df["objective.temperature"].iloc[0]),
        "points_r2z_ok": int(ok_z.sum()), "points_r2xi_ok": int(ok_xi.sum()),
        "points_share_ok": int(ok_share.sum()), "points_all_ok": int(ok_all.sum()),
        "points": len(r2z),
    }
    return passed, numbers


def plot(df: pd.DataFrame, base: RunConfig, scales: list[float], omits: list[float]):
    """Top: R^2(z), R^2(xi), R^2(zeta) vs scale. Bottom: unique share vs step; margins."""
    fig, axes = new_figure(ncols=3, nrows=2, width=4.2, height=3.3)
    panels = [("r2_shared", "R^2(z)", "shared latent z (kept?)", R2_Z_MIN, "criterion >= 0.8"),
              ("r2_image_unique", "R^2(xi)", "image-unique xi (dropped?)", R2_XI_MAX,
               "criterion <= 0.2"),
              ("r2_text_unique", "R^2(zeta)", "text-unique zeta (text encoder)", None, None)]
    for ax, (metric, short, title, line, text) in zip(axes[0], panels, strict=True):
        plot_metric(df, SCALE, metric, hue=OMIT, ax=ax, logx=True)
        if line is not None:
            ax.axhline(line, color="k", ls="--", lw=1, label=text)
        _scale_axis(ax, scales)
        ax.set_ylabel(f"held-out ridge {short}")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{short}: {title}", fontsize=9)
        ax.legend(title="p_omit", fontsize=7)
    k, kx = base.data.num_concepts, base.data.image_unique_dim
    for ax, omit in zip(axes[1, :2], omits, strict=True):
        sub = df[df[OMIT] == omit]
        plot_metric(sub, "step", "unique_share_image", hue=SCALE, ax=ax)
        ax.axhline(kx / (k + kx), color="gray", ls=":", lw=1,
                   label="random init, kx/(k+kx)")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("image unique-block weight share")
        ax.set_title(f"unique weight share during training, p_omit = {omit:g}", fontsize=9)
        ax.legend(title="sigma_xi = sigma_zeta", fontsize=7)
    ax = axes[1, 2]
    plot_metric(df, SCALE, "margin_median", hue=OMIT, ax=ax, logx=True)
    b, tau = base.train.batch_size, base.objective.temperature
    ax.axhline(tau * np.log(b - 1), color="k", ls="--", lw=1,
               label=f"tau log(B-1) = {tau * np.log(b - 1):.2f} (E5)")
    _scale_axis(ax, scales)
    ax.set_ylabel("median test margin")
    ax.set_title("median margin vs E5 saturation level", fontsize=9)
    ax.set_ylim(-0.05, 1.15)
    ax.legend(title="p_omit", fontsize=7, loc="upper right")
    fig.suptitle(f"Linear CLIP, one-hot K = {k}, tau = {tau:g}, B = {b}, {base.train.steps} "
                 "steps (mean +- s.e. over seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def _scale_axis(ax, scales: list[float]) -> None:
    """Log x axis ticked at the grid's scales."""
    from matplotlib.ticker import NullLocator

    ax.set_xticks(scales, [f"{s:g}" for s in scales])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("unique-feature scale sigma_xi = sigma_zeta")


def summarize(numbers: dict, passed: bool) -> str:
    """One paragraph on what was found."""
    omit = np.asarray(numbers["omit_prob"])
    r2z = np.asarray(numbers["r2_shared_mean"])
    r2xi = np.asarray(numbers["r2_image_unique_mean"])
    r2zeta = np.asarray(numbers["r2_text_unique_mean"])
    ratio = np.asarray(numbers["unique_share_ratio"])
    late = (np.asarray(numbers["unique_share_final_mean"])
            / np.asarray(numbers["unique_share_half_mean"]))
    margin = np.asarray(numbers["margin_median_mean"])
    final = np.asarray(numbers["unique_share_final_mean"])
    clean = omit == 0
    return (
        f"R^2(z) ranges {r2z.min():.3f}-{r2z.max():.3f} over the grid "
        f"({numbers['points_r2z_ok']}/{numbers['points']} points >= {R2_Z_MIN}). R^2(xi) ranges "
        f"{r2xi.min():.3f}-{r2xi.max():.3f} ({numbers['points_r2xi_ok']}/{numbers['points']} "
        f"points <= {R2_XI_MAX}) and grows with the unique scale; R^2(zeta) of the text encoder "
        f"is {r2zeta[clean].min():.3f}-{r2zeta[clean].max():.3f} without omission and "
        f"{r2zeta[~clean].min():.3f}-{r2zeta[~clean].max():.3f} with it. The image unique-block "
        f"weight share falls to {ratio.min():.3f}-{ratio.max():.3f} of its value at step "
        f"{numbers['first_logged_step']} ({numbers['points_share_ok']}/{numbers['points']} points "
        f"below {SHARE_DROP}); without omission it then plateaus (final / step-"
        f"{numbers['half_step']} ratio {late[clean].min():.2f}-{late[clean].max():.2f}) while "
        f"the median margin, {margin[clean].min():.3f}-{margin[clean].max():.3f}, is above "
        f"tau log(B-1) = {numbers['tau_log_b_minus_1']:.3f}, consistent with E5 saturation: the "
        f"loss stops pushing the residual unique weights out. A residual share of "
        f"{final.min():.2%}-{final.max():.2%} still leaves xi linearly decodable from the "
        f"embedding (R^2 does not depend on how small the residual is, only on what else "
        f"varies in the same directions), so R^2(xi) measures decodability, not weight. "
        + ("Every part of the criterion holds." if passed else "The criterion is not met.")
    )


def main(quick: bool = False, out: str | Path = "runs/reproduce", quiet: bool = True) -> dict:
    """Run P2 and write ``alignment_unique_features.png`` and ``.json`` to ``out``."""
    started = time.perf_counter()
    out = Path(out)
    base, scales, omits, seeds = setup(quick)
    df = run(base, scales, omits, seeds, out, quiet)
    passed, numbers = decide(df)
    fig = plot(df, base, scales, omits)
    r2xi = numbers["r2_image_unique_mean"]
    return finish(
        PREDICTION, out=out, fig=fig, passed=passed,
        key_numbers={"min R^2(z)": float(min(numbers["r2_shared_mean"])),
                     "max R^2(xi)": float(max(r2xi)),
                     "max share ratio": float(max(numbers["unique_share_ratio"])),
                     "points passing": f"{numbers['points_all_ok']}/{numbers['points']}"},
        numbers=numbers,
        configs={"base": base.to_dict(), "grid": {OMIT: omits},
                 "zip": {SCALE: scales, "data.text_unique_scale": scales}},
        seeds=list(range(seeds)), started=started, quick=quick,
        summary=summarize(numbers, passed),
    )


if __name__ == "__main__":
    run_script(main, __doc__)
