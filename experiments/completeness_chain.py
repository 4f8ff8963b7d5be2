"""T1: the completeness chain, from the data's profile to a trained model's margins and errors.

Design (criterion 2, fixed 2026-12-02 after an independent review of the first full run)
---------------------------------------------------------------------------------------
Claim (the paper's central shape). Data whose oracle is (alpha, beta, gamma)-complete
admits encoders with a small CLIP loss; a near-optimal model then has an excess over
the E3 floor no larger, hence margins of order tau*log(delta/excess) on all but a
delta share of its collision-free rows, hence a small top-r error.

Predictions from the data alone (``clipsim.theory``, proofs in docs/theory.md):

0. the data's bound (exact): the oracle's excess over the exact E3 floor F is at most
   eps_e4 = (U_row + U_col)/2 - F, U the E4 bound (the smaller of the Jensen and the
   best-gamma profile bound) on the oracle's row and column losses from 40,000
   independent pairs of pairs (Monte Carlo, with standard errors);
1. budget: a near-optimal model, a minimizer over a class that holds the oracle
   (``embed_dim`` = the oracle's dimension in every setting), has an excess no larger
   than the oracle's: eps_pred = the oracle's excess on the very held-out batches the
   trained model is measured on (the oracle is a function of the data alone). Link 1
   is the paired difference, trained minus oracle loss on the same batches, <= 0
   within 3 s.e. over seeds; it is an empirical claim (the paper's chain takes a
   near-optimal model as given), and eps_e4 is the theorem's bound on eps_pred;
2. margin: P(mhat_i <= mu_pred) <= delta = 0.1 for the collision-adjusted margin
   mhat_i = (best same-latent score) - (best foreign score) + tau log n_i (the
   ordinary in-batch margin when n_i = 1), with
   mu_pred = ``guaranteed_margin(2 eps_pred, delta, tau)`` (row excess <= 2x the
   symmetric excess);
3. top-r: P(n_i = 1, rank_i > r) <= 2 eps_pred / log(1 + r) (``top_r_error_bound``);
4. transfer (beyond the exact links: class prompts rank like captions): zero-shot
   top-r error <= the same bound.

Settings move alpha and beta: one-hot K = 10 with noise 0.05 (base), caption omission
0.1, noise 0.2, K = 40 (smaller beta), and sparse latents with exactly 2 of 10
concepts (45 values, overlapping latents). Linear CLIP, d = the oracle's dimension
(10; 40 at K = 40), tau = 0.1, B = 64,
2000 steps with a cosine schedule (the chain is about near-optimal models: training
gets its best plain chance), 5 seeds. The base noise (0.05) was chosen from the data
predictions alone, before any training, so that the base chain is not vacuous (at
noise 0.1 the budget gives mu_pred < 0 and the planted control could not register);
omission and noise 0.2 are expected to make the chain vacuous (a one-hot caption that
omits its concept is empty), which the record reports.

Measured per run on 64 held-out batches of B (evaluation key stream): the
symmetric and row excess over F, the rates P(mhat_i <= mu) on a grid of
mu (read at the first grid point at or above mu_pred: conservative) and
P(n_i = 1, >= r negatives at or above the positive); zero-shot top-r error (clean
prompts) from the default evaluation.

Criterion. Every measured quantity on the safe side of its predicted bound in
every setting, within 3 standard errors over seeds: the oracle's excess <= eps_e4
(link 0), the paired trained-minus-oracle loss <= 0 (link 1), the margin rate <=
delta, each top-r rate and each zero-shot top-r error <= its bound. Tightness
(measured / bound) is reported, and a link is called vacuous where its bound is >= 1
(rates) or mu_pred <= 0.

Positive control. A planted bad model, the oracle with its image side corrupted
(f(x) = normalize(A_z^T x + 3 G x), G a fixed Gaussian matrix), on the same
batches, base setting, measured by the same statistics: (a) link 1 must see it
(its paired loss above the oracle's by more than 3 s.e.), and must also see the near
miss it exists to catch, trained linear CLIP with less capacity than the oracle (d = 10
at K = 40, the first design's setting); (b) the bad model must violate the
margin guarantee that holds only for near-optimal models (its rate P(mhat_i <=
mu_pred) above delta by more than 3 s.e.) while the exact link with its own excess
(rate <= eps_bad / log(1 + e^{-mu/tau})) holds: the metric can see a violation,
and the guarantee is not true of any model.

Criterion 1 (2026-12-01, superseded) took eps_pred = min(eps_e4, the oracle's loss
on 256 other batches), unpaired, and kept d = 10 at K = 40. The review found: the
K = 40 link-1 failure compared a 10-dimensional model with a 40-dimensional oracle
(a capacity question the chain does not ask), the minimum of two noisy estimates
biases the budget low, and the control covered the margin link only.

Known weaknesses of criterion 2 (a second review): where the oracle is not optimal
(noise, omission) a trained model can beat it, and link 1 then passes easily; taking
eps_pred as the oracle's excess (no minimum with E4) raises the budget, so mu_pred is
lower and the top-r bounds higher than in the first design; the s.e. of eps_pred is
not carried into the margin and top-r bounds; E4's bound is the smaller of the Jensen
and the best-gamma profile bound, a selection that biases link 0's bound low (stricter).

Adversary's notes. Links 2 and 3 are exact given the measured excess (checked and
recorded as ``exact_links_hold``); the chain can fail at link 1 (training not
near-optimal: eps_trained > eps_pred) or at link 4 (prompts are not captions). At
tau = 0.1 the profile bound charges alpha e^{2/tau} = alpha e^{20}, so any oracle
near-miss makes it vacuous; the Jensen bound is used where it is smaller. Where the
budget is large the margin and top-r bounds are vacuous and cannot fail: the
record says where.

Run: ``python experiments/completeness_chain.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from clipsim import theory
from clipsim.config import RunConfig
from clipsim.data import get_latent_family, oracle_encoders, sample_pairs
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
)
from clipsim.metrics import same_latent_mask
from clipsim.models import normalize_rows
from clipsim.plots import new_figure
from clipsim.sweep.engine import Program, RunOutput
from clipsim.train import STREAM_EVAL, embedding_functions, train_program, world_for

PREDICTION = Prediction(
    key="T1",
    name="completeness_chain",
    title="The completeness chain: data profile -> excess budget -> margin -> top-r error",
    claim="From the data's completeness profile alone, the chain predicts the excess loss a "
          "near-optimal CLIP model reaches, a margin of order tau*log(delta/excess) on all but "
          "a delta share of pairs, and a top-r error bound; a trained model "
          "sits on the safe side of each.",
    criteria=(Criterion(
        text="In every setting, within 3 combined standard errors: trained excess <= predicted "
             "budget eps_pred; P(mhat_i <= mu_pred) <= 0.1 (mhat: collision-adjusted in-batch "
             "margin); P(n_i = 1, rank > r) <= "
             "2 eps_pred / log(1 + r) for r in (1, 3, 5); zero-shot top-r error <= the same "
             "bound. Confirmed when all hold; not confirmed otherwise.",
        adopted="2026-12-01",
        reason="First criterion of a new experiment, fixed before its first full run.",
        verdict="not confirmed"), Criterion(
        text="Linear CLIP with embed_dim = the oracle's dimension in every setting. In every "
             "setting, within 3 s.e. over seeds: the oracle's excess on the held-out batches "
             "<= eps_e4 (the data's E4 bound, exact); trained minus oracle loss on the same "
             "batches (paired) <= 0; with eps_pred = the oracle's excess, P(mhat_i <= mu_pred) "
             "<= 0.1, P(n_i = 1, rank > r) <= 2 eps_pred / log(1 + r) for r in (1, 3, 5), and "
             "zero-shot top-r error <= the same bound. Confirmed when all hold; not confirmed "
             "otherwise.",
        adopted="2026-12-02",
        reason="An independent review of the first full run: at K = 40 a 10-dimensional model "
               "was held to a 40-dimensional oracle's loss (a capacity mismatch, not the "
               "chain); the budget min(E4, the oracle's loss on other batches) was unpaired "
               "and biased low by the minimum; the control did not cover link 1."),),
    control=Control(
        setting="a planted bad model (oracle with a corrupted image encoder) on the same "
                "batches, base setting; and trained linear CLIP with less capacity than the "
                "oracle (d = 10 at K = 40), the near miss link 1 exists to catch",
        expected="link 1 sees both (paired loss above the oracle's by more than 3 s.e.); the "
                 "bad model's rate P(mhat_i <= mu_pred) exceeds delta by more than 3 s.e. "
                 "while the exact link with its own excess holds"),
)

BASE = {
    "data": {"family": "onehot", "num_concepts": 10, "image_dim": 64, "text_dim": 64,
             "image_unique_dim": 8, "text_unique_dim": 8, "noise_scale": 0.05,
             "omit_prob": 0.0},
    "model": {"kind": "linear", "embed_dim": 10},
    "objective": {"name": "clip", "temperature": 0.1},
    "train": {"steps": 2000, "batch_size": 64, "learning_rate": 0.01, "schedule": "cosine",
              "log_every": 100},
    "eval": {"num_samples": 2000, "top_r": [1, 3, 5]},
}
SETTINGS: dict[str, dict] = {
    "one-hot K=10": {},
    "omission 0.1": {"data.omit_prob": 0.1},
    "noise 0.2": {"data.noise_scale": 0.2},
    "one-hot K=40": {"data.num_concepts": 40, "model.embed_dim": 40},
    "sparse 2 of 10": {"data.family": "sparse", "data.sparse_active": 2},
}
DELTA = 0.1
CAPACITY_ARM = {"data.num_concepts": 40, "model.embed_dim": 10}  # the control's near miss
EVAL_BATCHES = 64
MU_GRID = np.round(np.arange(-1.0, 2.0001, 0.02), 4)
PROFILE_PAIRS = 40_000
GAMMAS = np.linspace(0.0, 1.0, 51)
BAD_SCALE = 3.0


def _bad_image_encoder(cfg: RunConfig, world):
    """The planted bad model's image side: normalize(A_z^T x + 3 G x), G fixed by data.seed."""
    g = jax.random.normal(jax.random.fold_in(jax.random.key(cfg.data.seed), 99),
                          (cfg.data.num_concepts, cfg.data.image_dim), world.shared_x.dtype)
    g = g / jnp.sqrt(cfg.data.image_dim)
    return lambda x: normalize_rows(x @ world.shared_x + BAD_SCALE * x @ g.T)


