"""Run one ``clipsim`` command in this process and report compilations, cache use and memory.

Usage (from the repository root)::

    python -m benchmarks.cli_probe sweep SPEC.toml --out DIR --quiet

The last stdout line is a JSON object: wall seconds, the XLA compilations by
function name (``backend_compiles``; persistent-cache hits included), the
persistent cache hits and misses, the sweep programs traced, the resident set
size after imports and backend start-up (``rss_base``) and its peak
(``rss_peak``), and the peak while the sweep program runs: the kernel's
high-water mark is reset when the sweep program has been compiled (or loaded
from the cache), so ``rss_exec_peak - rss_after_compile`` is the memory the
chunks themselves add, apart from the compiler's.
"""

from __future__ import annotations

import collections
import json
import sys
import time

from benchmarks.common import hwm_bytes, peak_rss_bytes, reset_hwm, rss_bytes


def main(argv: list[str]) -> int:
    """Run ``clipsim`` with ``argv`` and print the JSON report; returns the command's exit code."""
    import jax
    import jax.numpy as jnp
    from jax import monitoring

    events: collections.Counter[str] = collections.Counter()
    compiles: collections.Counter[str] = collections.Counter()
    compile_secs: collections.Counter[str] = collections.Counter()
    marks: dict[str, int | bool] = {}

    def on_event(name: str, **kwargs) -> None:
        events[name] += 1

    def on_duration(name: str, secs: float, **kwargs) -> None:
        if name == "/jax/core/compile/backend_compile_duration":
            fun = str(kwargs.get("fun_name", "?"))
            compiles[fun] += 1
            compile_secs[fun] += secs
            if "sweep_chunk" in fun and "rss_after_compile" not in marks:
                marks["rss_after_compile"] = rss_bytes()
                marks["hwm_reset"] = reset_hwm()
        elif name == "/jax/compilation_cache/compile_time_saved_sec":
            events["compile_time_saved_ms"] += int(secs * 1000)

    monitoring.register_event_listener(on_event)
    monitoring.register_event_duration_secs_listener(on_duration)

    import clipsim.cli
    import clipsim.cli.sweep  # noqa: F401  (imports pandas etc. before the baseline)
    from clipsim.sweep import engine

    jnp.zeros(8).block_until_ready()  # start the backend before the baseline
    base = rss_bytes()
    start = time.perf_counter()
    code = clipsim.cli.main(argv)
    wall = time.perf_counter() - start
    traces = sum(p.traces for p in engine._PROGRAMS.values())
    print(json.dumps({
        "exit_code": code,
        "wall_s": wall,
        "backend_compiles": dict(compiles),
        "backend_compile_s": {k: round(v, 3) for k, v in compile_secs.items()},
        "sweep_programs_traced": traces,
        "cache_hits": events["/jax/compilation_cache/cache_hits"],
        "cache_misses": events["/jax/compilation_cache/cache_misses"],
        "compile_time_saved_s": events["compile_time_saved_ms"] / 1000,
        "rss_base": base,
        "rss_peak": peak_rss_bytes(),
        "rss_after_compile": marks.get("rss_after_compile"),
        "rss_exec_peak": hwm_bytes() if marks.get("hwm_reset") else None,
        "jax": jax.__version__,
    }))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
