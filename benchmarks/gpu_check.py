"""``python3 -m benchmarks.gpu_check``: one short run on an accelerator, rates side by side, a JSON.

    PYTHONPATH=. python3 -m benchmarks.gpu_check                 # GPU machine, < 5 minutes
    PYTHONPATH=. python3 -m benchmarks.gpu_check --tiny          # CPU, seconds (the test suite)
    PYTHONPATH=. python3 -m benchmarks.gpu_check --out gpu.json --budget-s 240

Runs from the source tree and installs nothing. It imports only the standard
library, jax (with whatever plugin is installed), optax, numpy, scipy, pandas,
pyarrow, tqdm and, for its PyTorch loop, torch; the JSON lists the third-party
top-level modules that were imported (``imported_modules``) and flags any
outside that set (``unexpected_modules``).

Sections, each timed after a warm-up (compilation excluded, reported apart):

- ``w1``: the W1 sweep (``benchmarks.w1_sweep.w1_spec``: 64 runs x 2000 steps at
  B = 256) through ``clipsim.sweep.run`` (the engine, local backend, results
  table and Parquet files), against the naive JAX loop of jitted steps and a
  PyTorch eager loop on the same device, all in model-steps per second;
- ``large_batch``: one ``train_program`` step of linear encoders (d = 64) at
  B = 16,384, where ``clip`` takes the blocked loss, against the dense loss at
  the same B, with the matmul rate against a measured matmul peak;
- ``evaluate``: ``evaluate_program`` at n = 10^6 test pairs (the row-blocked
  metrics).

A section that fails records its error and the others still run; sections that
would start after ``--budget-s`` seconds are skipped and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ALLOWED_MODULES = frozenset({
    "jax", "jaxlib", "optax", "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "tqdm",
    "torch", "clipsim", "benchmarks",
    # dependencies these packages import themselves
    "ml_dtypes", "opt_einsum", "absl", "chex", "etils", "typing_extensions", "toolz",
    "dateutil", "pytz", "tzdata", "six", "packaging", "filelock", "fsspec", "sympy", "mpmath",
    "networkx", "jinja2", "markupsafe", "triton", "nvidia", "jax_plugins", "jax_cuda12_plugin",
    "jax_cuda12_pjrt", "jax_cuda13_plugin", "jax_cuda13_pjrt", "zstandard", "psutil",
    "numexpr", "bottleneck", "setuptools", "pkg_resources", "_distutils_hack", "importlib_metadata",
    "zipp", "cloudpickle", "google", "wrapt", "PIL", "kiwisolver", "cycler", "fontTools",
    "pyparsing", "contourpy", "mpl_toolkits", "attr", "attrs", "yaml", "functorch",
    "torchgen", "_yaml", "gmpy2", "cpuinfo", "tomli", "colorama",
    "pygments", "cython_runtime",  # jax's debugger and Cython import them when present
})
"""Top-level modules the check may import (the GPU machine's packages and their deps)."""

FORBIDDEN_MODULES = ("dask", "distributed", "hypothesis", "tomli_w", "pytest")
"""Installed here for development, absent on the GPU machine: must never be imported."""


def _sizes(tiny: bool) -> dict[str, Any]:
    if tiny:
        return {"naive_runs": 1, "torch_runs": 1, "large_batch": 1024, "large_steps": 2,
                "dense_batch": 1024, "peak_n": 256, "eval_n": 5000}
    return {"naive_runs": 4, "torch_runs": 4, "large_batch": 16_384, "large_steps": 10,
            "dense_batch": 16_384, "peak_n": 8192, "eval_n": 1_000_000}


def _w1_spec(tiny: bool) -> dict[str, Any]:
    from benchmarks.w1_sweep import w1_spec

    spec = w1_spec(quick=False)
    if tiny:
        spec["base"].update({"train.steps": 20, "train.batch_size": 16, "train.log_every": 10})
        spec["grid"] = {"objective.temperature": [0.1, 0.5], "seeds": 1}
        spec["eval"] = {"num_samples": 100}
    return spec


def device_info() -> dict[str, Any]:
    """JAX backend and device, torch's CUDA device if any."""
    import jax

    dev = jax.devices()[0]
    out: dict[str, Any] = {"jax_backend": jax.default_backend(), "jax_device": str(dev),
                           "jax_device_kind": getattr(dev, "device_kind", "?"),
                           "jax_device_count": jax.device_count(), "jax": jax.__version__,
                           "python": sys.version.split()[0]}
    try:
        import torch

        out["torch"] = torch.__version__
        out["torch_cuda"] = bool(torch.cuda.is_available())
        if torch.cuda.is_available():
            out["torch_device"] = torch.cuda.get_device_name(0)
    except ImportError:
        out["torch"] = None
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def section_w1(tiny: bool, sizes: dict[str, Any], *, torch_ok: bool) -> dict[str, Any]:
    """The W1 sweep through the engine, the naive JAX loop and the PyTorch eager loop."""
    import numpy as np

    import clipsim.sweep
    from benchmarks.w1_sweep import NaiveJax
    from clipsim.sweep.spec import as_spec

    spec = _w1_spec(tiny)
    points = as_spec(spec).points()
    n_runs, steps = len(points), points[0].train.steps
    res: dict[str, Any] = {"runs": n_runs, "steps": steps,
                           "batch_size": points[0].train.batch_size,
                           "embed_dim": points[0].model.embed_dim}
    tmp = Path(tempfile.mkdtemp(prefix="clipsim-gpu-check-"))
    res["sweep_cold_s"] = _timed(lambda: clipsim.sweep.run(spec, out=tmp / "cold", quiet=True))
    warm = _timed(lambda: clipsim.sweep.run(spec, out=tmp / "warm", quiet=True))
    res["sweep_s"] = warm
    rates = {"sweep": n_runs * steps / warm}

    k = min(sizes["naive_runs"], n_runs)
    subset = sorted({int(round(x)) for x in np.linspace(0, n_runs - 1, k)})
    naive = NaiveJax(points[0])
    naive.train(points[subset[0]])  # compile and warm
    t = _timed(lambda: [naive.train(points[i]) for i in subset])
    res["naive_jax_s"] = t
    rates["naive_jax"] = len(subset) * steps / t
    res["naive_subset"] = subset

    if torch_ok:
        res["torch"] = _torch_rates(points, subset[: sizes["torch_runs"]], steps)
        if "model_steps_per_s" in res["torch"]:
            rates["torch_eager"] = res["torch"]["model_steps_per_s"]
    res["model_steps_per_s"] = rates
    res["ratios"] = {f"sweep/{k}": rates["sweep"] / v for k, v in rates.items() if k != "sweep"}
    return res


def _torch_rates(points, subset, steps) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed"}
    from benchmarks.torch_baseline import TorchLoop

    device = "cuda" if torch.cuda.is_available() else "cpu"
    loop = TorchLoop(points[0], device=device)
    loop.warmup(points[subset[0]])
    t = _timed(lambda: [loop.train(points[i]) for i in subset])
    return {"device": device, "runs": len(subset), "seconds": t,
            "model_steps_per_s": len(subset) * steps / t}


def _large_batch_config(b: int, steps: int):
    from clipsim.config import RunConfig

    return RunConfig.from_dict({
        "data": {"family": "onehot", "num_concepts": 16, "image_dim": 256, "text_dim": 256},
        "model": {"kind": "linear", "embed_dim": 64},
        "objective": {"name": "clip", "temperature": 0.1},
        "train": {"steps": steps, "batch_size": b, "log_every": steps, "learning_rate": 1e-3},
    })


def section_large_batch(sizes: dict[str, Any]) -> dict[str, Any]:
    """A large-B training step: blocked loss against the dense loss, and the matmul peak."""
    import jax
    import jax.numpy as jnp

    from benchmarks.w2_large_batch import step_matmul_flops
    from clipsim.objectives import _clip
    from clipsim.train.loop import train_program

    res: dict[str, Any] = {}
    key = jax.random.key(0)
    for name, b, threshold in (("blocked", sizes["large_batch"], 2),
                               ("dense", sizes["dense_batch"], 1 << 40)):
        cfg = _large_batch_config(b, sizes["large_steps"])
        saved = _clip.BLOCKED_MIN_BATCH
        _clip.BLOCKED_MIN_BATCH = threshold  # read when the step is traced
        try:
            start = time.perf_counter()
            # a fresh function object, so the step is traced again under this threshold
            compiled = jax.jit(lambda c, k: train_program(c, k)).lower(cfg, key).compile()
            compile_s = time.perf_counter() - start
        finally:
            _clip.BLOCKED_MIN_BATCH = saved
        jax.block_until_ready(compiled(cfg, key))
        t = min(_timed(lambda c=compiled, g=cfg: jax.block_until_ready(c(g, key)))
                for _ in range(2))
        step_s = t / cfg.train.steps
        flops = step_matmul_flops(cfg)["total"]
        mem = compiled.memory_analysis()
        res[name] = {"batch_size": b, "step_s": step_s, "steps_per_s": 1.0 / step_s,
                     "compile_s": compile_s, "matmul_gflops": flops / step_s / 1e9,
                     "xla_temp_bytes": getattr(mem, "temp_size_in_bytes", None)}
    n = sizes["peak_n"]
    x = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    jax.block_until_ready(mm(x))
    t = min(_timed(lambda: jax.block_until_ready(mm(x))) for _ in range(3))
    res["matmul_peak_gflops"] = 2.0 * n**3 / t / 1e9
    res["matmul_peak_n"] = n
    for name in ("blocked", "dense"):
        res[name]["fraction_of_peak"] = res[name]["matmul_gflops"] / res["matmul_peak_gflops"]
    if res["blocked"]["batch_size"] == res["dense"]["batch_size"]:
        res["dense_step_over_blocked_step"] = res["dense"]["step_s"] / res["blocked"]["step_s"]
    return res


def section_evaluate(sizes: dict[str, Any]) -> dict[str, Any]:
    """``evaluate_program`` (row-blocked metrics) at a large number of test pairs."""
    import jax

    from clipsim.config import RunConfig
    from clipsim.evaluation import evaluate_program
    from clipsim.train.loop import init_params

    n = sizes["eval_n"]
    cfg = RunConfig.from_dict({
        "data": {"family": "onehot", "num_concepts": 16, "image_dim": 64, "text_dim": 64},
        "model": {"kind": "linear", "embed_dim": 16},
        "train": {"batch_size": 256, "steps": 10, "log_every": 10},
        "eval": {"num_samples": n}})
    params = init_params(cfg, key=jax.random.key(0))
    key = jax.random.key(1)
    start = time.perf_counter()
    compiled = jax.jit(evaluate_program).lower(cfg, params, key).compile()
    compile_s = time.perf_counter() - start
    out: dict[str, Any] = {}
    t = _timed(lambda: out.update(jax.block_until_ready(compiled(cfg, params, key))))
    return {"n": n, "seconds": t, "compile_s": compile_s,
            "margin_median": float(out["margin_median"]),
            "recall_a2b@1": float(out.get("recall_a2b@1", float("nan")))}


def imported_modules() -> tuple[list[str], list[str]]:
    """Third-party top-level modules imported so far, and those outside ``ALLOWED_MODULES``."""
    std = set(getattr(sys, "stdlib_module_names", ()))
    names = sorted({m.split(".")[0] for m in list(sys.modules)} - std)
    names = [m for m in names if not m.startswith("_") or m in ALLOWED_MODULES]
    unexpected = [m for m in names if m not in ALLOWED_MODULES]
    return names, unexpected


def main(argv: list[str] | None = None) -> int:
    """Run the check; writes the JSON and prints a short summary. Returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check",
                                description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny sizes (CPU, seconds; the tests)")
    p.add_argument("--out", default=None,
                   help="JSON path (default benchmarks/results/gpu_check.json, "
                        "tiny: runs/gpu_check_tiny.json)")
    p.add_argument("--budget-s", type=float, default=270.0,
                   help="skip sections that would start after this many seconds (default 270)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch loop")
    args = p.parse_args(argv)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave memory for torch
    start = time.perf_counter()
    root = Path(__file__).resolve().parents[1]
    out_path = Path(args.out) if args.out else (
        root / "runs" / "gpu_check_tiny.json" if args.tiny
        else root / "benchmarks" / "results" / "gpu_check.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sizes = _sizes(args.tiny)
    result: dict[str, Any] = {"mode": "tiny" if args.tiny else "full", "sizes": sizes,
                              "device": device_info()}
    print(f"device: {result['device']}", flush=True)
    sections = {
        "w1": lambda: section_w1(args.tiny, sizes, torch_ok=not args.no_torch),
        "large_batch": lambda: section_large_batch(sizes),
        "evaluate": lambda: section_evaluate(sizes),
    }
    for name, fn in sections.items():
        elapsed = time.perf_counter() - start
        if elapsed > args.budget_s:
            result[name] = {"skipped": f"time budget: {elapsed:.0f} s > {args.budget_s:.0f} s"}
            continue
        t0 = time.perf_counter()
        try:
            result[name] = fn()
        except Exception as exc:  # a failed section is recorded, the others still run
            result[name] = {"error": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc()[-3000:]}
        result[name]["section_s"] = time.perf_counter() - t0
        print(f"{name}: {json.dumps(result[name], default=float)[:600]}", flush=True)
        out_path.write_text(json.dumps(result, indent=1, default=float))
    rates: dict[str, Any] = {}
    rates.update(result.get("w1", {}).get("model_steps_per_s", {}))
    for name in ("blocked", "dense"):
        if name in result.get("large_batch", {}):
            rates[f"large_batch_{name}_steps_per_s"] = result["large_batch"][name]["steps_per_s"]
    result["rates"] = rates
    result["imported_modules"], result["unexpected_modules"] = imported_modules()
    result["forbidden_imported"] = [m for m in FORBIDDEN_MODULES if m in sys.modules]
    result["wall_s"] = time.perf_counter() - start
    out_path.write_text(json.dumps(result, indent=1, default=float))
    print(f"rates: {json.dumps(rates, default=float)}")
    print(f"wrote {out_path} in {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
