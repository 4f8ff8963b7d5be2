"""What machine a benchmark ran on, and its float32 matmul peak measured in the same run."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np

from benchmarks.common import interleave, load_average, median


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo``, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return getattr(mod, "__version__", "?")


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, library versions, XLA flags and JAX devices.

    Returns:
        A JSON-safe dict.
    """
    import jax
    import jaxlib

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "memory_bytes": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "optax": _version("optax"),
        "torch": _version("torch"),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_platform": jax.default_backend(),
        "load_average_start": load_average(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def format_machine(info: dict[str, Any]) -> str:
    """A few lines describing the machine (printed before the benchmarks run)."""
    mem = info.get("memory_bytes")
    mem_s = f"{mem / 2**30:.1f} GiB" if mem else "?"
    return "\n".join([
        f"machine : {info['cpu_model']}, {info['cpu_count']} logical cores "
        f"({info['usable_cores']} usable), {mem_s} RAM, {info['platform']}",
        f"software: python {info['python']}, jax {info['jax']} (jaxlib {info['jaxlib']}, "
        f"{info['jax_platform']}), numpy {info['numpy']}, optax {info['optax']}, "
        f"torch {info['torch'] or 'not installed'}",
        f"XLA_FLAGS: {info['xla_flags'] or '(none)'}; devices: {', '.join(info['jax_devices'])}",
        f"load average at start: {info['load_average_start']}",
    ])


def matmul_flops(n: int) -> float:
    """FLOPs of one n x n by n x n matmul (2 n^3)."""
    return 2.0 * n ** 3


def matmul_timers(n: int = 2048, inner: int = 4) -> dict[str, Any]:
    """Timers of a float32 n x n matmul in JAX (jitted) and NumPy, each ``inner`` times.

    Args:
        n: matrix size.
        inner: matmuls per timed call.

    Returns:
        ``{"jax_matmul": timer, "numpy_matmul": timer}``; each timer returns the seconds
        of one matmul (the mean over ``inner``).
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((n, n), dtype=np.float32)
    b_np = rng.standard_normal((n, n), dtype=np.float32)
    a, b = jnp.asarray(a_np), jnp.asarray(b_np)
    mm = jax.jit(jnp.matmul)
    mm(a, b).block_until_ready()
    np.matmul(a_np, b_np)

    def jax_timer() -> float:
        start = time.perf_counter()
        for _ in range(inner):
            out = mm(a, b)
        out.block_until_ready()
        return (time.perf_counter() - start) / inner

    def numpy_timer() -> float:
        start = time.perf_counter()
        for _ in range(inner):
            np.matmul(a_np, b_np)
        return (time.perf_counter() - start) / inner

    return {"jax_matmul": jax_timer, "numpy_matmul": numpy_timer}


def measure_matmul_peak(n: int = 2048, repeats: int = 5, inner: int = 4) -> dict[str, Any]:
    """The float32 matmul rate of JAX and NumPy (GFLOP/s), medians over interleaved rounds.

    Args:
        n: matrix size.
        repeats: interleaved rounds.
        inner: matmuls per round.

    Returns:
        ``{"n", "jax_gflops", "numpy_gflops", "peak_gflops", "times"}``; ``peak_gflops``
        is the larger of the two medians.
    """
    times = interleave(matmul_timers(n, inner), repeats)
    flops = matmul_flops(n)
    jax_g = flops / median(times["jax_matmul"]) / 1e9
    np_g = flops / median(times["numpy_matmul"]) / 1e9
    return {"n": n, "jax_gflops": jax_g, "numpy_gflops": np_g, "peak_gflops": max(jax_g, np_g),
            "times": times}