def _batch_stats(fa, fb, z, b, tau):
    """Per held-out batch: symmetric and row loss, margin-rate curve, top-r rates."""
    nb = fa.shape[0] // b
    fa, fb, z = (a[: nb * b].reshape(nb, b, -1) for a in (fa, fb, z))
    s = jnp.einsum("tid,tjd->tij", fa, fb)
    diag = jnp.diagonal(s, axis1=1, axis2=2)
    row = jax.nn.logsumexp(s / tau, axis=2) - diag / tau
    col = jax.nn.logsumexp(s / tau, axis=1) - diag / tau
    same = jax.vmap(same_latent_mask)(z)
    counts = jnp.sum(same, axis=2)
    single = counts == 1
    # collision-adjusted margin: best same-latent score - best foreign score + tau log n_i
    margin = (jnp.max(jnp.where(same, s, -jnp.inf), axis=2)
              - jnp.max(jnp.where(same, -jnp.inf, s), axis=2) + tau * jnp.log(counts))
    off = jnp.where(jnp.eye(b, dtype=bool), -jnp.inf, s)
    above = jnp.sum(off >= diag[..., None], axis=2)
    mu = jnp.asarray(MU_GRID, s.dtype)
    rate = jnp.mean(margin[..., None] <= mu, axis=(0, 1))
    tops = jnp.stack([jnp.mean(single & (above >= r)) for r in (1, 3, 5)])
    sym = 0.5 * (jnp.mean(row, axis=1) + jnp.mean(col, axis=1))
    return {"loss": jnp.mean(sym), "loss_se": jnp.std(sym, ddof=1) / jnp.sqrt(nb),
            "row_loss": jnp.mean(row), "margin_rate": rate, "top_rate": tops}


