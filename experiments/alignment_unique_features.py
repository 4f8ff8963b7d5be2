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
longer pushed out; the optimizer's own noise floor (Adam at a constant learning
rate) can also leave a residual.

Design (written before the 2026-12-01 full run, then attacked as an adversary would):

* the paper's quantity: the score's invariance to unique features,
  V = E_z Var_{xi,zeta}[s(x, y) | z] / tau^2 (``clipsim.metrics.unique_invariance``):
  Monte Carlo with 128 latents z, each with 8 draws of (xi, zeta), everything else
  (caption mask, noise) held fixed; V is in squared logits, so it says how far the
  unique features move the softmax, and it is exactly 0 for the oracle encoders.
  Logged from initialization (step 0) every ``log_every`` steps;
* the variance-weighted energy share ||W A_xi||^2 sigma_xi^2 / E||W x||^2
  (``clipsim.metrics.unique_energy_share``), over the same steps, from initialization;
  unlike the unweighted block share it does not call a residual weight large when the
  unique features it multiplies are small;
* R^2(xi) as a curve against the ridge penalty (1e-8 ... 1e-1), reported, never the
  criterion: decodability is blind to scale (a tiny residual decodes well when the
  ridge is tiny);
* grid: sigma_xi = sigma_zeta in {0.25, 0.5, 1, 2} x p_omit in {0, 0.3}, plus two
  arms with sigma_xi != sigma_zeta (1 / 0.25 and 0.25 / 1, p_omit 0); optimizer arms
  at sigma = 1, p_omit = 0 reported without a criterion: a cosine learning-rate
  schedule, SGD (momentum 0.9, lr 0.1) and ``clip_reg`` (lambda 0.1);
* criterion: at every point of the grid and the two decoupled arms (seed means):
  R^2(z) >= 0.8; V at the end <= 0.1 (unique features move the logits by a standard
  deviation of at most 0.32, against an E5 margin of tau*log(B-1) = 4.8 logits) and
  at most a tenth of V at initialization; the weighted energy share at the end at
  most a tenth of its value at initialization;
* positive control (planted): the trained image encoder with a unique block planted
  into it, W' = W + c R A_xi^T with R a fixed random (d, kx) matrix and c chosen so
  ||W' A_xi||_F = ||W A_z||_F: an encoder that keeps unique features by construction.
  Measured with the same metric on the same probe pairs, its V must exceed the
  criterion's 0.1 at every grid point: the metric is not blind to kept unique features;
* blind spots checked: V cannot be made small by shrinking the embedding (outputs are
  unit-norm, and V is relative to tau, fixed); the share is measured from step 0, not
  from a first log at which most of the drop has happened; the oracle would pass, so
  the thresholds are reachable (V = 0, share = 0).

