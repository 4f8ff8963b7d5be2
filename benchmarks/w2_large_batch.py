"""W2, large batch: two-layer encoders at B = 4096 against the machine's matmul peak.

One run of ``train_program`` (``mlp2`` encoders, dx = dy = 256, width 512, d = 64,
B = 4096, one-hot K = 16, CLIP) for a few steps inside one compiled scan. The
achieved rate counts the matmul FLOPs of the forward and backward pass
(``step_matmul_flops``); the peak is a float32 2048 x 2048 matmul in JAX and in
NumPy, timed in the same rounds. A breakdown times the parts of a step
(sampling, encoders forward and backward, the CLIP loss forward and backward)
at the same sizes, so the time outside the matmuls is visible.

From B = ``BLOCKED_MIN_BATCH`` the ``clip`` objective takes the blocked loss
(``clipsim.objectives._clip_blocked``); the run also times the same step with
the dense loss (the threshold raised while it is traced), and, each in a fresh
process (``python -m benchmarks.w2_large_batch --b B [--dense]``), a linear
d = 64 step at B = 16,384 for its peak memory above the compiled program's
baseline (target: < 512 MiB added) and the dense loss's XLA buffer plan at that B.
The matmul rate counts the useful FLOPs of the step (the blocked loss's
recomputed score block in the backward pass is not counted).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks.common import (
    fmt_bytes,
    hwm_bytes,
    interleave,
    median,
    paired_ratio,
    reset_hwm,
    rss_bytes,
    run_json_subprocess,
    spread,
)
from benchmarks.machine import matmul_flops, matmul_timers


@contextlib.contextmanager
def dense_loss() -> Iterator[None]:
    """While tracing inside this block, ``clip`` uses the dense loss at every B."""
    from clipsim.objectives import _clip

    saved = _clip.BLOCKED_MIN_BATCH
    _clip.BLOCKED_MIN_BATCH = 1 << 62
    try:
        yield
    finally:
        _clip.BLOCKED_MIN_BATCH = saved


def large_b_config(b: int, steps: int = 3):
    """Linear encoders 256 -> 64 (d = 64), one-hot K = 16, CLIP, B = b."""
    from clipsim.config import RunConfig

    return RunConfig.from_dict({
        "data": {"family": "onehot", "num_concepts": 16, "image_dim": 256, "text_dim": 256},
        "model": {"kind": "linear", "embed_dim": 64},
        "objective": {"name": "clip", "temperature": 0.1},
        "train": {"steps": steps, "batch_size": b, "log_every": steps, "learning_rate": 1e-3},
    })


def large_b_child(b: int, dense: bool, compile_only: bool) -> dict[str, Any]:
    """One process: compile the linear d = 64 step at B = b, then its peak RSS while running."""
    from clipsim.train.loop import train_program

    cfg = large_b_config(b)
    key = jax.random.key(0)
    start = time.perf_counter()
    with dense_loss() if dense else contextlib.nullcontext():
        compiled = jax.jit(lambda c, k: train_program(c, k)).lower(cfg, key).compile()
    out: dict[str, Any] = {"b": b, "dense": dense, "compile_s": time.perf_counter() - start}
    mem = compiled.memory_analysis()
    out["xla_temp_bytes"] = getattr(mem, "temp_size_in_bytes", None)
    if compile_only:
        return out
    base = rss_bytes()
    reset_hwm()
    start = time.perf_counter()
    res = jax.block_until_ready(compiled(cfg, key))
    out["run_s"] = time.perf_counter() - start
    out["step_s"] = out["run_s"] / cfg.train.steps
    out["rss_increment"] = hwm_bytes() - base
    out["final_loss"] = float(res.history["loss"][-1])
    return out


def w2_config(quick: bool):
    """The W2 run config (quick: B = 1024, width 256)."""
    from clipsim.config import RunConfig

    steps = 3 if quick else 8
    return RunConfig.from_dict({
        "data": {"family": "onehot", "num_concepts": 16, "image_dim": 256, "text_dim": 256},
        "model": {"kind": "mlp2", "embed_dim": 64, "hidden_dim": 256 if quick else 512},
        "objective": {"name": "clip", "temperature": 0.1},
        "train": {"steps": steps, "batch_size": 1024 if quick else 4096, "log_every": steps,
                  "learning_rate": 1e-3},
    })


def step_matmul_flops(cfg) -> dict[str, float]:
    """Matmul FLOPs of one training step (2 per multiply-add), by part.

    Encoders (per modality, input dim n_in, width h, output d, batch B): forward
    2B(n_in h + h d); backward 2B n_in h (first-layer weights; the data needs no
    gradient) + 4B h d (second layer: weights and hidden activations). Scores:
    forward 2B^2 d; backward 4B^2 d (gradients of both embeddings).

    Args:
        cfg: a run config with ``mlp2`` (or ``linear``) encoders.

    Returns:
        ``{"encoders_fwd", "encoders_bwd", "scores_fwd", "scores_bwd", "total"}``.
    """
    b, d = cfg.train.batch_size, cfg.model.embed_dim
    enc_f = enc_b = 0.0
    for n_in in (cfg.data.image_dim, cfg.data.text_dim):
        if cfg.model.kind == "mlp2":
            h = cfg.model.hidden_dim
            enc_f += 2.0 * b * (n_in * h + h * d)
            enc_b += 2.0 * b * n_in * h + 4.0 * b * h * d
        else:
            enc_f += 2.0 * b * n_in * d
            enc_b += 2.0 * b * n_in * d
    out = {"encoders_fwd": enc_f, "encoders_bwd": enc_b,
           "scores_fwd": 2.0 * b * b * d, "scores_bwd": 4.0 * b * b * d}
    out["total"] = sum(out.values())
    return out


def _plain_clip_mean(za, zb, tau):
    """The CLIP loss with the gradient traced through the logsumexps (no custom VJP)."""
    from clipsim.objectives._clip import _row_col_losses_plain

    s = za @ zb.T
    row, col = _row_col_losses_plain(s, jnp.asarray(tau, s.dtype))
    return 0.5 * (jnp.mean(row) + jnp.mean(col))


def _dense_jit(fn):
    """``jax.jit`` of a fresh function object (traced again, e.g. under ``dense_loss``)."""
    return jax.jit(lambda *args: fn(*args))


def _part_timers(cfg, inner: int) -> dict[str, Any]:
    """Timers of the parts of one step at the config's sizes (seconds per call)."""
    from clipsim import objectives
    from clipsim.data import sample_pairs
    from clipsim.train.loop import embed, init_params, world_for

    world = world_for(cfg)
    params = init_params(cfg, key=jax.random.key(0))
    key = jax.random.key(1)
    b = cfg.train.batch_size
    batch = sample_pairs(cfg.data, world, key=key, n=b)
    za, zb = embed(params, batch.x, batch.y, cfg=cfg.model)
    clip = objectives.get("clip").loss_fn

    fns = {
        "sample": (jax.jit(lambda k: sample_pairs(cfg.data, world, key=k, n=b)), (key,)),
        "encoders fwd+bwd": (jax.jit(jax.grad(
            lambda p, x, y: sum(jnp.sum(e * c) for e, c in
                                zip(embed(p, x, y, cfg=cfg.model), (za, zb), strict=True)))),
            (params, batch.x, batch.y)),
        "clip loss fwd+bwd": (jax.jit(jax.grad(
            lambda a, c: clip(a, c, {}, cfg=cfg.objective)[0], argnums=(0, 1))), (za, zb)),
        "clip loss fwd+bwd, dense": (_dense_jit(jax.grad(
            lambda a, c: clip(a, c, {}, cfg=cfg.objective)[0], argnums=(0, 1))), (za, zb)),
        "clip loss fwd+bwd, plain autodiff": (jax.jit(jax.grad(
            lambda a, c: _plain_clip_mean(a, c, cfg.objective.temperature), argnums=(0, 1))),
            (za, zb)),
        "clip loss fwd+bwd+stats": (jax.jit(jax.value_and_grad(
            lambda a, c: clip(a, c, {}, cfg=cfg.objective), argnums=(0, 1), has_aux=True)),
            (za, zb)),
    }
    timers = {}
    for name, (fn, args) in fns.items():
        if name.endswith(", dense"):
            with dense_loss():
                fn = fn.lower(*args).compile()
        jax.block_until_ready(fn(*args))

        def timer(fn=fn, args=args) -> float:
            start = time.perf_counter()
            for _ in range(inner):
                out = fn(*args)
            jax.block_until_ready(out)
            return (time.perf_counter() - start) / inner

        timers[name] = timer
    return timers