def chain_program(cfg: RunConfig, key: jax.Array) -> RunOutput:
    """Train; the chain's measured quantities for the model and for the planted bad model."""
    out = train_program(cfg, key)
    world = world_for(cfg)
    k_pairs, k_default = jax.random.split(jax.random.fold_in(key, STREAM_EVAL))
    b, tau = cfg.train.batch_size, cfg.objective.temperature
    pairs = sample_pairs(cfg.data, world, key=k_pairs, n=EVAL_BATCHES * b)
    f, g = embedding_functions(out.params, cfg)
    mine = _batch_stats(f(pairs.x), g(pairs.y), pairs.z, b, tau)
    f_star, g_star = oracle_encoders(cfg.data, world, normalize=True)
    oracle = _batch_stats(f_star(pairs.x), g_star(pairs.y), pairs.z, b, tau)
    bad = _batch_stats(_bad_image_encoder(cfg, world)(pairs.x), g_star(pairs.y), pairs.z, b, tau)
    default = evaluate_program(cfg, out.params, k_default)
    metrics = {**mine, **{f"bad_{k}": v for k, v in bad.items()},
               **{f"oracle_{k}": oracle[k] for k in ("loss", "row_loss")},
               **{f"zs_top{r}_error": default[f"zs_top{r}_error"] for r in (1, 3, 5)}}
    return RunOutput(history=out.history, metrics=metrics, first_bad_step=out.first_bad_step)


