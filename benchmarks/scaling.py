"""Scaling of the training step: time per step against the batch size B and the runs G.

- Against B (one run, ``train_program``, the W1 model: linear, dx = dy = 64, d = 16):
  B = 256 ... 8192, a few steps per call at the large end. The medians are fitted
  by least squares to t(B) = a + b B + c B^2; the B^2 term (scores and their
  exponentials) takes over where c B^2 exceeds a + b B.
- Against G (``jit(vmap(train_program))`` over G runs, G = 1 ... 256) at B = 64 and
  B = 256, in time per model-step, with the naive loop (a jitted step called from
  Python, one run) as reference. vmap stops paying where the time per model-step
  comes within 10% of its minimum over G.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import interleave, median, spread


def _config(batch_size: int, steps: int):
    from clipsim.config import RunConfig

    return RunConfig.from_dict({
        "data": {"family": "onehot", "num_concepts": 16, "image_dim": 64, "text_dim": 64},
        "model": {"kind": "linear", "embed_dim": 16},
        "train": {"steps": steps, "batch_size": batch_size, "log_every": steps},
    })


def steps_for_batch(b: int) -> int:
    """Steps per timed call at batch size b: about constant work, at least 4."""
    return int(max(4, min(200, 50 * (1024 / b) ** 2)))


def _batch_timer(b: int) -> tuple[Any, dict[str, float]]:
    from clipsim.train.loop import train_program

    cfg = _config(b, steps_for_batch(b))
    key = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = jax.jit(train_program).lower(cfg, key).compile()
    info = {"compile_s": time.perf_counter() - t0, "steps": cfg.train.steps}
    jax.block_until_ready(compiled(cfg, key))

    def timer() -> float:
        start = time.perf_counter()
        jax.block_until_ready(compiled(cfg, key))
        return (time.perf_counter() - start) / cfg.train.steps

    return timer, info


def _runs_timer(b: int, g: int, steps: int) -> tuple[Any, dict[str, float]]:
    from clipsim.sweep.engine import stack_configs
    from clipsim.train.loop import train_program

    base = _config(b, steps)
    cfgs = [base.replace(seed=s, **{"objective.temperature": 0.05 + 0.01 * (s % 8)})
            for s in range(g)]
    stacked = stack_configs(cfgs)
    keys = jnp.stack([jax.random.key(s) for s in range(g)])
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(train_program)).lower(stacked, keys).compile()
    info = {"compile_s": time.perf_counter() - t0}
    jax.block_until_ready(compiled(stacked, keys))

    def timer() -> float:
        start = time.perf_counter()
        jax.block_until_ready(compiled(stacked, keys))
        return (time.perf_counter() - start) / (g * steps)

    return timer, info


def _naive_timer(b: int, steps: int):
    from benchmarks.w1_sweep import NaiveJax

    cfg = _config(b, steps)
    naive = NaiveJax(cfg)
    naive.train(cfg)

    def timer() -> float:
        start = time.perf_counter()
        naive.train(cfg)
        return (time.perf_counter() - start) / steps

    return timer


def fit_quadratic(bs: list[int], ts: list[float]) -> dict[str, float]:
    """Fit t = a + b B + c B^2 with a, b, c >= 0 (relative errors); where c B^2 takes over.

    Returns:
        ``{"a", "b", "c", "crossover_B"}``; ``crossover_B`` solves c B^2 = a + b B
        (NaN if c <= 0).
    """
    from scipy.optimize import nnls

    x = np.asarray(bs, float)
    y = np.asarray(ts, float)
    scale = np.array([1.0, x.max(), x.max() ** 2])
    design = np.stack([np.ones_like(x), x, x * x], axis=1) / y[:, None] / scale
    coef, _ = nnls(design, np.ones_like(y))
    coef = coef / scale
    a, b1, c = (float(v) for v in coef)
    cross = float("nan")
    if c > 0:
        disc = b1 * b1 + 4 * c * a
        cross = (b1 + math.sqrt(max(disc, 0.0))) / (2 * c)
    return {"a": a, "b": b1, "c": c, "crossover_B": cross}


def run(quick: bool, repeats: int, *, out: Path, log=print) -> dict[str, Any]:
    """Measure both scalings, fit, plot; returns a JSON-safe dict.

    Args:
        quick: fewer and smaller sizes.
        repeats: interleaved rounds.
        out: folder for the plots.
        log: progress printer.
    """
    bs = [64, 128, 256, 512] if quick else [256, 512, 1024, 2048, 4096, 8192]
    gs = [1, 2, 4, 8, 16] if quick else [1, 2, 4, 8, 16, 32, 64, 128, 256]
    g_batches = [64] if quick else [64, 256]
    g_steps = 20
    res: dict[str, Any] = {"batch": {}, "runs": {}}

    log(f"  against B = {bs} (one run)")
    timers, info = {}, {}
    for b in bs:
        timers[f"B={b}"], info[b] = _batch_timer(b)
    times = interleave(timers, repeats)
    med = [median(times[f"B={b}"]) for b in bs]
    fit = fit_quadratic(bs, med)
    res["batch"] = {"B": bs, "time_per_step_s": {str(b): spread(times[f"B={b}"]) for b in bs},
                    "steps_per_call": {str(b): info[b]["steps"] for b in bs},
                    "compile_s": {str(b): info[b]["compile_s"] for b in bs}, "fit": fit,
                    "quadratic_share": {str(b): fit["c"] * b * b / (fit["a"] + fit["b"] * b +
                                                                     fit["c"] * b * b)
                                        for b in bs}}
    log("    " + ", ".join(f"B={b}: {m * 1e3:.2f} ms" for b, m in zip(bs, med, strict=True)))
    log(f"    fit a={fit['a'] * 1e6:.0f} us, b={fit['b'] * 1e9:.1f} ns/B, "
        f"c={fit['c'] * 1e12:.2f} ps/B^2 -> B^2 term dominates above B = {fit['crossover_B']:.0f}")

    for b in g_batches:
        log(f"  against G = {gs} at B = {b} ({g_steps} steps per call)")
        timers, cinfo = {}, {}
        for g in gs:
            timers[f"G={g}"], cinfo[g] = _runs_timer(b, g, g_steps)
        timers["naive"] = _naive_timer(b, 100)
        times = interleave(timers, repeats)
        per = {g: median(times[f"G={g}"]) for g in gs}
        naive = median(times["naive"])
        best = min(per.values())
        g_sat = min(g for g in gs if per[g] <= 1.1 * best)
        res["runs"][str(b)] = {
            "G": gs, "time_per_model_step_s": {str(g): spread(times[f"G={g}"]) for g in gs},
            "naive_time_per_step_s": spread(times["naive"]),
            "compile_s": {str(g): cinfo[g]["compile_s"] for g in gs},
            "speedup_vs_G1": {str(g): per[gs[0]] / per[g] for g in gs},
            "speedup_vs_naive": {str(g): naive / per[g] for g in gs},
            "G_within_10pct_of_best": g_sat,
        }
        log("    " + ", ".join(f"G={g}: {per[g] * 1e6:.0f} us" for g in gs)
            + f"; naive loop {naive * 1e6:.0f} us/step; within 10% of the best from G = {g_sat}")
    plot(res, out)
    return res


def plot(res: dict[str, Any], out: Path) -> None:
    """``scaling_batch.png`` and ``scaling_runs.png`` in the clipsim style."""
    from clipsim.plots import new_figure, save

    bs = res["batch"]["B"]
    t = [res["batch"]["time_per_step_s"][str(b)]["median"] * 1e3 for b in bs]
    fit = res["batch"]["fit"]
    grid = np.geomspace(min(bs), max(bs), 100)
    fig, axes = new_figure(1, 1, width=5.0, height=3.6)
    ax = axes[0, 0]
    ax.loglog(bs, t, "o", label="measured (median)")
    ax.loglog(grid, (fit["a"] + fit["b"] * grid + fit["c"] * grid ** 2) * 1e3, "-",
              label="fit a + bB + cB$^2$")
    ax.loglog(grid, (fit["a"] + fit["b"] * grid) * 1e3, ":", label="a + bB")
    ax.loglog(grid, fit["c"] * grid ** 2 * 1e3, "--", label="cB$^2$")
    if math.isfinite(fit["crossover_B"]):
        ax.axvline(fit["crossover_B"], color="0.6", lw=1)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("time per step (ms)")
    ax.set_title("one run, linear encoders, d = 16")
    ax.legend(fontsize=8)
    save(fig, out / "scaling_batch.png")

    fig, axes = new_figure(1, 1, width=5.0, height=3.6)
    ax = axes[0, 0]
    for b, r in res["runs"].items():
        gs = r["G"]
        per = [r["time_per_model_step_s"][str(g)]["median"] * 1e6 for g in gs]
        line, = ax.loglog(gs, per, "o-", label=f"vmap, B = {b}")
        ax.axhline(r["naive_time_per_step_s"]["median"] * 1e6, color=line.get_color(), ls="--",
                   lw=1, label=f"naive loop, B = {b}")
    ax.set_xlabel("runs per program G")
    ax.set_ylabel("time per model-step (us)")
    ax.set_title("jit(vmap(train_program))")
    ax.legend(fontsize=8)
    save(fig, out / "scaling_runs.png")
