"""Run folders on disk, JSON records and package versions.

A run folder (written by ``clipsim train --out DIR`` or ``save_run``) holds::

    DIR/config.toml     the full run config (``RunConfig.load`` reads it back)
    DIR/params.npz      the trained parameters, one array per pytree path
    DIR/metrics.json    evaluation metrics, training history, package versions, extras
    DIR/training.png    training curves

``save_run`` writes every file into a hidden temporary sibling folder first and
moves the finished files into place afterwards (``os.replace``), ``metrics.json``
last, so a folder with a ``metrics.json`` is complete and a failure (full disk,
interrupt) leaves nothing half-written. ``load_run`` rebuilds the ``TrainResult``.

JSON written here is standard JSON: NumPy and JAX scalars and arrays become
numbers and lists, and NaN or infinite floats become ``null``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from clipsim.config import RunConfig, precision

__all__ = ["RunFolderError", "dumps", "package_versions", "write_atomic", "check_out_dir",
           "save_run", "load_run", "CONFIG_FILE", "PARAMS_FILE", "METRICS_FILE", "FIGURE_FILE"]

CONFIG_FILE = "config.toml"
PARAMS_FILE = "params.npz"
METRICS_FILE = "metrics.json"
FIGURE_FILE = "training.png"

_VERSIONED = ("clipsim", "jax", "jaxlib", "numpy", "scipy", "optax", "pandas", "pyarrow")


class RunFolderError(ValueError):
    """A run folder cannot be written or read (one-line message naming the path)."""


# ------------------------------------------------------------------ JSON
def _plain(value: Any) -> Any:
    """``value`` as plain JSON data: non-finite floats -> None, arrays -> lists."""
    if isinstance(value, float):  # also np.float64
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "__array__"):
        array = np.asarray(value)
        if array.dtype.kind not in "biufU":
            raise TypeError(f"not JSON serializable: array of dtype {array.dtype}")
        return _plain(array.tolist())
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(record: Any, *, indent: int | None = 2) -> str:
    """Standard JSON text of ``record``.

    NumPy/JAX scalars and arrays become numbers and (nested) lists, tuples become
    lists, paths become strings, and NaN or +-inf become ``null`` (the text never
    holds the non-standard ``NaN``/``Infinity`` tokens).

    Args:
        record: nested dicts, lists, numbers, strings, arrays.
        indent: as in ``json.dumps``.

    Returns:
        The JSON text.

    Raises:
        TypeError: a value that has no JSON form (the type is named).

    Example:
        >>> dumps({"a": float("nan"), "b": np.arange(2)}, indent=None)
        '{"a": null, "b": [0, 1]}'
    """
    return json.dumps(_plain(record), indent=indent, allow_nan=False)


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that determine the numbers.

    Returns:
        Name -> version string (``"not installed"`` when missing), for Python,
        clipsim, jax, jaxlib, numpy, scipy, optax, pandas and pyarrow.
    """
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# ---------------------------------------------------------------- writing
def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary sibling and a rename.

    The file is either the complete new content or untouched; the temporary
    file is removed on failure.

    Args:
        path: the destination file (its folder must exist).
        data: text (written as UTF-8) or bytes.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = data.encode() if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_out_dir(path: str | Path) -> Path:
    """Check, before any compute, that ``path`` can become an output folder.

    Args:
        path: an existing folder, or a path whose nearest existing parent is a
            writable folder.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        RunFolderError: ``path`` is an existing file, or not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"--out {str(path)!r} is an existing file, not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise RunFolderError(f"--out {str(path)!r}: {str(probe)!r} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunFolderError(f"--out {str(path)!r}: folder {str(probe)!r} is not writable")
    return path


def _save_params(params: Any, path: Path) -> None:
    import jax

    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    arrays = {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def save_run(out: str | Path, result: Any, *, report: Any = None,
             extra: Mapping[str, Any] | None = None, figure: bool = True) -> Path:
    """Write a run folder: ``config.toml``, ``params.npz``, ``metrics.json``, ``training.png``.

    ``metrics.json`` holds ``report.to_dict()`` (metrics, config, config hash,
    extras) or, without a report, the config and its hash; then ``extra``'s
    entries, the training ``history`` and ``versions`` (``package_versions()``).
    Files are written into a temporary sibling folder and moved into ``out``
    when all are complete, ``metrics.json`` last (an old ``metrics.json`` in
    ``out`` is removed first), so a failure never leaves a half-written file
    and a folder with ``metrics.json`` is consistent. Other files in ``out``
    are left alone.

    Args:
        out: the run folder (created, with its parents, if missing).
        result: a ``clipsim.TrainResult``.
        report: its ``clipsim.Report`` (``clipsim.evaluate(result)``), if any.
        extra: more JSON-serializable entries for ``metrics.json`` (e.g. ``bounds``).
        figure: whether to draw ``training.png``.

    Returns:
        ``out`` as a ``Path``.

    Raises:
        RunFolderError: ``out`` is a file or not writable.
    """
    out = check_out_dir(out)
    cfg: RunConfig = result.config
    record: dict[str, Any] = (dict(report.to_dict()) if report is not None
                              else {"config": cfg.to_dict(), "config_hash": cfg.hash()})
    record.update(extra or {})
    record["history"] = {k: np.asarray(v) for k, v in result.history.items()}
    record["versions"] = package_versions()
    text = dumps(record)  # fail on a bad value before touching the disk

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.{os.getpid()}.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        (stage / CONFIG_FILE).write_text(cfg.to_toml())
        _save_params(result.params, stage / PARAMS_FILE)
        if figure:
            from clipsim.plots import plot_training_curves

            plot_training_curves(result.history, stage / FIGURE_FILE,
                                 title=f"{cfg.objective.name}, tau={cfg.objective.temperature}")
        with open(stage / METRICS_FILE, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if not out.exists():
            os.replace(stage, out)
            return out
        (out / METRICS_FILE).unlink(missing_ok=True)
        names = sorted(p.name for p in stage.iterdir())
        for name in sorted(names, key=lambda n: n == METRICS_FILE):
            os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


# ---------------------------------------------------------------- reading
def _history_array(values: Any) -> np.ndarray:
    array = np.asarray(values)
    return np.array(values, dtype=float) if array.dtype == object else array  # null -> NaN


def load_run(path: str | Path) -> Any:
    """Rebuild the ``TrainResult`` of a run folder written by ``save_run`` / ``clipsim train``.

    Args:
        path: the run folder.

    Returns:
        A ``clipsim.TrainResult``: the parameters (in the model's dtypes), the
        training history from ``metrics.json`` (``{}`` when it is missing; null
        entries read back as NaN), the config, and the key ``jax.random.key(seed)``.

    Raises:
        RunFolderError: not a run folder, a missing or unreadable file, or
            parameters that do not match the model of ``config.toml`` (the file and
            the parameter are named).
        ConfigError: ``config.toml`` is not a valid config.

    Example:
        >>> result = load_run("runs/demo/train")   # doctest: +SKIP
        >>> clipsim.evaluate(result)               # doctest: +SKIP
    """
    import jax

    from clipsim.train import TrainResult, init_params

    path = Path(path)
    if not path.is_dir():
        raise RunFolderError(f"{str(path)!r} is not a run folder (no such folder)")
    config_file, params_file = path / CONFIG_FILE, path / PARAMS_FILE
    if not config_file.is_file():
        raise RunFolderError(f"{str(path)!r} is not a run folder (no {CONFIG_FILE})")
    cfg = RunConfig.load(config_file)
    if not params_file.is_file():
        raise RunFolderError(f"{params_file} is missing")
    try:
        with np.load(params_file) as npz:
            stored = {name: npz[name] for name in npz.files}
    except Exception as err:  # zip or pickle errors of a damaged file
        raise RunFolderError(f"{params_file} is unreadable: {err}") from None

    with precision(cfg.train.dtype):  # float64 runs load as float64, whatever x64 is
        template = jax.eval_shape(lambda: init_params(cfg, key=jax.random.key(0)))
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [jax.tree_util.keystr(k) for k, _ in flat]
    missing = [n for n in names if n not in stored]
    unknown = sorted(set(stored) - set(names))
    if missing or unknown:
        what = (f"lacks parameter(s) {', '.join(missing)}" if missing
                else f"has parameter(s) {', '.join(unknown)}")
        raise RunFolderError(f"{params_file} does not match the model of {config_file}: {what} "
                             f"(expected {', '.join(names)})")
    leaves = []
    for name, (_, spec) in zip(names, flat, strict=True):
        array = stored[name]
        if array.shape != spec.shape:
            raise RunFolderError(f"{params_file} does not match the model of {config_file}: "
                                 f"parameter {name} has shape {array.shape}, expected "
                                 f"{tuple(spec.shape)}")
        with precision(cfg.train.dtype):
            leaves.append(jax.numpy.asarray(array, spec.dtype))
    params = jax.tree_util.tree_unflatten(treedef, leaves)

    history: dict[str, np.ndarray] = {}
    metrics_file = path / METRICS_FILE
    if metrics_file.is_file():
        try:
            record = json.loads(metrics_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunFolderError(f"{metrics_file} is not valid JSON: {err}") from None
        history = {k: _history_array(v) for k, v in record.get("history", {}).items()}
    return TrainResult(params=params, history=history, config=cfg, key=jax.random.key(cfg.seed))
