"""W1, a theory-sized sweep: ``clipsim sweep`` against a naive JAX loop and a PyTorch loop.

The sweep: linear encoders, dx = dy = 64, d = 16, B = 256, one-hot K = 16, 2000
steps, 8 temperatures x 8 seeds (64 runs, one static group). Variants, timed in
interleaved rounds:

- ``sweep``: ``clipsim.sweep.run`` with the local backend, the function the
  ``clipsim sweep`` command calls (training, evaluation, the results table and
  its Parquet files), into a fresh folder each round;
- ``sweep_program``: the engine's batched program alone (``run_batch``) on the first
  chunk as the planner cut it (one seed, so every batch is drawn once and shared by
  the chunk's temperatures): training and evaluation, no table;
- ``naive_jax``: the same runs one after another, a jitted per-step function
  (same generator, same encoders and initialization, a plain CLIP loss, optax
  Adam) called from a Python loop, results fetched once per run;
- ``torch``: the same runs as a plain PyTorch eager loop with ``torch.optim.Adam``
  (see ``benchmarks.torch_baseline``).

The naive loops run a subset of the 64 runs (all their steps) and are reported
in model-steps per second, the sweep's unit, so the ratios compare like with
like. The CLI is also run twice in fresh processes with an empty persistent
compilation cache to check that the second run reuses it, and with a memory
budget / ``--max-batch`` to check peak memory (RSS) against the budget.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.common import (
    fmt_bytes,
    interleave,
    median,
    paired_ratio,
    run_json_subprocess,
    spread,
)

TEMPERATURES = (0.02, 0.03, 0.05, 0.07, 0.1, 0.2, 0.5, 1.0)


def w1_spec(quick: bool) -> dict[str, Any]:
    """The W1 sweep spec (a dict for ``clipsim.sweep.run``); quick: small and short."""
    steps = 100 if quick else 2000
    return {
        "name": "bench_w1",
        "base": {
            "data.family": "onehot",
            "data.num_concepts": 16,
            "data.image_dim": 64,
            "data.text_dim": 64,
            "model.kind": "linear",
            "model.embed_dim": 16,
            "objective.name": "clip",
            "train.steps": steps,
            "train.batch_size": 64 if quick else 256,
            "train.learning_rate": 0.01,
            "train.log_every": steps // 20,
        },
        "grid": {"objective.temperature": list(TEMPERATURES[::2] if quick else TEMPERATURES),
                 "seeds": 2 if quick else 8},
        "eval": {"num_samples": 500 if quick else 2000},
    }


def spec_toml(spec: dict[str, Any]) -> str:
    """The spec dict as sweep-file TOML text."""
    def val(v: Any) -> str:
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    lines = [f'name = "{spec["name"]}"', "", "[base]"]
    lines += [f"{k} = {val(v)}" for k, v in spec["base"].items()]
    lines += ["", "[grid]"]
    lines += [(f"{k} = {val(v)}" if k == "seeds" else f'"{k}" = {val(v)}')
              for k, v in spec["grid"].items()]
    lines += ["", "[eval]"] + [f"{k} = {val(v)}" for k, v in spec["eval"].items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ naive JAX
def plain_clip_loss(za: jax.Array, zb: jax.Array, tau: jax.Array) -> jax.Array:
    """The textbook symmetric CLIP loss: mean cross-entropy of S / tau over rows and columns."""
    logits = za @ zb.T / tau
    labels = jnp.arange(za.shape[0])
    row = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    col = optax.softmax_cross_entropy_with_integer_labels(logits.T, labels)
    return 0.5 * (jnp.mean(row) + jnp.mean(col))


class NaiveJax:
    """One run at a time: a jitted step (sample, loss, grad, Adam) in a Python loop.

    The data, encoders and initialization are clipsim's (``sample_pairs``,
    ``encode``, ``init_params`` on the same key streams as ``train_program``), so
    the runs are the sweep's runs; only the loop structure differs. The
    temperature and learning rate are array arguments, so one compiled step
    serves every run of the group.
    """

    def __init__(self, cfg) -> None:
        from clipsim.data import sample_pairs
        from clipsim.models import encode
        from clipsim.train.loop import world_for

        self.cfg = cfg
        world = world_for(cfg)
        b, model, data = cfg.train.batch_size, cfg.model, cfg.data

        def loss_fn(enc, batch, tau):
            za = encode(enc["image"], batch.x, cfg=model)
            zb = encode(enc["text"], batch.y, cfg=model)
            return plain_clip_loss(za, zb, tau)

        def step(enc, opt_state, batch_key, i, tau, lr):
            batch = sample_pairs(data, world, key=jax.random.fold_in(batch_key, i), n=b)
            loss, grads = jax.value_and_grad(loss_fn)(enc, batch, tau)
            updates, opt_state = optax.adam(lr).update(grads, opt_state, enc)
            return optax.apply_updates(enc, updates), opt_state, loss

        self.step = jax.jit(step)

    def init(self, run_cfg):
        """Initial (encoder params, Adam state, batch key, tau, lr) of one run."""
        from clipsim.train.loop import STREAM_BATCHES, STREAM_INIT, init_params

        key = jax.random.key(int(run_cfg.seed))
        enc = init_params(run_cfg, key=jax.random.fold_in(key, STREAM_INIT))["encoders"]
        opt_state = optax.adam(0.0).init(enc)
        return (enc, opt_state, jax.random.fold_in(key, STREAM_BATCHES),
                jnp.asarray(run_cfg.objective.temperature, jnp.float32),
                jnp.asarray(run_cfg.train.learning_rate, jnp.float32))

    def compile_seconds(self, run_cfg) -> dict[str, float]:
        """Trace+lower and compile time of the step (ahead of time)."""
        enc, opt_state, bkey, tau, lr = self.init(run_cfg)
        t0 = time.perf_counter()
        lowered = self.step.lower(enc, opt_state, bkey, 0, tau, lr)
        t1 = time.perf_counter()
        lowered.compile()
        return {"trace_lower_s": t1 - t0, "compile_s": time.perf_counter() - t1}

    def train(self, run_cfg) -> float:
        """Train one run; returns the mean loss of its last logging block (fetched once)."""
        enc, opt_state, bkey, tau, lr = self.init(run_cfg)
        steps, block = run_cfg.train.steps, run_cfg.train.log_every
        losses = []
        for i in range(steps):
            enc, opt_state, loss = self.step(enc, opt_state, bkey, i, tau, lr)
            if i >= steps - block:
                losses.append(loss)
        return float(jnp.mean(jnp.stack(losses)))


# ---------------------------------------------------------------------- checks
def hot_path_check(cfg) -> dict[str, Any]:
    """Static facts about the sweep program: one executable per chunk, no host callbacks.

    Walks the jaxpr of ``vmap(run_point)`` for callback primitives (a host round
    trip inside the program) and counts the scans (steps run inside the program).
    """
    from clipsim.sweep.engine import run_point, stack_configs  # run_point: train_evaluate

    try:
        from jax.extend.core import jaxprs_in_params
    except ImportError:  # older jax
        jaxprs_in_params = jax.core.jaxprs_in_params

    stacked = stack_configs([cfg, cfg])
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    closed = jax.make_jaxpr(jax.vmap(run_point))(stacked, keys)
    prims: dict[str, int] = {}

    def walk(jaxpr) -> None:
        for eqn in jaxpr.eqns:
            prims[eqn.primitive.name] = prims.get(eqn.primitive.name, 0) + 1
            for sub in jaxprs_in_params(eqn.params):
                walk(sub)

    walk(closed.jaxpr)
    callbacks = {k: v for k, v in prims.items() if "callback" in k or k in ("outfeed", "infeed")}
    return {"host_callbacks_in_program": callbacks, "scans": prims.get("scan", 0),
            "equations": sum(prims.values())}


def cli_checks(spec: dict[str, Any], workdir: Path, *, log) -> dict[str, Any]:
    """The CLI in fresh processes: persistent-cache reuse, compilations, peak RSS vs budget.

    Runs ``clipsim sweep`` twice with an empty ``CLIPSIM_CACHE_DIR`` (the second run
    must hit the cache and compile nothing new), then with ``--memory-budget`` and with
    ``--max-batch`` (peak RSS above the post-import baseline against the budget).
    """
    from clipsim.sweep.engine import estimate_run_bytes
    from clipsim.sweep.spec import as_spec

    spec = {**spec, "base": {**spec["base"]}}
    steps = min(spec["base"]["train.steps"], 200)  # memory and compilation do not depend on it
    spec["base"].update({"train.steps": steps, "train.log_every": steps // 20})
    spec_path = workdir / "w1.toml"
    spec_path.write_text(spec_toml(spec))
    cache = workdir / "jax-cache"
    env = {"CLIPSIM_CACHE_DIR": str(cache)}
    points = as_spec(spec).points()
    run_bytes = estimate_run_bytes(points[0])
    out: dict[str, Any] = {"estimate_run_bytes": run_bytes, "runs": len(points), "steps": steps}

    def probe(tag: str, *extra: str) -> dict[str, Any]:
        res = run_json_subprocess(["-m", "benchmarks.cli_probe", "sweep", str(spec_path),
                                   "--out", str(workdir / f"cli-{tag}"), "--quiet", *extra],
                                  env=env)
        if "error" not in res:
            res["rss_increment"] = res["rss_peak"] - res["rss_base"]
            if res.get("rss_exec_peak") is not None:
                res["rss_exec_increment"] = res["rss_exec_peak"] - res["rss_after_compile"]
        log(f"    cli {tag}: " + (res.get("error") or
            f"{res['wall_s']:.1f} s, sweep programs compiled "
            f"{res['backend_compiles'].get('jit(sweep_chunk)', 0)}, "
            f"cache hits {res['cache_hits']}, misses {res['cache_misses']}, "
            f"peak RSS {fmt_bytes(res['rss_peak'])} (+{fmt_bytes(res['rss_increment'])} over "
            f"the imports, +{fmt_bytes(res.get('rss_exec_increment') or 0)} while running)"))
        return res

    out["first"] = probe("first")
    out["second"] = probe("second")
    if "error" not in out["first"] and "error" not in out["second"]:
        out["cache_files"] = sum(1 for p in cache.rglob("*") if p.is_file())
        out["second_reuses_cache"] = bool(
            out["second"]["cache_hits"] > 0 and out["second"]["cache_misses"] == 0)
        out["sweep_compiles_first"] = out["first"]["backend_compiles"].get("jit(sweep_chunk)", 0)
        out["second_compile_s"] = out["second"]["backend_compile_s"].get("jit(sweep_chunk)")
        out["first_compile_s"] = out["first"]["backend_compile_s"].get("jit(sweep_chunk)")
    n = len(points)
    budget = max(run_bytes * max(1, n // 4), 64 * 2**20)
    res = probe("budget", "--memory-budget", str(budget), "--no-cache")
    res["budget"] = budget
    res["runs_per_chunk"] = max(1, budget // run_bytes)
    res["within_budget"] = "error" not in res and res.get("rss_exec_increment", 1e30) <= budget
    out["memory_budget"] = res
    mb = max(1, n // 8)
    res = probe("max-batch", "--max-batch", str(mb), "--no-cache")
    res["max_batch"] = mb
    res["budget"] = mb * run_bytes
    res["within_budget"] = ("error" not in res
                            and res.get("rss_exec_increment", 1e30) <= res["budget"])
    out["max_batch"] = res
    return out


# ------------------------------------------------------------------------ main
def run(quick: bool, repeats: int, *, log=print, torch_ok: bool = True,
        naive_runs: int | None = None) -> dict[str, Any]:
    """Measure W1; returns a JSON-safe dict of settings, times, rates and ratios.

    Args:
        quick: small sizes (seconds) instead of the full W1.
        repeats: interleaved rounds.
        log: progress printer.
        torch_ok: measure the PyTorch loop when torch is importable.
        naive_runs: runs measured by the naive loops (default 2 quick, 4 full).
    """
    import clipsim.sweep
    from clipsim.sweep.engine import clear_programs, plan_chunks, program_traces, run_batch
    from clipsim.sweep.spec import as_spec

    spec_dict = w1_spec(quick)
    spec = as_spec(spec_dict)
    points = spec.points()
    n_runs, steps = len(points), points[0].train.steps
    k = naive_runs or (2 if quick else 4)
    subset = sorted({int(round(x)) for x in np.linspace(0, n_runs - 1, k)})
    res: dict[str, Any] = {
        "settings": {"runs": n_runs, "steps": steps, "batch_size": points[0].train.batch_size,
                     "image_dim": points[0].data.image_dim, "embed_dim": points[0].model.embed_dim,
                     "num_concepts": points[0].data.num_concepts,
                     "eval_num_samples": points[0].eval.num_samples,
                     "temperatures": spec_dict["grid"]["objective.temperature"],
                     "naive_subset": subset, "repeats": repeats},
    }
    log(f"  W1: {n_runs} runs x {steps} steps at B = {points[0].train.batch_size}; naive loops "
        f"on runs {subset} ({len(subset)} of {n_runs}), rates in model-steps/s")
    tasks = plan_chunks(spec.name, points, range(n_runs))
    res["settings"]["chunks"] = len(tasks)
    res["settings"]["chunk_size"] = tasks[0].pad_to
    res["hot_path"] = hot_path_check(points[0])
    log(f"  program: {res['hot_path']}")

    # the program of one chunk, as the engine runs it (data drawn once per seed)
    task = tasks[0]
    chunk_cfgs = task.run_configs()
    res["settings"]["chunk_shares_data"] = bool(task.shared_key)

    def program_timer() -> float:
        start = time.perf_counter()
        run_batch(chunk_cfgs, pad_to=task.pad_to, shared=task.shared,
                  shared_key=task.shared_key)
        return time.perf_counter() - start

    clear_programs()
    first = program_timer()
    res["compile"] = {"sweep": {"first_chunk_minus_warm_s": first - program_timer()}}
    naive = NaiveJax(points[0])
    res["compile"]["naive_jax"] = naive.compile_seconds(points[0])

    tmp = Path(tempfile.mkdtemp(prefix="clipsim-bench-w1-"))
    counter = iter(range(10**6))

    def sweep_timer() -> float:
        start = time.perf_counter()
        clipsim.sweep.run(spec, out=tmp / f"sweep-{next(counter)}", backend="local", quiet=True)
        return time.perf_counter() - start

    clear_programs()
    cold = sweep_timer()
    res["sweep_cold_s"] = cold
    res["sweep_traces_after_cold_run"] = program_traces(points[0])

    naive_losses: dict[int, float] = {}

    def naive_timer() -> float:
        start = time.perf_counter()
        for i in subset:
            naive_losses[i] = naive.train(points[i])
        return time.perf_counter() - start

    variants: dict[str, Any] = {"sweep": sweep_timer, "sweep_program": program_timer,
                                "naive_jax": naive_timer}
    torch_info: dict[str, Any] = {"available": False}
    if torch_ok:
        from benchmarks import torch_baseline

        if torch_baseline.available():
            torch_runner = torch_baseline.TorchLoop(points[0])
            torch_runner.warmup(points[subset[0]])
            torch_info = {"available": True, "version": torch_baseline.version(),
                          "threads": torch_baseline.num_threads()}

            def torch_timer(threads: int | None = None) -> float:
                import torch

                default = torch.get_num_threads()
                torch.set_num_threads(threads or default)
                try:
                    start = time.perf_counter()
                    for i in subset:
                        torch_runner.train(points[i])
                    return time.perf_counter() - start
                finally:
                    torch.set_num_threads(default)

            variants["torch"] = torch_timer
            variants["torch_1thread"] = lambda: torch_timer(1)
        else:
            torch_info["message"] = torch_baseline.MISSING
            log(f"  {torch_baseline.MISSING}")
    res["torch"] = torch_info
    naive_timer()  # warm the naive step's dispatch path once
    times = interleave(variants, repeats, log=log)
    res["sweep_traces_after_all_rounds"] = program_traces(points[0])

    model_steps = {"sweep": n_runs * steps, "sweep_program": tasks[0].pad_to * steps,
                   "naive_jax": len(subset) * steps, "torch": len(subset) * steps,
                   "torch_1thread": len(subset) * steps}
    rates = {name: [model_steps[name] / t for t in ts] for name, ts in times.items()}
    if "torch" in rates:  # compare with the faster torch setting of each round
        rates["torch_best"] = [max(a, b) for a, b in zip(rates["torch"], rates["torch_1thread"],
                                                          strict=True)]
    res["times_s"] = {name: spread(ts) for name, ts in times.items()}
    res["model_steps"] = model_steps
    res["model_steps_per_s"] = {name: spread(r) for name, r in rates.items()
                                if name != "torch_best"}
    res["compile"]["sweep"]["cold_minus_warm_s"] = cold - median(times["sweep"])
    ratios = {"sweep/naive_jax": paired_ratio(rates["sweep"], rates["naive_jax"]),
              "sweep_program/naive_jax": paired_ratio(rates["sweep_program"],
                                                      rates["naive_jax"])}
    if "torch" in rates:
        ratios["sweep/torch"] = paired_ratio(rates["sweep"], rates["torch_best"])
        ratios["naive_jax/torch"] = paired_ratio(rates["naive_jax"], rates["torch_best"])
    res["ratios"] = ratios

    # the naive loop trains the sweep's runs: compare their final losses
    table = clipsim.sweep.load(tmp / "sweep-0")
    final = table[table["final"]].set_index("point")["loss"]
    res["naive_vs_sweep_final_loss_max_abs_diff"] = float(
        max(abs(final.loc[i] - naive_losses[i]) for i in subset))
    res["targets"] = {
        "sweep >= 10x torch": (ratios["sweep/torch"]["median"] >= 10) if "sweep/torch" in ratios
        else None,
        "sweep >= 3x naive_jax": ratios["sweep/naive_jax"]["median"] >= 3,
        "one compilation per static group": res["sweep_traces_after_all_rounds"] == 1,
    }
    log("  rates (model-steps/s, median): " + ", ".join(
        f"{k} {v['median']:.0f}" for k, v in res["model_steps_per_s"].items()))
    log("  ratios (median of rounds): " + ", ".join(
        f"{k} {v['median']:.2f}" for k, v in ratios.items()))
    res["cli"] = cli_checks(spec_dict, tmp, log=log)
    res["targets"]["second CLI run reuses the persistent cache"] = res["cli"].get(
        "second_reuses_cache")
    res["targets"]["peak RSS within --memory-budget"] = res["cli"]["memory_budget"][
        "within_budget"]
    res["targets"]["peak RSS within --max-batch x estimate"] = res["cli"]["max_batch"][
        "within_budget"]
    return res