PROGRAM = Program(name="completeness_chain/chain", fn=chain_program, version="2")


def data_predictions(cfg: RunConfig) -> dict:
    """The data's side before training: the oracle's profile, its E4 bound, the exact floor."""
    world = world_for(cfg)
    f, g = oracle_encoders(cfg.data, world, normalize=True)
    pairs = sample_pairs(cfg.data, world, key=jax.random.key(12345), n=2 * PROFILE_PAIRS)
    x1, x2 = pairs.x[:PROFILE_PAIRS], pairs.x[PROFILE_PAIRS:]
    y1, y2 = pairs.y[:PROFILE_PAIRS], pairs.y[PROFILE_PAIRS:]
    same = jnp.all(pairs.z[:PROFILE_PAIRS] == pairs.z[PROFILE_PAIRS:], axis=1)
    fx1, fx2, gy1, gy2 = f(x1), f(x2), g(y1), g(y2)
    pos = jnp.sum(fx1 * gy1, 1)
    d_row, d_col = jnp.sum(fx1 * gy2, 1) - pos, jnp.sum(fx2 * gy1, 1) - pos
    b, tau = cfg.train.batch_size, float(cfg.objective.temperature)
    uppers = []
    for d in (d_row, d_col):
        best = theory.best_profile_bound(d, same, tau, b, 1.0, GAMMAS).best
        cand = [(float(best.jensen), float(best.jensen_stderr), "jensen"),
                (float(best.profile), float(best.profile_stderr), "profile")]
        uppers.append(min(cand))
    profile = theory.completeness_profile(d_row, same, GAMMAS)
    floor = theory.family_floor(get_latent_family(cfg.data.family), cfg.data, b,
                                key=jax.random.key(0)).value
    e4_eps = theory.excess_budget(uppers[0][0], uppers[1][0], floor)
    e4_se = 0.5 * math.hypot(uppers[0][1], uppers[1][1])
    return {"floor": floor, "upper_row": uppers[0][0], "upper_col": uppers[1][0],
            "upper_kind": [u[2] for u in uppers], "eps_e4": e4_eps, "eps_e4_se": e4_se,
            "beta": float(profile.beta), "alpha": np.asarray(profile.alpha).tolist(),
            "gammas": GAMMAS.tolist()}


