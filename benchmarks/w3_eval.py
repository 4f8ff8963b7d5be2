"""W3, evaluation on 1e5 test samples: time and peak memory of each metric family.

Every case runs in a fresh process (``python -m benchmarks.w3_eval --case C --n N``)
so its peak resident memory is its own: the process compiles, resets the
kernel's high-water mark (``/proc/self/clear_refs``), runs the case and reports
the new high-water mark above the RSS before the run, with XLA's own estimate
of the program's temporary buffers.

Cases (model: the W1 linear encoders, d = 16, one-hot K = 16, dx = dy = 64):

- ``zero_shot``: test images, class prompts, ``zero_shot_metrics`` (n x C scores);
- ``recovery``: ``ridge_r2`` of the shared and unique latents and
  ``linear_probe_accuracy`` (n x d features);
- ``theory``: ``clipsim.theory.report.bounds_table`` (every E-statement calculator;
  64 population batches of B = 256 and two zero-shot test sets of n images);
- ``margins_dense``: the library's ``margin_stats`` forced onto its dense path
  (n x n scores; quadratic memory), at sizes that fit, plus XLA's buffer estimate
  at n = 1e5 from compilation alone;
- ``margins_blocked``: the library's ``margin_stats`` on its row-blocked path
  (the default from ``BLOCKED_MIN_ROWS`` rows on), checked equal to the dense path at
  small n;
- ``evaluate``: the whole ``evaluate_program`` (every metric, blocked where it
  needs n x n) at n test pairs;
- ``threshold``: dense against blocked margins, retrieval and uniformity at sizes
  around ``BLOCKED_MIN_ROWS``, interleaved in one process (the measurement behind
  that threshold and ``SLAB_ENTRIES``);
- ``evaluate_vmap``: ``evaluate_program`` (the sweep's evaluation, n = 2000) on G
  runs, ``vmap`` over runs against a Python loop over runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from benchmarks.common import (
    fmt_bytes,
    fmt_seconds,
    hwm_bytes,
    median,
    reset_hwm,
    rss_bytes,
    run_json_subprocess,
)


def _config(n: int):
    from clipsim.config import RunConfig

    return RunConfig.from_dict({
        "data": {"family": "onehot", "num_concepts": 16, "image_dim": 64, "text_dim": 64},
        "model": {"kind": "linear", "embed_dim": 16},
        "train": {"batch_size": 256, "steps": 100, "log_every": 10},
        "eval": {"num_samples": n},
    })


def _case_fn(case: str, n: int):
    """(jitted function, its arguments) of a case at size n."""
    import jax
    import jax.numpy as jnp

    from clipsim import metrics
    from clipsim.data import prompts, sample_pairs, sample_test_images
    from clipsim.models import normalize_rows
    from clipsim.train.loop import embed, init_params, world_for

    cfg = _config(n)
    world = world_for(cfg)
    params = init_params(cfg, key=jax.random.key(0))
    key = jax.random.key(1)
    enc, model = params["encoders"], cfg.model

    if case == "zero_shot":
        def fn(key):
            from clipsim.models import encode

            test = sample_test_images(cfg.data, world, key=key, n=n)
            img = encode(enc["image"], test.x, cfg=model)
            cls = normalize_rows(jnp.mean(encode(enc["text"], prompts(cfg.data, world),
                                                 cfg=model), axis=1))
            return metrics.zero_shot_metrics(img, cls, test.labels, top_r=(1, 3, 5),
                                             temperature=0.1)
        return jax.jit(fn), (key,)
    pairs = sample_pairs(cfg.data, world, key=key, n=n)
    ea, eb = embed(params, pairs.x, pairs.y, cfg=model)
    if case == "recovery":
        def fn(ea, eb, pairs):
            return {"r2_shared": metrics.ridge_r2(ea, pairs.z),
                    "r2_image_unique": metrics.ridge_r2(ea, pairs.xi),
                    "r2_text_unique": metrics.ridge_r2(eb, pairs.zeta),
                    "probe_accuracy": metrics.linear_probe_accuracy(ea, pairs.labels, 16)}
        return jax.jit(fn), (ea, eb, pairs)
    if case == "margins_dense":
        # block=None below BLOCKED_MIN_ROWS is dense; above it, force the dense formula
        from clipsim.metrics import _blocked

        _blocked.BLOCKED_MIN_ROWS = 1 << 62
        return jax.jit(lambda a, b, z: metrics.margin_stats(a, b, z)), (ea, eb, pairs.z)
    if case == "margins_blocked":
        from clipsim.metrics import _blocked

        block = _blocked.block_rows(n, n)
        return (jax.jit(lambda a, b, z: metrics.margin_stats(a, b, z, block=block)),
                (ea, eb, pairs.z))
    if case == "evaluate":
        from clipsim.evaluation import evaluate_program

        return jax.jit(evaluate_program), (cfg, params, key)
    raise ValueError(f"unknown case {case!r}")


def _child(case: str, n: int, repeats: int, compile_only: bool) -> dict[str, Any]:
    import jax
    import numpy as np

    out: dict[str, Any] = {"case": case, "n": n}
    if case == "theory":
        from clipsim.theory.report import bounds_table

        cfg = _config(n)
        bounds_table(_config(1000), key=jax.random.key(0), num_batches=4)  # warm the code paths
        times = []
        base = rss_bytes()
        reset_hwm()
        for _ in range(repeats):
            start = time.perf_counter()
            rows = bounds_table(cfg, key=jax.random.key(2))
            times.append(time.perf_counter() - start)
        out.update(run_s=times, rss_base=base, rss_peak=hwm_bytes(), rows=len(rows),
                   compile_s=None, xla_temp_bytes=None)
        return out
    if case == "evaluate_vmap":
        return _evaluate_vmap(n, repeats)
    if case == "threshold":
        return threshold_scan(repeats)
    fn, args = _case_fn(case, n)
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    out["compile_s"] = time.perf_counter() - start
    mem = compiled.memory_analysis()
    out["xla_temp_bytes"] = getattr(mem, "temp_size_in_bytes", None)
    out["xla_argument_bytes"] = getattr(mem, "argument_size_in_bytes", None)
    if compile_only:
        return out
    jax.block_until_ready(args)
    base = rss_bytes()
    reset_hwm()
    times, cpu, values = [], [], None
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        values = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    # process CPU seconds: on a loaded machine wall time overstates the work, CPU time does not
    out.update(run_s=times, cpu_s=cpu, rss_base=base, rss_peak=hwm_bytes(),
               values={k: float(np.asarray(v)) for k, v in values.items()})
    return out


def _metric_bundle(block):
    """Margins, retrieval and uniformity with a given block (None: the default path)."""
    from clipsim import metrics

    def fn(a, b, z):
        res = dict(metrics.margin_stats(a, b, z, block=block))
        res.update(metrics.retrieval_recall(a, b, ks=(1, 5), block=block))
        res["uniformity"] = metrics.uniformity(a, block=block)
        return res
    return fn


def threshold_scan(repeats: int, ns: tuple[int, ...] = (1024, 2048, 4096, 8192),
                   slabs: tuple[int, ...] = (1 << 19, 1 << 21, 1 << 23)) -> dict[str, Any]:
    """Dense against blocked n x n metrics (margins, retrieval, uniformity) at sizes ns.

    For each n: the three metrics on the dense path and on the blocked path with
    ``SLAB_ENTRIES`` in ``slabs`` (block = slab // n rows), compiled ahead,
    then timed in interleaved rounds. Returns seconds per call (medians) and the
    dense / blocked ratios.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.common import interleave
    from clipsim.metrics import _blocked

    out: dict[str, Any] = {"ns": list(ns), "slabs": list(slabs), "per_n": {}}
    for n in ns:
        rng = np.random.default_rng(0)
        a = jnp.asarray(rng.standard_normal((n, 16)), jnp.float32)
        b = jnp.asarray(rng.standard_normal((n, 16)), jnp.float32)
        z = jnp.asarray(np.eye(16)[rng.integers(0, 16, size=n)], jnp.float32)
        saved = _blocked.BLOCKED_MIN_ROWS
        _blocked.BLOCKED_MIN_ROWS = 1 << 62
        try:
            fns = {"dense": jax.jit(_metric_bundle(None)).lower(a, b, z).compile()}
        finally:
            _blocked.BLOCKED_MIN_ROWS = saved
        for slab in slabs:
            fns[f"slab {slab}"] = jax.jit(_metric_bundle(max(1, min(n, slab // n)))).lower(
                a, b, z).compile()
        timers = {}
        for name, fn in fns.items():
            jax.block_until_ready(fn(a, b, z))

            def timer(fn=fn, args=(a, b, z)) -> float:
                start = time.perf_counter()
                jax.block_until_ready(fn(*args))
                return time.perf_counter() - start

            timers[name] = timer
        times = interleave(timers, repeats)
        med = {k: median(v) for k, v in times.items()}
        out["per_n"][str(n)] = {"seconds": med,
                                "dense_over_blocked": {k: med["dense"] / v
                                                       for k, v in med.items() if k != "dense"}}
    return out


def _evaluate_vmap(g: int, repeats: int) -> dict[str, Any]:
    """evaluate_program on g runs (n = 2000): vmap over runs vs a loop of jitted calls."""
    import jax
    import jax.numpy as jnp

    from clipsim.evaluation import evaluate_program
    from clipsim.sweep.engine import stack_configs
    from clipsim.train.loop import init_params

    cfg = _config(2000)
    cfgs = [cfg.replace(seed=s) for s in range(g)]
    params = [init_params(c, key=jax.random.key(c.seed)) for c in cfgs]
    keys = [jax.random.key(100 + c.seed) for c in cfgs]
    stacked = stack_configs(cfgs)
    sp = jax.tree.map(lambda *xs: jnp.stack(xs), *params)
    sk = jnp.stack(keys)
    vm = jax.jit(jax.vmap(evaluate_program))
    one = jax.jit(evaluate_program)
    jax.block_until_ready(vm(stacked, sp, sk))
    jax.block_until_ready(one(cfgs[0], params[0], keys[0]))
    t_vm, t_loop = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(vm(stacked, sp, sk))
        t_vm.append(time.perf_counter() - start)
        start = time.perf_counter()
        for c, p, k in zip(cfgs, params, keys, strict=True):
            jax.block_until_ready(one(c, p, k))
        t_loop.append(time.perf_counter() - start)
    return {"case": "evaluate_vmap", "runs": g, "n": 2000, "vmap_s": t_vm, "loop_s": t_loop}


def child_main(argv: list[str]) -> int:
    """Entry point of one case in its own process; prints one JSON line."""
    p = argparse.ArgumentParser()
    p.add_argument("--case", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile-only", action="store_true")
    a = p.parse_args(argv)
    print(json.dumps(_child(a.case, a.n, a.repeats, a.compile_only), default=float))
    return 0


def _summ(res: dict[str, Any]) -> str:
    if "error" in res:
        return "error: " + res.get("stderr", res["error"])[-300:]
    parts = []
    if res.get("run_s"):
        parts.append(f"{fmt_seconds(median(res['run_s']))}")
    if res.get("compile_s") is not None:
        parts.append(f"compile {fmt_seconds(res['compile_s'])}")
    if res.get("rss_peak"):
        parts.append(f"peak RSS +{fmt_bytes(res['rss_peak'] - res['rss_base'])}")
    if res.get("xla_temp_bytes") is not None:
        parts.append(f"XLA temp {fmt_bytes(res['xla_temp_bytes'])}")
    return ", ".join(parts)


def run(quick: bool, *, log=print) -> dict[str, Any]:
    """Measure W3; each case in a fresh process. Returns a JSON-safe dict."""
    n = 10_000 if quick else 100_000
    dense_ns = (1000, 2000) if quick else (2500, 5000, 10_000)
    res: dict[str, Any] = {"n": n, "cases": {}}

    def case(name: str, size: int, *extra: str, repeats: int = 3) -> dict[str, Any]:
        r = run_json_subprocess(["-m", "benchmarks.w3_eval", "--case", name, "--n", str(size),
                                 "--repeats", str(repeats), *extra])
        if "rss_peak" in r:
            r["rss_increment"] = r["rss_peak"] - r["rss_base"]
        log(f"  {name} n={size}: {_summ(r)}")
        return r

    for name in ("zero_shot", "recovery"):
        res["cases"][name] = case(name, n)
    res["cases"]["theory"] = case("theory", n, repeats=1 if not quick else 2)
    res["cases"]["margins_blocked"] = case("margins_blocked", n, repeats=1 if not quick else 2)
    res["cases"]["margins_dense"] = {str(m): case("margins_dense", m) for m in dense_ns}
    res["cases"]["margins_dense"][f"{n} (compile only)"] = case("margins_dense", n,
                                                                "--compile-only")
    res["cases"]["evaluate"] = case("evaluate", n, repeats=1)
    ev = res["cases"]["evaluate"]
    if "run_s" in ev:
        res["evaluate_targets"] = {
            "n": n, "seconds": median(ev["run_s"]),
            "rss_increment_bytes": ev.get("rss_increment"),
            "< 60 s": median(ev["run_s"]) < 60,
            "< 1 GiB added": (ev.get("rss_increment") or 0) < 2**30,
            # every n x n pass costs O(n^2): the time at 10^6 pairs from the time at n
            "extrapolated_1e6_s": median(ev["run_s"]) * (1e6 / n) ** 2,
        }
    check = case("margins_blocked", dense_ns[0])
    dense0 = res["cases"]["margins_dense"][str(dense_ns[0])]
    if "values" in check and "values" in dense0:
        res["blocked_vs_dense_max_abs_diff"] = max(
            abs(check["values"][k] - dense0["values"][k]) for k in check["values"])
        log(f"  blocked vs dense margins at n={dense_ns[0]}: max |diff| "
            f"{res['blocked_vs_dense_max_abs_diff']:.2e}")
    res["cases"]["threshold"] = case("threshold", 0, repeats=2 if quick else 3)
    g = 4 if quick else 16
    ev = case("evaluate_vmap", g)
    if "vmap_s" in ev:
        ev["loop_over_vmap"] = median(ev["loop_s"]) / median(ev["vmap_s"])
        log(f"  evaluate_program on {g} runs (n=2000): vmap {fmt_seconds(median(ev['vmap_s']))}"
            f", loop {fmt_seconds(median(ev['loop_s']))} ({ev['loop_over_vmap']:.2f}x)")
    res["cases"]["evaluate_vmap"] = ev
    return res


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