def run(quick: bool, repeats: int, *, log=print) -> dict[str, Any]:
    """Measure W2: time per step, achieved matmul GFLOP/s, the peak, and a breakdown.

    Args:
        quick: smaller sizes (seconds).
        repeats: interleaved rounds.
        log: progress printer.

    Returns:
        A JSON-safe dict.
    """
    from clipsim.train.loop import train_program

    cfg = w2_config(quick)
    key = jax.random.key(0)
    flops = step_matmul_flops(cfg)
    t0 = time.perf_counter()
    lowered = jax.jit(train_program).lower(cfg, key)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    compile_info = {"trace_lower_s": t1 - t0, "compile_s": time.perf_counter() - t1}
    mem = compiled.memory_analysis()
    jax.block_until_ready(compiled(cfg, key))
    steps = cfg.train.steps

    def train_timer() -> float:
        start = time.perf_counter()
        jax.block_until_ready(compiled(cfg, key))
        return (time.perf_counter() - start) / steps

    with dense_loss():
        dense_compiled = jax.jit(lambda c, k: train_program(c, k)).lower(cfg, key).compile()
    jax.block_until_ready(dense_compiled(cfg, key))

    def dense_timer() -> float:
        start = time.perf_counter()
        jax.block_until_ready(dense_compiled(cfg, key))
        return (time.perf_counter() - start) / steps

    n = 1024 if quick else 2048
    variants = {"train_step": train_timer, "train_step_dense_loss": dense_timer,
                **matmul_timers(n, inner=2 if quick else 4)}
    log(f"  W2: mlp2 {cfg.data.image_dim}->{cfg.model.hidden_dim}->{cfg.model.embed_dim}, "
        f"B = {cfg.train.batch_size}, {steps} steps per call; "
        f"{flops['total'] / 1e9:.1f} GFLOP of matmuls per step; peak from {n} x {n}")
    times = interleave(variants, repeats, log=log)
    rates = {
        "train_step": [flops["total"] / t / 1e9 for t in times["train_step"]],
        "train_step_dense_loss": [flops["total"] / t / 1e9 for t in times["train_step_dense_loss"]],
        "jax_matmul": [matmul_flops(n) / t / 1e9 for t in times["jax_matmul"]],
        "numpy_matmul": [matmul_flops(n) / t / 1e9 for t in times["numpy_matmul"]],
    }
    peak_rounds = [max(a, b) for a, b in zip(rates["jax_matmul"], rates["numpy_matmul"],
                                              strict=True)]
    frac = paired_ratio(rates["train_step"], peak_rounds)
    res: dict[str, Any] = {
        "settings": {"batch_size": cfg.train.batch_size, "image_dim": cfg.data.image_dim,
                     "hidden_dim": cfg.model.hidden_dim, "embed_dim": cfg.model.embed_dim,
                     "steps_per_call": steps, "peak_matmul_n": n, "repeats": repeats},
        "compile": compile_info,
        "xla_temp_bytes": getattr(mem, "temp_size_in_bytes", None),
        "flops_per_step": flops,
        "times_s": {k: spread(v) for k, v in times.items()},
        "gflops": {k: spread(v) for k, v in rates.items()},
        "fraction_of_peak": frac,
        "fraction_of_peak_dense_loss": paired_ratio(rates["train_step_dense_loss"], peak_rounds),
        "dense_step_over_blocked_step": paired_ratio(times["train_step_dense_loss"],
                                                     times["train_step"]),
    }
    log(f"  dense-loss step / blocked-loss step at B = {cfg.train.batch_size}: "
        f"{res['dense_step_over_blocked_step']['median']:.2f}x")
    log(f"  step {median(times['train_step']) * 1e3:.0f} ms: "
        f"{median(rates['train_step']):.1f} GFLOP/s; peak jax "
        f"{median(rates['jax_matmul']):.1f}, numpy {median(rates['numpy_matmul']):.1f} "
        f"GFLOP/s -> {100 * frac['median']:.0f}% of peak")

    # where the time goes: the parts of a step, at the same sizes
    parts = _part_timers(cfg, inner=1 if not quick else 2)
    part_times = interleave(parts, max(2, repeats - 1), log=None)
    res["breakdown_s"] = {k: spread(v) for k, v in part_times.items()}
    enc_flops = flops["encoders_fwd"] + flops["encoders_bwd"]
    score_flops = flops["scores_fwd"] + flops["scores_bwd"]
    res["breakdown_gflops"] = {
        "encoders fwd+bwd": enc_flops / median(part_times["encoders fwd+bwd"]) / 1e9,
        "clip loss fwd+bwd": score_flops / median(part_times["clip loss fwd+bwd"]) / 1e9,
        "clip loss fwd+bwd, dense": score_flops / median(
            part_times["clip loss fwd+bwd, dense"]) / 1e9,
        "clip loss fwd+bwd, plain autodiff": score_flops / median(
            part_times["clip loss fwd+bwd, plain autodiff"]) / 1e9,
    }
    log("  breakdown: " + ", ".join(
        f"{k} {median(v) * 1e3:.0f} ms" for k, v in part_times.items()))
    res["targets"] = {">= 50% of matmul peak": frac["median"] >= 0.5,
                      "blocked step not slower than dense at B = 4096":
                      res["dense_step_over_blocked_step"]["median"] >= 1.0}

    # B = 16,384, linear d = 64: peak memory of the blocked step; the dense plan
    big = 2048 if quick else 16_384
    child = run_json_subprocess(["-m", "benchmarks.w2_large_batch", "--b", str(big)])
    dense_plan = run_json_subprocess(["-m", "benchmarks.w2_large_batch", "--b", str(big),
                                      "--dense", "--compile-only"])
    res["large_b"] = {"blocked": child, "dense_compile_only": dense_plan}
    if "rss_increment" in child:
        log(f"  B = {big} linear d = 64: step {child['step_s'] * 1e3:.0f} ms, peak RSS "
            f"+{fmt_bytes(child['rss_increment'])} (XLA temporaries "
            f"{fmt_bytes(child['xla_temp_bytes'] or 0)}); dense loss would plan "
            f"{fmt_bytes(dense_plan.get('xla_temp_bytes') or 0)}")
        res["targets"][f"B = {big} trains with < 512 MiB added"] = (
            child["rss_increment"] < 512 * 2**20)
    else:
        log(f"  B = {big}: {child.get('error')} {child.get('stderr', '')[-300:]}")
    return res


def child_main(argv: list[str]) -> int:
    """``python -m benchmarks.w2_large_batch --b B [--dense] [--compile-only]``: one JSON line."""
    p = argparse.ArgumentParser()
    p.add_argument("--b", type=int, required=True)
    p.add_argument("--dense", action="store_true")
    p.add_argument("--compile-only", action="store_true")
    a = p.parse_args(argv)
    print(json.dumps(large_b_child(a.b, a.dense, a.compile_only), default=float))
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
