"""Peak memory of ``clipsim analyze`` on n paired embeddings of dimension d (default 100,000 x 512).

    python -m benchmarks.analyze_memory                      # n = 100,000, d = 512 (long on CPU)
    python -m benchmarks.analyze_memory --n 20000            # the same code path, sooner
    python -m benchmarks.analyze_memory --n 2000 --d 32 --limit-gib 2

The parent writes a synthetic ``.npz`` (clustered image and text rows with ``--labels``
labels, ``--classes`` class prompts and a temperature) to a temporary folder, then runs
``clipsim analyze FILE --out DIR --quiet`` in a fresh subprocess, which reports its peak
resident set size (``VmHWM``, see ``common.peak_rss_bytes``), its resident size after
importing clipsim and JAX, and the wall time. The peak covers everything the command
holds: the loaded arrays, the JAX runtime and compiled programs, and the row-blocked
slabs. Above 8192 rows every ``n x n`` metric runs in blocks of 64 rows, so a smaller
``--n`` measures the same code path; the part of the peak that grows with n is the
O(n d) arrays and O(64 n) slabs.

Prints one JSON line (the last line of stdout): ``n``, ``d``, ``peak_rss_bytes``,
``baseline_rss_bytes``, ``input_bytes`` (image and text in float32), ``seconds``,
``limit_bytes`` and ``within_limit``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import fmt_bytes, peak_rss_bytes, rss_bytes, run_json_subprocess


def write_embeddings(path: Path, n: int, d: int, num_labels: int, num_classes: int,
                     seed: int = 0) -> None:
    """A synthetic embeddings file: rows near their label's centre, class prompts at centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_labels, d), dtype=np.float32)
    labels = rng.integers(0, num_labels, n)
    image = centres[labels] + rng.standard_normal((n, d), dtype=np.float32)
    text = centres[labels] + rng.standard_normal((n, d), dtype=np.float32)
    class_of_label = np.arange(num_labels) % num_classes
    classes = np.stack([centres[class_of_label == c].mean(0) for c in range(num_classes)])
    np.savez(path, image=image, text=text, labels=class_of_label[labels],
             class_text=classes.astype(np.float32), temperature=np.float32(0.01))


def child(file: str, out: str, batch_sizes: list[str]) -> dict:
    """Run the command in this process and measure it."""
    import clipsim.analysis  # noqa: F401  (the imports count towards the baseline)
    from clipsim.cli import main

    baseline = rss_bytes()
    start = time.perf_counter()
    code = main(["analyze", file, "--out", out, "--quiet", "--batch-sizes", *batch_sizes])
    return {"exit_code": code, "seconds": time.perf_counter() - start,
            "peak_rss_bytes": peak_rss_bytes(), "baseline_rss_bytes": baseline}


def main(argv: list[str] | None = None) -> dict:
    """Measure (parent) or run (``--child``); prints and returns the JSON record."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.analyze_memory",
                                description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="rows (default 100000)")
    p.add_argument("--d", type=int, default=512, help="embedding dimension (default 512)")
    p.add_argument("--labels", type=int, default=1000, help="distinct labels (default 1000)")
    p.add_argument("--classes", type=int, default=100, help="class prompts (default 100)")
    p.add_argument("--batch-sizes", nargs="+", default=["256", "1024"],
                   help="batch sizes of the analysis (default 256 1024)")
    p.add_argument("--limit-gib", type=float, default=2.0, help="the memory bound (GiB)")
    p.add_argument("--child", nargs=2, metavar=("FILE", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        record = child(*args.child, args.batch_sizes)
        print(json.dumps(record))
        return record
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "embeddings.npz"
        write_embeddings(file, args.n, args.d, args.labels, args.classes)
        record = run_json_subprocess(["-m", "benchmarks.analyze_memory", "--child", str(file),
                                      str(Path(tmp) / "out"), "--batch-sizes",
                                      *args.batch_sizes], timeout=6 * 3600)
    limit = int(args.limit_gib * 2**30)
    record.update({"n": args.n, "d": args.d, "input_bytes": 2 * args.n * args.d * 4,
                   "limit_bytes": limit})
    if "peak_rss_bytes" in record:
        record["within_limit"] = record["peak_rss_bytes"] <= limit
        print(f"clipsim analyze, n = {args.n}, d = {args.d}: peak RSS "
              f"{fmt_bytes(record['peak_rss_bytes'])} (after imports "
              f"{fmt_bytes(record['baseline_rss_bytes'])}; image + text "
              f"{fmt_bytes(record['input_bytes'])}), {record['seconds']:.1f} s; limit "
              f"{fmt_bytes(limit)}: {'within' if record['within_limit'] else 'OVER'}",
              file=sys.stderr)
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
