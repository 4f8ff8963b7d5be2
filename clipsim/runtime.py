"""Process-level settings that the command line applies, and the library never does on import.

``protect_cpu_scheduler()`` works around a hang of jax 0.10 on small CPU
machines: XLA's concurrency-optimized CPU scheduler can deadlock ``vmap``-ped
programs that contain batched LAPACK calls (QR, eigh), the process idling
forever in ``BlockUntilReady``. Turning that scheduler off avoids it. The flag
only takes effect if set before JAX starts its CPU backend, so it lives in the
entry points clipsim owns (``clipsim`` commands, experiment scripts, the test
suite), not in ``import clipsim``: importing the library leaves ``XLA_FLAGS`` as
the user set it. In a notebook on a 2-core machine, call it first thing, before
any JAX computation. (The sweep engine also passes shared config leaves
unbatched, so a sweep whose runs share their data seed makes no batched LAPACK
call at all.)
"""

from __future__ import annotations

import os

__all__ = ["CPU_SCHEDULER_FLAG", "protect_cpu_scheduler"]

CPU_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


def protect_cpu_scheduler() -> bool:
    """Append ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` to ``XLA_FLAGS``.

    A user's own flags are kept, in order; if they already mention the scheduler
    flag (either value), nothing changes. No effect once JAX's backend has started.

    Returns:
        True when the flag was added.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if CPU_SCHEDULER_FLAG in flags:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {CPU_SCHEDULER_FLAG}=false".strip()
    return True
