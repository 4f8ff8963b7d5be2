"""``python -m benchmarks``: run the performance workloads, write JSON and Markdown.

    python -m benchmarks --quick              # small sizes, a few minutes (development)
    python -m benchmarks                      # the full workloads (W1, W2, W3, scaling)
    python -m benchmarks --only w1,w2 --repeats 5

Results go to ``benchmarks/results/`` (full) or ``runs/bench-quick/`` (quick):
``results.json``, ``results.md`` and the scaling plots. The JSON is rewritten
after every workload, so a long run that is stopped keeps what it measured.

XLA's concurrency-optimized CPU scheduler is switched off
(``--xla_cpu_enable_concurrency_optimized_scheduler=false`` added to ``XLA_FLAGS``)
unless ``--default-scheduler`` is given: with it on, the sweep's vmapped
train-and-evaluate program can wait forever for its result on jax 0.10 on CPU
(see docs/performance.md). A watchdog stops the run (with a traceback) when a
workload exceeds ``--timeout`` minutes; results of finished workloads are kept.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import time
from pathlib import Path

SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
WORKLOADS = ("w1", "w2", "w3", "scaling", "memory")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes (a few minutes in all, mostly compilation)")
    p.add_argument("--only", default=",".join(WORKLOADS),
                   help=f"comma-separated workloads (default: {','.join(WORKLOADS)})")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved rounds per comparison (default 3, quick 2)")
    p.add_argument("--out", default=None,
                   help="output folder (default benchmarks/results, quick runs/bench-quick)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    p.add_argument("--naive-runs", type=int, default=None,
                   help="W1 runs measured by the naive loops (default 4; quick 2)")
    p.add_argument("--default-scheduler", action="store_true",
                   help=f"do not add {SCHEDULER_FLAG} to XLA_FLAGS")
    p.add_argument("--timeout", type=float, default=90.0,
                   help="minutes one workload may take before the run is stopped (default 90)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected workloads; returns the exit code."""
    args = _parse(argv)
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {unknown}; choose from {WORKLOADS}", file=sys.stderr)
        return 2
    if not args.default_scheduler and "concurrency_optimized_scheduler" not in os.environ.get(
            "XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + SCHEDULER_FLAG).strip()

    from benchmarks import machine, report  # imports jax: after XLA_FLAGS is final
    from benchmarks.common import load_average

    repeats = args.repeats or (2 if args.quick else 3)
    root = Path(__file__).resolve().parents[1]
    out = Path(args.out) if args.out else (
        root / "runs" / "bench-quick" if args.quick else root / "benchmarks" / "results")
    out.mkdir(parents=True, exist_ok=True)
    info = machine.machine_info()
    print(machine.format_machine(info), flush=True)
    results: dict = {"mode": "quick" if args.quick else "full", "machine": info,
                     "repeats": repeats, "workloads": {}}

    def log(msg: str) -> None:
        print(msg, flush=True)

    for name in only:
        log(f"\n== {name} ==")
        start = time.perf_counter()
        faulthandler.dump_traceback_later(args.timeout * 60, exit=True)
        if name == "w1":
            from benchmarks import w1_sweep

            res = w1_sweep.run(args.quick, repeats, log=log, torch_ok=not args.no_torch,
                               naive_runs=args.naive_runs)
        elif name == "w2":
            from benchmarks import w2_large_batch

            res = w2_large_batch.run(args.quick, repeats, log=log)
        elif name == "w3":
            from benchmarks import w3_eval

            res = w3_eval.run(args.quick, log=log)
        elif name == "memory":
            from benchmarks import memory_estimate

            res = memory_estimate.run(args.quick, log=log)
        else:
            from benchmarks import scaling

            res = scaling.run(args.quick, repeats, out=out, log=log)
        faulthandler.cancel_dump_traceback_later()
        res["wall_s"] = time.perf_counter() - start
        results["workloads"][name] = res
        results["machine"]["load_average_end"] = load_average()
        from clipsim.io import dumps  # standard JSON: NaN -> null

        (out / "results.json").write_text(dumps(results, indent=1))
        (out / "results.md").write_text(report.markdown(results))
    log(f"\nwrote {out / 'results.json'} and {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