def budget_predictions(pred: dict, rows: pd.DataFrame, tau: float) -> dict:
    """eps_pred (the oracle's excess on the held-out batches) and what it predicts.

    Adds to ``pred``: ``eps_pred`` and its s.e. over seeds, ``mu_pred`` and the top-r
    bounds. The oracle's loss is a function of the data alone; measuring it on the
    trained model's own batches pairs the two (no selection among noisy estimates).
    """
    eps, eps_se = _mean_se(rows["oracle_loss"].to_numpy(float) - pred["floor"])
    # capped at 2, the largest margin of unit vectors (a lower level is a weaker, valid claim)
    mu = min(theory.guaranteed_margin(2 * eps, DELTA, tau), 2.0)
    return {**pred, "eps_pred": eps, "eps_pred_se": eps_se, "mu_pred": mu,
            "top_bound": [theory.top_r_error_bound(2 * eps, r) for r in (1, 3, 5)]}


def _rate_at(rows: pd.DataFrame, prefix: str, mu: float) -> np.ndarray:
    """Per-run rate P(mhat <= mu) at the first grid point >= mu (conservative)."""
    idx = int(np.searchsorted(MU_GRID, mu)) if math.isfinite(mu) else len(MU_GRID) - 1
    idx = min(max(idx, 0), len(MU_GRID) - 1)
    return rows[f"{prefix}margin_rate[{idx}]"].to_numpy(float)


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    return float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def analyse(name: str, rows: pd.DataFrame, pred: dict, tau: float) -> dict:
    """Measured against predicted, per link, for one setting."""
    eps_runs = rows["loss"].to_numpy(float) - pred["floor"]
    row_eps = rows["row_loss"].to_numpy(float) - pred["floor"]
    eps_m, _ = _mean_se(eps_runs)
    # (measured, its s.e., bound, the bound's s.e.); link 1 is paired: trained - oracle <= 0
    checks = {"data_bound": (pred["eps_pred"], pred["eps_pred_se"], pred["eps_e4"],
                             pred["eps_e4_se"]),
              "budget": (*_mean_se(rows["loss"].to_numpy(float)
                                   - rows["oracle_loss"].to_numpy(float)), 0.0, 0.0)}
    rate_m, rate_se = _mean_se(_rate_at(rows, "", pred["mu_pred"]))
    checks["margin"] = (rate_m, rate_se, DELTA, 0.0)
    for i, r in enumerate((1, 3, 5)):
        checks[f"top{r}"] = (*_mean_se(rows[f"top_rate[{i}]"].to_numpy(float)),
                             pred["top_bound"][i], 0.0)
        checks[f"zero_shot_top{r}"] = (*_mean_se(rows[f"zs_top{r}_error"].to_numpy(float)),
                                       pred["top_bound"][i], 0.0)
    out = {"setting": name, "eps_trained": eps_m, "row_excess_trained": float(np.mean(row_eps)),
           "links": {}}
    for link, (m, se, bound, bse) in checks.items():
        tol = 3 * math.hypot(se, bse)
        vacuous = bound >= 1.0 if link not in ("budget", "data_bound") else False
        if link == "margin":
            vacuous = not pred["mu_pred"] > 0
        out["links"][link] = {"measured": m, "se": se, "bound": bound,
                              "holds": bool(m <= bound + tol),
                              "ratio": m / bound if bound > 0 else None,
                              "vacuous": bool(vacuous)}
    exact = []
    for i, mu in enumerate(MU_GRID):
        bound = theory.margin_violation_bound(row_eps, mu, tau)
        exact.append(bool(np.all(rows[f"margin_rate[{i}]"].to_numpy(float) <= bound + 0.02)))
    out["exact_links_hold"] = bool(all(exact))
    return out


def setup(quick: bool) -> tuple[RunConfig, dict[str, dict], int]:
    """Base config, settings and number of seeds."""
    base = RunConfig.from_dict(BASE)
    if quick:
        base = base.replace(**{"train.steps": 200, "eval.num_samples": 500})
        return base, {k: SETTINGS[k] for k in ("one-hot K=10", "noise 0.2")}, 2
    return base, SETTINGS, 5


