"""The sweep's memory estimate against the measured peak, for training and for evaluation.

``clipsim.sweep.engine.estimate_run_bytes`` sizes chunks against ``--memory-budget``
and refuses a plan whose single run exceeds it. This measures, per shape, the peak
resident memory that one run's training program and one run's evaluation program
add, and prints the ratio ``estimate / measured`` (the target: within [0.5, 2]).

Every case runs in a fresh process (``python -m benchmarks.memory_estimate --case
PHASE:NAME``): it builds the inputs, compiles the program (``jit(...).lower().compile()``),
records the RSS, resets the kernel's high-water mark (``/proc/self/clear_refs``),
runs the program once and reports the new high-water mark above that RSS. So the
figure is what running the program adds (its buffers and temporaries), not the
compiler's memory or the interpreter's.

    python -m benchmarks.memory_estimate            # the table (about a minute)
    python -m benchmarks.memory_estimate --json     # the same as one JSON line
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from benchmarks.common import fmt_bytes, hwm_bytes, reset_hwm, rss_bytes, run_json_subprocess

_BASE = {
    "data": {"family": "onehot", "num_concepts": 16, "image_dim": 64, "text_dim": 64,
             "image_unique_dim": 8, "text_unique_dim": 8},
    "model": {"kind": "linear", "embed_dim": 16},
    "train": {"steps": 20, "log_every": 10},
}

SHAPES: dict[str, dict[str, Any]] = {
    # the shapes below the "fitted" line were not used to fit the coefficients
    # training: the B x B score matrices (dense below B = 1024, blocked for clip from it)
    "train:B=512": {"train": {"batch_size": 512}},
    "train:B=1024": {"train": {"batch_size": 1024}},
    "train:B=2048": {"train": {"batch_size": 2048}},
    "train:B=4096": {"train": {"batch_size": 4096}},
    "train:B=4096,siglip": {"train": {"batch_size": 4096}, "objective": {"name": "siglip"}},
    "train:B=1024,mlp2": {"train": {"batch_size": 1024},
                          "model": {"kind": "mlp2", "hidden_dim": 256}},
    "train:B=256,n_train=256": {"train": {"batch_size": 256, "num_train_batches": 256}},
    # evaluation: n x n below n = 1024, row-blocked from it
    "eval:n=1000": {"eval": {"num_samples": 1000}},
    "eval:n=4000": {"eval": {"num_samples": 4000}},
    "eval:n=20000": {"eval": {"num_samples": 20000}},
    "eval:n=100000": {"eval": {"num_samples": 100000}},
    "eval:n=20000,dx=512": {"eval": {"num_samples": 20000},
                            "data": {"image_dim": 512, "text_dim": 512}},
    # -- fitted on the shapes above; checked on these --
    "train:B=8192": {"train": {"batch_size": 8192}},
    "train:B=768,clip_reg": {"train": {"batch_size": 768}, "objective": {"name": "clip_reg"}},
    "train:B=2048,float64": {"train": {"batch_size": 2048, "dtype": "float64"}},
    "eval:n=50000,K=64": {"eval": {"num_samples": 50000},
                          "data": {"num_concepts": 64, "image_dim": 128, "text_dim": 128}},
    "eval:n=512,mlp2": {"eval": {"num_samples": 512},
                        "model": {"kind": "mlp2", "hidden_dim": 256}},
}
"""Case name (``phase:shape``) -> overrides of the base config (nested dict)."""

QUICK = ("train:B=1024", "train:B=4096", "eval:n=4000", "eval:n=20000")
"""The shapes of ``--quick`` (and of the suite's test)."""


def case_config(name: str):
    """The ``RunConfig`` of case ``name`` (a key of ``SHAPES``)."""
    from clipsim.config import RunConfig, flatten_dict

    flat = flatten_dict(_BASE)
    flat.update(flatten_dict(SHAPES[name]))
    if name.startswith("train:"):
        flat.setdefault("eval.num_samples", 64)
    else:
        flat.setdefault("train.batch_size", 64)
    return RunConfig.from_dict(flat)


def measure(name: str) -> dict[str, Any]:
    """Run case ``name`` in this process; the peak RSS its program adds, and the estimate.

    Returns:
        ``{"case", "measured" (bytes above the RSS before the run), "estimate" (bytes,
        the matching part of ``estimate_run_parts``), "total_estimate"
        (``estimate_run_bytes``), "xla_temp" (XLA's temporary-buffer figure)}``.
    """
    import jax

    from clipsim.config import precision
    from clipsim.evaluation import evaluate_program
    from clipsim.sweep.engine import estimate_run_bytes, estimate_run_parts
    from clipsim.train.loop import STREAM_EVAL, init_params, train_program

    cfg = case_config(name)
    phase = name.split(":", 1)[0]
    key = jax.random.key(0)
    with precision(cfg.train.dtype):
        if phase == "train":
            fn, args = jax.jit(train_program), (cfg, key)
        else:
            params = init_params(cfg, key=key)
            fn, args = jax.jit(evaluate_program), (cfg, params, jax.random.fold_in(key,
                                                                                 STREAM_EVAL))
        compiled = fn.lower(*args).compile()
        mem = compiled.memory_analysis()
        jax.block_until_ready(args)
        base = rss_bytes()
        reset_hwm()
        jax.block_until_ready(compiled(*args))
        peak = hwm_bytes()
    parts = estimate_run_parts(cfg)
    return {"case": name, "measured": max(peak - base, 1), "estimate": parts[phase],
            "total_estimate": estimate_run_bytes(cfg),
            "xla_temp": getattr(mem, "temp_size_in_bytes", None)}


def run_cases(names: list[str], *, parallel: int = 1) -> list[dict[str, Any]]:
    """Each case in a fresh subprocess; adds ``ratio`` = estimate / measured.

    Args:
        names: case names (keys of ``SHAPES``).
        parallel: subprocesses at a time (each measures its own peak, so running
            them side by side changes no figure, only the wall time).

    Returns:
        One row per case, in order (``{"case", "error", ...}`` for a failed case).
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> dict[str, Any]:
        row = run_json_subprocess(["-m", "benchmarks.memory_estimate", "--case", name],
                                  timeout=600)
        row.setdefault("case", name)
        if "measured" in row:
            row["ratio"] = row["estimate"] / row["measured"]
        return row

    with ThreadPoolExecutor(max(1, parallel)) as pool:
        return list(pool.map(one, names))


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the rows of ``run_cases``."""
    lines = ["| case | measured peak added | estimate | estimate / measured | XLA temp |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        if "measured" not in r:
            lines.append(f"| {r['case']} | error: {r.get('error')} | | | |")
            continue
        xla = fmt_bytes(r["xla_temp"]) if r.get("xla_temp") is not None else "n/a"
        lines.append(f"| {r['case']} | {fmt_bytes(r['measured'])} | {fmt_bytes(r['estimate'])} "
                     f"| {r['ratio']:.2f} | {xla} |")
    return "\n".join(lines)


def run(quick: bool, *, log=print) -> dict[str, Any]:
    """The runner's ``memory`` workload: every case (quick: ``QUICK``), the ratio range.

    Returns:
        ``{"rows": [...], "ratio_min", "ratio_max", "targets": {...}}``; the target is
        estimate / measured within [0.5, 2] for every case.
    """
    rows = run_cases(list(QUICK if quick else SHAPES))
    for r in rows:
        log(f"  {r['case']}: " + (f"ratio {r['ratio']:.2f}" if "ratio" in r
                                  else f"error {r.get('error')}"))
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    ok = bool(ratios) and len(ratios) == len(rows) and all(0.5 <= x <= 2 for x in ratios)
    return {"rows": rows, "ratio_min": min(ratios, default=None),
            "ratio_max": max(ratios, default=None),
            "targets": {"memory estimate within 2x of the measured peak (every shape)": ok}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory_estimate",
                                description=__doc__.split("\n")[0])
    p.add_argument("--case", default=None, help="run one case in this process (JSON line)")
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON line")
    p.add_argument("--parallel", type=int, default=1, help="cases at a time (default 1)")
    args = p.parse_args(argv)
    if args.case is not None:
        print(json.dumps(measure(args.case)))
        return 0
    rows = run_cases(list(QUICK if args.quick else SHAPES), parallel=args.parallel)
    print(json.dumps(rows) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
