"""Speed and memory measurements of clipsim (not tests).

Run ``python -m benchmarks`` (or ``make bench``) from the repository root; see
``python -m benchmarks --help`` and ``docs/performance.md``.

Every comparison is measured side by side in one process, the variants
interleaved round by round, and reported as medians over the rounds with the
ratios computed per round (paired), so that load from other processes on a
shared machine hits every variant alike. Compile time is measured apart from
run time.
"""