def plot(results: list[dict], preds: dict[str, dict], base: RunConfig, seeds: int):
    """Profiles alpha(gamma); excess measured vs budget; rates measured vs bounds."""
    fig, axes = new_figure(ncols=3, width=4.3, height=3.5)
    ax = axes[0, 0]
    for i, (name, p) in enumerate(preds.items()):
        ax.plot(p["gammas"], np.maximum(p["alpha"], 1e-6), color=f"C{i}",
                label=f"{name} (beta = {p['beta']:.3f})")
    ax.set_yscale("log")
    ax.set_xlabel("margin level gamma")
    ax.set_ylabel("alpha(gamma) of the oracle (floored at 1e-6)")
    ax.set_title("data: completeness profile")
    ax.legend(fontsize=6)
    ax = axes[0, 1]
    names = [r["setting"] for r in results]
    xs = np.arange(len(names))
    ax.bar(xs, [preds[n]["eps_e4"] for n in names], 0.6, color="0.8",
           label="E4 bound from the data's profile")
    ax.errorbar(xs - 0.12, [preds[n]["eps_pred"] for n in names],
                yerr=[3 * preds[n]["eps_pred_se"] for n in names], fmt="s", color="C0",
                label="oracle's excess eps_pred (+- 3 s.e.)")
    ax.errorbar(xs + 0.12, [r["eps_trained"] for r in results],
                yerr=[3 * r["links"]["budget"]["se"] for r in results], fmt="o", color="C3",
                label="trained excess (paired difference +- 3 s.e.)")
    ax.set_yscale("log")
    ax.set_xticks(xs, names, rotation=25, fontsize=7)
    ax.set_ylabel("excess over the E3 floor (nats)")
    ax.set_title("links 0-1: data bound >= oracle >= trained")
    ax.legend(fontsize=6)
    ax = axes[0, 2]
    markers = {"margin": "o", "top1": "s", "top3": "^", "zero_shot_top1": "x",
               "zero_shot_top3": "+"}
    for link, mk in markers.items():
        bx = [min(r["links"][link]["bound"], 1.0) for r in results]
        my = [r["links"][link]["measured"] for r in results]
        ax.scatter(bx, my, marker=mk, label=link)
    ax.plot([1e-4, 1], [1e-4, 1], "k--", lw=1, label="measured = bound")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlim(1e-3, 1.2)
    ax.set_ylim(-1e-4, 1.2)
    ax.set_xlabel("predicted bound (capped at 1)")
    ax.set_ylabel("measured rate")
    ax.set_title("links 2-4: safe side is below the diagonal")
    ax.legend(fontsize=6)
    fig.suptitle(
        f"T1 (paper's chain: completeness -> near-optimal loss -> margin ~ tau log(1/eps) -> "
        f"zero-shot error): linear CLIP, tau = {base.objective.temperature:g}, B = "
        f"{base.train.batch_size}, delta = {DELTA}; {seeds} seeds", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def main(quick: bool = False, out: str | Path = "runs/reproduce", quiet: bool = True) -> dict:
    """Run T1 and write ``completeness_chain.png`` and ``.json`` to ``out``."""
    started = time.perf_counter()
    out = Path(out)
    base, settings, seeds = setup(quick)
    tau = float(base.objective.temperature)
    results, preds, control_rows = [], {}, None
    for i, (name, over) in enumerate(settings.items()):
        cfg = base.replace(**over)
        rows = final_rows(run_grid(f"{PREDICTION.name}_{i}", cfg, {}, seeds=seeds, out=out,
                                   program=PROGRAM, quiet=quiet))
        preds[name] = budget_predictions(data_predictions(cfg), rows, tau)
        results.append(analyse(name, rows, preds[name], tau))
        if i == 0:
            control_rows = rows
    p0 = preds[next(iter(preds))]
    bad_rate, bad_se = _mean_se(_rate_at(control_rows, "bad_", p0["mu_pred"]))
    bad_eps = control_rows["bad_row_loss"].to_numpy(float) - p0["floor"]
    bad_exact = all(
        bool(np.all(control_rows[f"bad_margin_rate[{i}]"].to_numpy(float)
                    <= theory.margin_violation_bound(bad_eps, mu, tau) + 0.02))
        for i, mu in enumerate(MU_GRID))
    bad_gap, bad_gap_se = _mean_se(control_rows["bad_loss"].to_numpy(float)
                                   - control_rows["oracle_loss"].to_numpy(float))
    # the near miss link 1 exists to catch: a trained model with less capacity than the oracle
    narrow = final_rows(run_grid(f"{PREDICTION.name}_capacity", base.replace(**CAPACITY_ARM), {},
                                 seeds=seeds, out=out, program=PROGRAM, quiet=quiet))
    narrow_gap, narrow_gap_se = _mean_se(narrow["loss"].to_numpy(float)
                                         - narrow["oracle_loss"].to_numpy(float))
    link1_sees_it = bool(bad_gap > 3 * bad_gap_se and narrow_gap > 3 * narrow_gap_se)
    control_ok = bool(link1_sees_it and bad_rate > DELTA + 3 * bad_se and bad_exact)
    measured = {"bad_rate_at_mu_pred": bad_rate, "se": bad_se, "mu_pred": p0["mu_pred"],
                "bad_row_excess": float(np.mean(bad_eps)), "exact_link_holds": bad_exact,
                "bad_minus_oracle_loss": bad_gap, "bad_minus_oracle_loss_se": bad_gap_se,
                "capacity_arm": CAPACITY_ARM, "narrow_minus_oracle_loss": narrow_gap,
                "narrow_minus_oracle_loss_se": narrow_gap_se,
                "link1_detects": link1_sees_it}
    passed = bool(all(link["holds"] for r in results for link in r["links"].values()))
    fig = plot(results, preds, base, seeds)
    lines = []
    for r in results:
        bl = r["links"]
        p = preds[r["setting"]]
        lines.append(
            f"{r['setting']}: E4 bound {p['eps_e4']:.4f} >= oracle excess {p['eps_pred']:.4f}; "
            f"trained excess {r['eps_trained']:.4f} (trained - oracle "
            f"{bl['budget']['measured']:+.4f} +- {bl['budget']['se']:.4f}); mu_pred "
            f"{p['mu_pred']:.3f}, margin "
            f"rate {bl['margin']['measured']:.3f} vs {DELTA}"
            f"{' (vacuous)' if bl['margin']['vacuous'] else ''}; top-1 rate "
            f"{bl['top1']['measured']:.3f} vs {bl['top1']['bound']:.3f}, zero-shot top-1 error "
            f"{bl['zero_shot_top1']['measured']:.3f}")
    failed = [f"{r['setting']}/{k}" for r in results for k, v in r["links"].items()
              if not v["holds"]]
    summary = ("; ".join(lines) + f". Failed links: {', '.join(failed) or 'none'}. Exact links "
               f"(with the measured excess) hold in "
               f"{sum(r['exact_links_hold'] for r in results)}/{len(results)} settings. Control: "
               f"a trained d = 10 model at K = 40 (less capacity than the oracle) exceeds the "
               f"oracle's loss by {narrow_gap:.4f} +- {narrow_gap_se:.4f}, "
               f"the planted bad model's loss exceeds the oracle's by {bad_gap:.3f} +- "
               f"{bad_gap_se:.3f}, its rate at mu_pred is {bad_rate:.3f} +- {bad_se:.3f} "
               f"(row excess {np.mean(bad_eps):.3f}): {'passed' if control_ok else 'failed'}.")
    return finish(
        PREDICTION, out=out, fig=fig, passed=passed,
        control=ControlResult(measured=measured, passed=control_ok),
        key_numbers={"links failed": len(failed),
                     "budget (base)": p0["eps_pred"],
                     "excess (base)": results[0]["eps_trained"],
                     "mu_pred (base)": p0["mu_pred"]},
        numbers={"settings": results, "predictions": preds, "mu_grid": MU_GRID.tolist(),
                 "delta": DELTA, "control": measured},
        configs={"base": base.to_dict(), "settings": settings},
        seeds=list(range(seeds)), started=started, quick=quick, summary=summary)


if __name__ == "__main__":
    run_script(main, __doc__)
