"""The reproduction experiments, one module per result (installed as ``clipsim_experiments``).

Each module has ``main(quick=False, out=..., quiet=True)``; ``clipsim reproduce NAME`` runs it.
``configs/`` and ``sweeps/`` hold ready-made run configs and sweep files, shipped with the
package: ``clipsim train onehot_linear --out DIR`` finds ``configs/onehot_linear.toml``.
"""
