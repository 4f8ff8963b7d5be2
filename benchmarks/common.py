"""Shared helpers: interleaved timing, medians and paired ratios, memory, subprocesses."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

Timer = Callable[[], float]
"""A variant: runs once and returns the seconds it measured (setup excluded)."""


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` takes (the caller blocks on its results inside ``fn``)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(variants: Mapping[str, Timer], repeats: int, *, log=None) -> dict[str, list[float]]:
    """Run the variants round by round, rotating their order, and collect their times.

    Round r runs every variant once, starting with variant ``r mod n``, so a slow
    period of the machine is shared by all variants and none is always first.

    Args:
        variants: name -> timer (returns measured seconds).
        repeats: number of rounds.
        log: optional ``print``-like function for progress lines.

    Returns:
        name -> list of ``repeats`` times (seconds), in round order.
    """
    names = list(variants)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            seconds = variants[name]()
            out[name].append(seconds)
            if log is not None:
                log(f"    round {r + 1}/{repeats} {name}: {seconds:.3f} s")
    return out


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of a sequence (for reporting)."""
    return {"median": median(values), "min": float(min(values)), "max": float(max(values)),
            "n": len(values)}


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> dict[str, float]:
    """Median, min and max over rounds of ``num[r] / den[r]``."""
    ratios = [a / b for a, b in zip(num, den, strict=True)]
    return spread(ratios)


def rss_bytes() -> int:
    """Current resident set size of this process, in bytes (Linux ``/proc``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_rss_bytes() -> int:
    """Peak resident set size of this process's own address space so far, in bytes.

    Reads ``VmHWM`` from ``/proc/self/status``: it starts afresh at ``exec``. The
    ``ru_maxrss`` of ``getrusage`` does not: Linux carries the parent's peak across
    fork and exec, so a child started by a large process (a pytest worker that has
    run other tests) would report the parent's peak as its own. ``ru_maxrss`` is
    the fallback where ``/proc`` is missing.
    """
    try:
        peak = hwm_bytes()
    except OSError:
        peak = 0
    return peak or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where unavailable)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def run_json_subprocess(args: Sequence[str], *, env: Mapping[str, str] | None = None,
                        timeout: float = 3600) -> dict[str, Any]:
    """Run ``python args...`` from the repository root; parse the last stdout line as JSON.

    Args:
        args: arguments after the interpreter (e.g. ``["-m", "benchmarks.w3_eval", ...]``).
        env: extra environment variables.
        timeout: seconds before the child is killed.

    Returns:
        The decoded JSON object; on failure ``{"error": ...}`` with the child's stderr tail.
    """
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}", "stderr": proc.stderr[-2000:]}
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": "no JSON on the last line", "stdout": proc.stdout[-2000:]}


def fmt_seconds(s: float) -> str:
    """Seconds with a unit suited to their size."""
    if s != s:  # NaN
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_bytes(n: float) -> str:
    """Bytes as MiB or GiB."""
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.0f} MiB"


def hwm_bytes() -> int:
    """Peak resident set size of this process since the last reset (bytes)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_hwm() -> bool:
    """Reset the peak-RSS counter (Linux ``clear_refs``); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False