Amendment (criterion 3, 2026-12-02, after an independent review of criterion 2's full
run): every failing point had p_omit = 0.3 and failed on the text side only. A probe
found the objective itself uses zeta there: a caption that omitted its concept carries
only its unique features, and mapping them away from every image lowers the loss, so
"CLIP drops unique features" is a claim about features the other modality has no use
for. Now: V is measured per side (only that side's unique features redrawn); complete
captions are held to the old criterion; under omission the image side is, and the
text side has its own prediction, tested by the quantity it is about: projecting the
text-unique block out of the trained text encoder (the blocks are orthonormal and
orthogonal to the shared ones, so W A_z is kept) raises the held-out CLIP loss, paired
on the same 64 batches, by more than 3 s.e. over seeds; its negative checks are the
cases where the mechanism says removal must not cost: zeta with complete captions, xi
at every point. That prediction was formed from a single-seed probe before this run,
so the run replicates it rather than testing it blind. The planted control covers both
sides, each with the metric that side is judged by; V of the trained encoders with both
blocks projected out is recorded as a check of the code (0 by construction).

Run: ``python experiments/alignment_unique_features.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from clipsim import metrics
from clipsim.config import RunConfig
from clipsim.data import image_from_latents, sample_pairs, text_from_latents
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
from clipsim.models import encode
from clipsim.objectives import clip_loss_per_batch
from clipsim.plots import new_figure
from clipsim.sweep import Program, RunOutput
from clipsim.train import (
    STREAM_EVAL,
    STREAM_INIT,
    batch_source,
    fit,
    init_params,
    make_optimizer,
    objective_loss,
    world_for,
)

PREDICTION = Prediction(
    key="P2",
    name="alignment_unique_features",
    title="CLIP keeps shared features, drops unique ones",
    claim="CLIP aligns the shared latent z and discards modality-unique features the other "
          "modality has no use for: the score becomes invariant to them and their weight "
          "share falls during training, for growing sigma_xi and sigma_zeta. Under caption "
          "omission the image side still discards xi, while the text side keeps zeta: it "
          "marks captions that lost their concept, and removing it costs loss.",
    criteria=(
        Criterion(
            text="Averaged over seeds, at every grid point (sigma_xi = sigma_zeta in "
                 "{0.25, 0.5, 1, 2} x p_omit in {0, 0.3}; tau = 0.1, 2000 steps): R^2(z) >= 0.8, "
                 "R^2(xi) <= 0.2, and the final image unique-block weight share is below a "
                 "tenth of its first logged value (step 50).",
            adopted="2026-11-28",
            reason="the first criterion",
            verdict="not confirmed"),
        Criterion(
            text="Averaged over seeds, at every point of the grid (sigma_xi = sigma_zeta in "
                 "{0.25, 0.5, 1, 2} x p_omit in {0, 0.3}) and of the two arms sigma_xi / "
                 "sigma_zeta = 1 / 0.25 and 0.25 / 1 (tau = 0.1, Adam lr 0.01, 1500 steps): "
                 "R^2(z) >= 0.8; the score invariance E_z Var[s | z] / tau^2 at the end is "
                 "<= 0.1 and at most a tenth of its value at initialization; the "
                 "variance-weighted unique energy share at the end is at most a tenth of its "
                 "value at initialization (step 0). R^2(xi) is reported as a curve against "
                 "the ridge penalty, without a criterion.",
            adopted="2026-12-01",
            reason="R^2(xi) at a fixed ridge is blind to scale (a residual share of 1e-3 "
                   "decodes at R^2 0.42), and the share was measured against step 50, "
                   "after most of its drop; the paper's quantity is the score's invariance "
                   "to unique features, measured here from initialization with a planted "
                   "positive control.",
            verdict="not confirmed"),
        Criterion(
            text="Seed means. Complete captions (p_omit = 0: the four sigma_xi = sigma_zeta "
                 "points and the two decoupled arms): R^2(z) >= 0.8; V (both sides) at the end "
                 "<= 0.1 and <= a tenth of its initial value; the image energy share at the end "
                 "<= a tenth of its initial value. Caption omission (p_omit = 0.3): the image "
                 "side as above (R^2(z) >= 0.8, image-side V <= 0.1 and <= a tenth of its "
                 "initial value, image energy share ratio <= 0.1), and the text side's own "
                 "prediction: projecting the text-unique block out of the trained text encoder "
                 "raises the held-out CLIP loss (paired, same batches) by more than 3 s.e. over "
                 "seeds at every omission point, while with complete captions it does not "
                 "(the raise is at most 3 s.e. at every p_omit = 0 point), and projecting the "
                 "image-unique block out raises it by at most 3 s.e. at every point. "
                 "Confirmed when all hold.",
            adopted="2026-12-02",
            reason="An independent review of criterion 2's full run: every failing point was a "
                   "p_omit = 0.3 point failing on the text side only (the image-side share "
                   "passed), and there the objective itself uses zeta (projecting it out of a "
                   "trained text encoder raised the held-out loss by 0.69 nats in a probe): a "
                   "caption that lost its concept is marked by its unique features alone, and "
                   "an embedding away from every image lowers the loss. The claim 'CLIP drops "
                   "unique features' holds where the other modality has no use for them; the "
                   "text side under omission is now its own stated prediction, measured by the "
                   "loss change the claim is about, with the two cases where the mechanism "
                   "says removal must not cost (complete captions; the image side) as its "
                   "negative checks. The text-side prediction was formed from that single-seed "
                   "probe before this run: the full run replicates it on 5 seeds, it is not an "
                   "independent test. V is split by side, and the planted control covers both "
                   "sides with the metric each side is judged by."),
    ),
    control=Control(
        setting="the trained encoders with a planted unique block of the shared block's "
                "energy, W' = W + c R A_xi^T (image) or V' = V + c R B_zeta^T (text); same "
                "probe pairs, and each side's metric",
        expected="the planted V exceeds 0.1 at every point: both-side V and image-side V with "
                 "the image block planted, text-side V with the text block planted"),
)

BASE = {
    "data": {"family": "onehot", "num_concepts": 10, "image_dim": 32, "text_dim": 32,
             "image_unique_dim": 8, "text_unique_dim": 8, "noise_scale": 0.05},
    "model": {"kind": "linear", "embed_dim": 16},
    "objective": {"name": "clip", "temperature": 0.1},
    "train": {"steps": 1500, "batch_size": 128, "learning_rate": 0.01, "log_every": 50},
    "eval": {"num_samples": 2000},
}
SCALES = [0.25, 0.5, 1.0, 2.0]
OMITS = [0.0, 0.3]
DECOUPLED = [(1.0, 0.25), (0.25, 1.0)]        # (sigma_xi, sigma_zeta) arms, p_omit 0
ARMS = {"cosine schedule": {"train.schedule": "cosine"},
        "SGD (lr 0.1)": {"train.optimizer": "sgd", "train.learning_rate": 0.1},
        "clip_reg (lambda 0.1)": {"objective.name": "clip_reg", "objective.reg_weight": 0.1}}
RIDGES = [1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1]
PROBE_LATENTS, PROBE_DRAWS = 128, 8
PROJECTION_BATCHES = 64
R2_Z_MIN, V_MAX, DROP = 0.8, 0.1, 0.1
SCALE, ZSCALE, OMIT = "data.image_unique_scale", "data.text_unique_scale", "data.omit_prob"
BY = [OMIT, SCALE, ZSCALE]


def _probe(cfg: RunConfig, world, key: jax.Array):
    """Probe pairs for the invariance: (m, r, dx) images and (m, r, dy) texts.

    Row i shares its latent z_i, caption mask and noise across the r draws; only the
    unique features xi and zeta are redrawn.
    """
    d = cfg.data
    k_base, k_xi, k_zeta = jax.random.split(key, 3)
    base = sample_pairs(d, world, key=k_base, n=PROBE_LATENTS)
    dtype = base.x.dtype
    xi = d.image_unique_scale * jax.random.normal(
        k_xi, (PROBE_LATENTS, PROBE_DRAWS, d.image_unique_dim), dtype)
    zeta = d.text_unique_scale * jax.random.normal(
        k_zeta, (PROBE_LATENTS, PROBE_DRAWS, d.text_unique_dim), dtype)
    # the observation noise and the mask of each row, recovered from its base pair
    eps_x = base.x - image_from_latents(d, world, base.z, base.xi)
    eps_y = base.y - text_from_latents(d, world, base.mask * base.z, base.zeta)
    z = jnp.repeat(base.z, PROBE_DRAWS, axis=0)
    zm = jnp.repeat(base.mask * base.z, PROBE_DRAWS, axis=0)
    x = image_from_latents(d, world, z, xi.reshape(-1, d.image_unique_dim))
    y = text_from_latents(d, world, zm, zeta.reshape(-1, d.text_unique_dim))
    x = x.reshape(PROBE_LATENTS, PROBE_DRAWS, -1) + eps_x[:, None, :]
    y = y.reshape(PROBE_LATENTS, PROBE_DRAWS, -1) + eps_y[:, None, :]
    return x, y, base.x, base.y


def invariance_fn(cfg: RunConfig, key: jax.Array) -> RunOutput:
    """Train one run (the library's loop) logging the invariance and the weighted share.

    ``fit`` with the run's objective, optimizer and batch stream, as ``train_program``
    (the temperature is fixed, so no clamp), with diagnostics on fixed probe pairs
    drawn from the evaluation stream: ``invariance`` (``unique_invariance``),
    ``energy_share`` (``unique_energy_share``) and ``unique_share_image``. Metrics:
    ``evaluate_program``'s, the diagnostics at initialization (``*_init``), R^2(xi)
    against ``RIDGES`` (``r2_xi_ridge[i]``) and the planted control's invariance.
    """
    world = world_for(cfg)
    eval_key = jax.random.fold_in(key, STREAM_EVAL)
    x, y, inputs, text_inputs = _probe(cfg, world, jax.random.fold_in(eval_key, 101))
    tau = cfg.objective.temperature
    mc = cfg.model

    def invariance(enc_image, enc_text):
        return metrics.unique_invariance(encode(enc_image, x, cfg=mc), encode(enc_text, y, cfg=mc),
                                         temperature=tau)

    def side_invariances(enc_image, enc_text):
        """(image-side V, text-side V): the other side held at each latent's first draw."""
        fa, fb = encode(enc_image, x, cfg=mc), encode(enc_text, y, cfg=mc)
        fa0, fb0 = (jnp.broadcast_to(e[:, :1], e.shape) for e in (fa, fb))
        return (metrics.unique_invariance(fa, fb0, temperature=tau),
                metrics.unique_invariance(fa0, fb, temperature=tau))

    def diagnostics(params):
        enc = params["encoders"]
        w = enc["image"]["w"]
        return {"invariance": invariance(enc["image"], enc["text"]),
                "energy_share": metrics.unique_energy_share(
                    w, world.unique_x, cfg.data.image_unique_scale, inputs),
                "unique_share_image": metrics.unique_weight_share(
                    w, world.shared_x, world.unique_x)}

    params = init_params(cfg, key=jax.random.fold_in(key, STREAM_INIT))
    out = fit(lambda p, batch: objective_loss(p, batch, cfg), params,
              make_optimizer(cfg.train), batch_source(cfg, world, key),
              steps=cfg.train.steps, log_every=cfg.train.log_every, diagnostics=diagnostics)
    values = evaluate_program(cfg, out.params, eval_key)
    values.update({f"{k}_init": v for k, v in diagnostics(params).items()})
    pairs = sample_pairs(cfg.data, world, key=jax.random.fold_in(eval_key, 102),
                         n=cfg.eval.num_samples)
    enc = out.params["encoders"]
    emb = encode(enc["image"], pairs.x, cfg=mc)
    values["r2_xi_ridge"] = jnp.stack([metrics.ridge_r2(emb, pairs.xi, ridge=r) for r in RIDGES])
    # planted control: a unique block of the shared block's energy put into W
    w = enc["image"]["w"]
    r = jax.random.normal(jax.random.key(7), (w.shape[0], cfg.data.image_unique_dim), w.dtype)
    c = jnp.linalg.norm(w @ world.shared_x) / jnp.linalg.norm(r)
    planted = {**enc["image"], "w": w + c * r @ world.unique_x.T}
    values["planted_invariance"] = invariance(planted, enc["text"])
    values["planted_energy_share"] = metrics.unique_energy_share(
        planted["w"], world.unique_x, cfg.data.image_unique_scale, inputs)
    v = enc["text"]["w"]
    rt = jax.random.normal(jax.random.key(8), (v.shape[0], cfg.data.text_unique_dim), v.dtype)
    ct = jnp.linalg.norm(v @ world.shared_y) / jnp.linalg.norm(rt)
    planted_text = {**enc["text"], "w": v + ct * rt @ world.unique_y.T}
    values["planted_text_invariance"] = side_invariances(enc["image"], planted_text)[1]
    values["planted_image_invariance"] = side_invariances(planted, enc["text"])[0]
    # each side's V (only that side's unique features redrawn), at init and at the end
    for tag, p in (("_init", params["encoders"]), ("", enc)):
        side = side_invariances(p["image"], p["text"])
        values[f"invariance_image{tag}"], values[f"invariance_text{tag}"] = side
        values[f"energy_share_text{tag}"] = metrics.unique_energy_share(
            p["text"]["w"], world.unique_y, cfg.data.text_unique_scale, text_inputs)
    # does the objective use the unique features? project each block out (the blocks
    # are orthonormal and orthogonal to the shared ones, so W A_z is kept) and compare
    # held-out CLIP losses on the same batches (paired)
    proj_image = {**enc["image"], "w": w - (w @ world.unique_x) @ world.unique_x.T}
    proj_text = {**enc["text"], "w": v - (v @ world.unique_y) @ world.unique_y.T}
    held = sample_pairs(cfg.data, world, key=jax.random.fold_in(eval_key, 103),
                        n=PROJECTION_BATCHES * cfg.train.batch_size)

    def heldout_loss(ei, et):
        return clip_loss_per_batch(encode(ei, held.x, cfg=mc), encode(et, held.y, cfg=mc),
                                   batch_size=cfg.train.batch_size, temperature=tau)

    trained = heldout_loss(enc["image"], enc["text"])
    values["heldout_loss"] = jnp.mean(trained)
    values["dloss_project_image"] = jnp.mean(heldout_loss(proj_image, enc["text"]) - trained)
    values["dloss_project_text"] = jnp.mean(heldout_loss(enc["image"], proj_text) - trained)
    values["projected_invariance"] = invariance(proj_image, proj_text)
    return RunOutput(history=out.history, metrics=values, first_bad_step=out.first_bad_step)


INVARIANCE = Program("alignment_unique_features/invariance", invariance_fn, version="2")


def setup(quick: bool) -> tuple[RunConfig, list[float], list[float], int]:
    """Base config, scale grid, omission grid and number of seeds."""
    base = RunConfig.from_dict(BASE)
    if quick:
        base = base.replace(**{"train.steps": 200, "train.log_every": 20,
                               "eval.num_samples": 500})
        return base, [0.5, 2.0], OMITS, 2
    return base, SCALES, OMITS, 5


def run(base: RunConfig, scales: list[float], omits: list[float], seeds: int, out: Path,
        quiet: bool) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The grid with the decoupled arms (one sweep), and one sweep per optimizer arm."""
    grid = run_grid(PREDICTION.name, base, {OMIT: omits}, seeds=seeds, out=out, quiet=quiet,
                    program=INVARIANCE, zip_groups=[{SCALE: scales, ZSCALE: scales}])
    decoupled = run_grid(f"{PREDICTION.name}_decoupled", base.replace(**{OMIT: 0.0}), {},
                         seeds=seeds, out=out, quiet=quiet, program=INVARIANCE,
                         zip_groups=[{SCALE: [a for a, _ in DECOUPLED],
                                      ZSCALE: [b for _, b in DECOUPLED]}])
    main = pd.concat([grid, decoupled], ignore_index=True)
    arm_base = base.replace(**{SCALE: 1.0, ZSCALE: 1.0, OMIT: 0.0})
    arms = {name: run_grid(f"{PREDICTION.name}_{i}", arm_base.replace(**changes), {},
                           seeds=seeds, out=out, quiet=quiet, program=INVARIANCE)
            for i, (name, changes) in enumerate(ARMS.items())}
    return main, arms


def point_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per point (seed means): R^2, invariance and shares at init and at the end, planted."""
    cols = ["r2_shared", "r2_image_unique", "zs_accuracy", "margin_median", "invariance_init",
            "energy_share_init", "unique_share_image_init", "planted_invariance",
            "planted_energy_share", "planted_text_invariance", "planted_image_invariance",
            "projected_invariance",
            "invariance_image", "invariance_image_init", "invariance_text",
            "invariance_text_init", "energy_share_text", "energy_share_text_init",
            "heldout_loss", "dloss_project_image", "dloss_project_text",
            ] + [f"r2_xi_ridge[{i}]" for i in range(len(RIDGES))]
    final = final_rows(df)
    last = df[df["step"] == df["step"].max()]
    g = final.groupby(BY)
    table = g[cols].mean()
    for c in ("r2_shared", "invariance_init", "dloss_project_image", "dloss_project_text",
              "invariance_text"):
        table[f"{c}_se"] = g[c].sem()
    lg = last.groupby(BY)
    for c in ("invariance", "energy_share", "unique_share_image"):
        table[f"{c}_final"] = lg[c].mean()
        table[f"{c}_final_se"] = lg[c].sem()
    table["invariance_ratio"] = table["invariance_final"] / table["invariance_init"]
    table["energy_ratio"] = table["energy_share_final"] / table["energy_share_init"]
    table["invariance_image_ratio"] = table["invariance_image"] / table["invariance_image_init"]
    table["energy_text_ratio"] = table["energy_share_text"] / table["energy_share_text_init"]
    return table.reset_index()


def decide(main: pd.DataFrame) -> tuple[bool, pd.DataFrame]:
    """Apply the criterion to every point of the grid and the decoupled arms."""
    t = point_table(main)
    omitted = t[OMIT] > 0
    t["ok_z"] = t["r2_shared"] >= R2_Z_MIN
    both = (t["invariance_final"] <= V_MAX) & (t["invariance_ratio"] <= DROP)
    image = (t["invariance_image"] <= V_MAX) & (t["invariance_image_ratio"] <= DROP)
    t["ok_v"] = np.where(omitted, image, both)
    t["ok_share"] = t["energy_ratio"] <= DROP
    # the text side under omission: the objective uses zeta (its removal costs loss)
    text_se = 3 * t["dloss_project_text_se"].fillna(np.inf)
    t["ok_text_uses_zeta"] = np.where(omitted, t["dloss_project_text"] > text_se,
                                      t["dloss_project_text"] <= text_se)
    t["ok_image_ignores_xi"] = (t["dloss_project_image"]
                                <= 3 * t["dloss_project_image_se"].fillna(np.inf))
    t["ok"] = (t["ok_z"] & t["ok_v"] & t["ok_share"] & t["ok_text_uses_zeta"]
               & t["ok_image_ignores_xi"])
    return bool(t["ok"].all()), t


def _curve(ax, df: pd.DataFrame, metric: str, hue: str, label_fmt: str, init: str) -> None:
    """Seed mean +- s.e. of a logged diagnostic against the step, step 0 included."""
    rows = df[["seed", hue, "step", metric]].dropna()
    first = final_rows(df)[["seed", hue, init]].rename(columns={init: metric}).assign(step=0)
    st = seed_stats(pd.concat([first, rows]).assign(final=True), [hue, "step"], metric)
    for i, (value, sub) in enumerate(st.groupby(hue, sort=True)):
        sub = sub.sort_values("step")
        m, se = sub["mean"].to_numpy(), np.nan_to_num(sub["se"].to_numpy())
        lo = np.maximum(m - se, m * 0.5)       # log axis: keep the band inside the axes
        ax.plot(sub["step"], m, color=f"C{i}", label=label_fmt.format(value))
        ax.fill_between(sub["step"], lo, m + se, color=f"C{i}", alpha=0.2, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("training step (0 = initialization)")


def plot(main: pd.DataFrame, arms: dict[str, pd.DataFrame], table: pd.DataFrame,
         base: RunConfig, seeds: int):
    """Invariance and weighted share over steps; R^2(xi) vs ridge; end values per point."""
    fig, axes = new_figure(ncols=3, nrows=2, width=4.3, height=3.4)
    clean = main[(main[OMIT] == 0.0) & (main[SCALE] == main[ZSCALE])]
    _curve(axes[0, 0], clean, "invariance", SCALE, "sigma = {:g}", "invariance_init")
    axes[0, 0].axhline(V_MAX, color="k", ls="--", lw=1, label=f"criterion {V_MAX:g}")
    axes[0, 0].set_ylabel("E_z Var[s | z] / tau^2")
    axes[0, 0].set_title("score invariance to unique features (p_omit 0)", fontsize=9)
    axes[0, 0].legend(fontsize=7, title="sigma_xi = sigma_zeta", title_fontsize=7)
    _curve(axes[0, 1], clean, "energy_share", SCALE, "sigma = {:g}", "energy_share_init")
    axes[0, 1].set_ylabel("||W A_xi||^2 sigma_xi^2 / E||W x||^2")
    axes[0, 1].set_title("variance-weighted unique energy share", fontsize=9)
    axes[0, 1].legend(fontsize=7)
    ax = axes[0, 2]
    arm_df = pd.concat([clean[clean[SCALE] == 1.0].assign(arm="Adam, constant lr")]
                       + [d.assign(arm=name) for name, d in arms.items()])
    _curve(ax, arm_df, "invariance", "arm", "{}", "invariance_init")
    ax.axhline(V_MAX, color="k", ls="--", lw=1)
    ax.set_ylabel("E_z Var[s | z] / tau^2")
    ax.set_title("optimizer arms (sigma = 1, p_omit 0)", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    for i, row in table.iterrows():
        label = f"xi {row[SCALE]:g} / zeta {row[ZSCALE]:g}, p {row[OMIT]:g}"
        ax.plot(RIDGES, [row[f"r2_xi_ridge[{k}]"] for k in range(len(RIDGES))], marker="o", ms=3,
                color=f"C{i % 10}", ls="-" if row[OMIT] == 0 else ":", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("ridge penalty per row")
    ax.set_ylabel("held-out R^2(xi) from f(x)")
    ax.set_ylim(-0.05, 1.02)
    ax.set_title("decodability of xi vs ridge (not a criterion)", fontsize=9)
    ax.legend(fontsize=5.5, ncol=2)

    ax = axes[1, 1]
    labels = [f"{r[SCALE]:g}/{r[ZSCALE]:g}\np{r[OMIT]:g}" for _, r in table.iterrows()]
    xs = np.arange(len(table))
    ax.bar(xs - 0.2, table["invariance_final"], 0.4, yerr=table["invariance_final_se"],
           color="C0", label="trained")
    ax.bar(xs + 0.2, table["planted_invariance"], 0.4, color="C3",
           label="planted unique block (control)")
    ax.axhline(V_MAX, color="k", ls="--", lw=1, label=f"criterion {V_MAX:g}")
    ax.set_yscale("log")
    ax.set_xticks(xs, labels, fontsize=6)
    ax.set_xlabel("sigma_xi / sigma_zeta, p_omit")
    ax.set_ylabel("E_z Var[s | z] / tau^2 at the end")
    ax.set_title("trained vs planted (positive control)", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[1, 2]
    ax.bar(xs, table["r2_shared"], 0.6, yerr=table["r2_shared_se"], color="C2")
    ax.axhline(R2_Z_MIN, color="k", ls="--", lw=1, label=f"criterion {R2_Z_MIN:g}")
    ax.set_xticks(xs, labels, fontsize=6)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("sigma_xi / sigma_zeta, p_omit")
    ax.set_ylabel(f"held-out ridge R^2(z) (ridge {base.eval.ridge:g})")
    ax.set_title("shared latent kept", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    k, b, tau = base.data.num_concepts, base.train.batch_size, base.objective.temperature
    fig.suptitle(f"P2 (paper: CLIP drops unique features; invariance of the score): linear "
                 f"CLIP, one-hot K = {k}, tau = {tau:g}, B = {b}, {base.train.steps} steps; "
                 f"mean +- s.e. over {seeds} seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def arm_numbers(arms: dict[str, pd.DataFrame]) -> dict[str, dict[str, float]]:
    """End invariance and weighted share of each optimizer arm (seed means)."""
    out = {}
    for name, df in arms.items():
        t = point_table(df).iloc[0]
        out[name] = {"invariance_final": float(t["invariance_final"]),
                     "invariance_init": float(t["invariance_init"]),
                     "energy_share_final": float(t["energy_share_final"]),
                     "energy_share_init": float(t["energy_share_init"]),
                     "r2_shared": float(t["r2_shared"]),
                     "r2_xi_ridge": [float(t[f"r2_xi_ridge[{i}]"]) for i in range(len(RIDGES))]}
    return out


def main(quick: bool = False, out: str | Path = "runs/reproduce", quiet: bool = True) -> dict:
    """Run P2 and write ``alignment_unique_features.png`` and ``.json`` to ``out``."""
    started = time.perf_counter()
    out = Path(out)
    base, scales, omits, seeds = setup(quick)
    main_df, arms = run(base, scales, omits, seeds, out, quiet)
    passed, table = decide(main_df)
    control = ControlResult(
        measured={"planted_invariance_min": float(table["planted_invariance"].min()),
                  "planted_text_invariance_min":
                      float(table["planted_text_invariance"].min()),
                  "planted_image_invariance_min":
                      float(table["planted_image_invariance"].min()),
                  "trained_invariance_max": float(table["invariance_final"].max())},
        passed=bool((table["planted_invariance"] > V_MAX).all()
                    and (table["planted_image_invariance"] > V_MAX).all()
                    and (table["planted_text_invariance"] > V_MAX).all()))
    fig = plot(main_df, arms, table, base, seeds)
    arm = arm_numbers(arms)
    numbers = {
        "points": table[BY].to_dict(orient="list"),
        "r2_shared_mean": table["r2_shared"].tolist(),
        "r2_image_unique_at_eval_ridge": table["r2_image_unique"].tolist(),
        "ridges": RIDGES,
        "r2_xi_vs_ridge": [[float(r[f"r2_xi_ridge[{i}]"]) for i in range(len(RIDGES))]
                           for _, r in table.iterrows()],
        "invariance_init": table["invariance_init"].tolist(),
        "invariance_final": table["invariance_final"].tolist(),
        "invariance_final_se": table["invariance_final_se"].tolist(),
        "invariance_ratio": table["invariance_ratio"].tolist(),
        "energy_share_init": table["energy_share_init"].tolist(),
        "energy_share_final": table["energy_share_final"].tolist(),
        "energy_ratio": table["energy_ratio"].tolist(),
        "unique_share_image_init": table["unique_share_image_init"].tolist(),
        "unique_share_image_final": table["unique_share_image_final"].tolist(),
        "planted_invariance": table["planted_invariance"].tolist(),
        "planted_energy_share": table["planted_energy_share"].tolist(),
        "planted_text_invariance": table["planted_text_invariance"].tolist(),
        "planted_image_invariance": table["planted_image_invariance"].tolist(),
        "projected_invariance": table["projected_invariance"].tolist(),
        "points_ok_image_ignores_xi": int(table["ok_image_ignores_xi"].sum()),
        "invariance_image_init": table["invariance_image_init"].tolist(),
        "invariance_image_final": table["invariance_image"].tolist(),
        "invariance_text_init": table["invariance_text_init"].tolist(),
        "invariance_text_final": table["invariance_text"].tolist(),
        "invariance_text_final_se": table["invariance_text_se"].tolist(),
        "energy_share_text_init": table["energy_share_text_init"].tolist(),
        "energy_share_text_final": table["energy_share_text"].tolist(),
        "heldout_loss": table["heldout_loss"].tolist(),
        "dloss_project_image": table["dloss_project_image"].tolist(),
        "dloss_project_image_se": table["dloss_project_image_se"].tolist(),
        "dloss_project_text": table["dloss_project_text"].tolist(),
        "dloss_project_text_se": table["dloss_project_text_se"].tolist(),
        "points_ok_text_uses_zeta": int(table["ok_text_uses_zeta"].sum()),
        "zs_accuracy_mean": table["zs_accuracy"].tolist(),
        "margin_median_mean": table["margin_median"].tolist(),
        "points_ok": int(table["ok"].sum()), "num_points": len(table),
        "points_ok_r2z": int(table["ok_z"].sum()), "points_ok_invariance": int(table["ok_v"].sum()),
        "points_ok_share": int(table["ok_share"].sum()),
        "arms": arm,
    }
    v, e = table["invariance_final"], table["energy_ratio"]
    summary = (
        f"Score invariance E_z Var[s|z]/tau^2 at the end: {v.min():.3g}-{v.max():.3g} over "
        f"the {len(table)} points (from {table['invariance_init'].min():.3g}-"
        f"{table['invariance_init'].max():.3g} at initialization; {numbers['points_ok_invariance']}"
        f"/{len(table)} points <= {V_MAX:g} and below a tenth of init). Weighted unique energy "
        f"share, end / init: {e.min():.3g}-{e.max():.3g} ({numbers['points_ok_share']}/"
        f"{len(table)} below {DROP:g}). R^2(z) {table['r2_shared'].min():.3f}-"
        f"{table['r2_shared'].max():.3f}. R^2(xi) depends on the ridge: at 1e-8 it is "
        f"{min(r[0] for r in numbers['r2_xi_vs_ridge']):.2f}-"
        f"{max(r[0] for r in numbers['r2_xi_vs_ridge']):.2f}, at 1e-1 "
        f"{min(r[-1] for r in numbers['r2_xi_vs_ridge']):.2f}-"
        f"{max(r[-1] for r in numbers['r2_xi_vs_ridge']):.2f}. Optimizer arms at sigma = 1: "
        + "; ".join(f"{k} invariance {a['invariance_final']:.3g}, share "
                    f"{a['energy_share_final']:.3g}" for k, a in arm.items())
        + ". Text side: V at the end (text unique features alone) "
        + ", ".join(f"p_omit {o:g}: {table.loc[table[OMIT] == o, 'invariance_text'].min():.3g}"
                    f"-{table.loc[table[OMIT] == o, 'invariance_text'].max():.3g}"
                    for o in sorted(table[OMIT].unique()))
        + "; projecting the text-unique block out changes the held-out loss by "
        + ", ".join(f"p_omit {o:g}: {table.loc[table[OMIT] == o, 'dloss_project_text'].min():+.3g}"
                    f" to {table.loc[table[OMIT] == o, 'dloss_project_text'].max():+.3g}"
                    for o in sorted(table[OMIT].unique()))
        + f" nats ({numbers['points_ok_text_uses_zeta']}/{len(table)} points meet the text-side "
        f"criterion); projecting the image-unique block out: "
        f"{table['dloss_project_image'].min():+.3g} to {table['dloss_project_image'].max():+.3g}"
        f" nats ({numbers['points_ok_image_ignores_xi']}/{len(table)} within 3 s.e. of no "
        f"cost). Control: planted V {table['planted_invariance'].min():.3g}-"
        f"{table['planted_invariance'].max():.3g} (image block, both sides redrawn), image side "
        f"alone {table['planted_image_invariance'].min():.3g}-"
        f"{table['planted_image_invariance'].max():.3g}, text block "
        f"{table['planted_text_invariance'].min():.3g}-"
        f"{table['planted_text_invariance'].max():.3g} "
        f"({'passed' if control.passed else 'failed'}); with both blocks projected out V is at "
        f"most {table['projected_invariance'].max():.2g} (a check of the code: it is 0 by "
        f"construction). "
        + ("Every part of the criterion holds." if passed else "The criterion is not met.")
    )
    return finish(
        PREDICTION, out=out, fig=fig, passed=passed, control=control,
        key_numbers={"max invariance (end)": float(v.max()),
                     "max energy share end/init": float(e.max()),
                     "min R^2(z)": float(table["r2_shared"].min()),
                     "min planted invariance": float(table["planted_invariance"].min()),
                     "points passing": f"{numbers['points_ok']}/{len(table)}"},
        numbers=numbers,
        configs={"base": base.to_dict(), "grid": {OMIT: omits},
                 "zip": {SCALE: scales, ZSCALE: scales}, "decoupled": DECOUPLED,
                 "arms": ARMS, "program": INVARIANCE.key},
        seeds=list(range(seeds)), started=started, quick=quick, summary=summary,
    )


if __name__ == "__main__":
    run_script(main, __doc__)
