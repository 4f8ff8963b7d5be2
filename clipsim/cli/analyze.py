"""``clipsim analyze FILE --out DIR``: the theory measured on embeddings from any model.

FILE is a ``.npz`` with arrays ``image`` (n, d) and ``text`` (n, d), and optionally
``labels`` (n,) integers, ``class_text`` (C, d) class prompt embeddings and
``temperature`` (a scalar), or a ``.parquet`` table with one row per pair: list
columns ``image`` and ``text``, an integer column ``labels``, a list column
``class_text`` whose first C entries are the class prompts (the rest null) and a
column ``temperature`` (one value). Prints the table of ``clipsim.analyze``, writes
``DIR/analysis.json`` and the figure ``DIR/analysis.png``. A bad file or array is one
line on stderr and exit code 2, with nothing written.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from clipsim.cli._common import UsageError

HELP = "measure margins, zero-shot, the gap and the exact statements on exported embeddings"

ARRAYS = ("image", "text", "labels", "class_text", "temperature")
"""Arrays (npz) or columns (Parquet) read from FILE; ``image`` and ``text`` are required."""

JSON_FILE = "analysis.json"
FIGURE_FILE = "analysis.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``clipsim analyze``."""
    parser.add_argument("file", help="a .npz (arrays image, text; optional labels, class_text, "
                                     "temperature) or a .parquet table (list columns)")
    parser.add_argument("--out", required=True, help=f"output folder ({JSON_FILE}, {FIGURE_FILE})")
    parser.add_argument("--temperature", type=float, default=None,
                        help="the model's temperature tau (overrides the file's)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, metavar="B",
                        help="batch sizes of the batch-level statements (default 32 256, "
                             "those up to the number of rows)")
    parser.add_argument("--top-r", type=int, nargs="+", default=[1, 5], metavar="R",
                        help="ranks of the zero-shot errors, recall@k and E2 (default 1 5)")
    parser.add_argument("--no-normalize", action="store_true",
                        help="use the rows as given (default: scale every row to unit norm)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the permutation that forms batches (default 0)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


# ------------------------------------------------------------------ reading FILE
def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise UsageError(f"{path}: not a readable .npz file ({_first_line(err)})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UsageError(f"{path}: not a .npz archive (a single .npy array?)")
    out = {}
    with data:
        for name in ARRAYS:
            if name not in data.files:
                continue
            try:
                out[name] = data[name]
            except ValueError:  # an object array: it would need pickle
                raise UsageError(f"{name}: wrong dtype in {path} (Python objects; expected "
                                 "numbers)") from None
            except (OSError, EOFError, zipfile.BadZipFile) as err:
                raise UsageError(f"{name}: cannot be read from {path} "
                                 f"({_first_line(err)})") from None
    return out


def _list_column(table: Any, name: str, path: Path, *, allow_nulls: bool = False) -> np.ndarray:
    import pyarrow as pa

    col = table.column(name).combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)
            or pa.types.is_fixed_size_list(col.type)):
        raise UsageError(f"{path}: column {name!r} must be a list column of floats, got "
                         f"type {col.type}")
    if not pa.types.is_floating(col.type.value_type):
        raise UsageError(f"{name}: expected a floating-point array, got list<{col.type.value_type}>"
                         f" in {path}")
    if col.null_count:
        valid = np.asarray(col.is_valid())
        count = int(valid.sum())
        if not allow_nulls or not valid[:count].all():
            raise UsageError(f"{name}: {col.null_count} null row(s) in {path}"
                             + (" (the class prompts must be the first rows)" if allow_nulls
                                else ""))
        col = col.slice(0, count)
    if len(col) == 0:
        return np.zeros((0, 0), np.float32)
    lengths = np.asarray(col.value_lengths()) if not pa.types.is_fixed_size_list(col.type) \
        else np.full(len(col), col.type.list_size)
    if np.any(lengths != lengths[0]):
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise UsageError(f"{name}: rows of different lengths in {path} (row 0 has "
                         f"{lengths[0]}, row {row} has {lengths[row]})")
    values = col.flatten().to_numpy(zero_copy_only=False)
    return values.reshape(len(col), int(lengths[0]))


def _read_parquet(path: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise UsageError(f"{path}: not a readable Parquet file ({_first_line(err)})") from None
    out: dict[str, Any] = {}
    for name in ("image", "text"):
        if name in table.column_names:
            out[name] = _list_column(table, name, path)
    if "class_text" in table.column_names:
        out["class_text"] = _list_column(table, "class_text", path, allow_nulls=True)
    for name in ("labels", "temperature"):
        if name not in table.column_names:
            continue
        col = table.column(name).combine_chunks()
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            raise UsageError(f"{name}: expected numbers, got column type {col.type} in {path}")
        if name == "labels":
            if col.null_count:
                raise UsageError(f"labels: {col.null_count} null row(s) in {path}")
            out[name] = col.to_numpy(zero_copy_only=False)
        else:
            values = np.unique(col.drop_null().to_numpy(zero_copy_only=False))
            if values.size != 1:
                raise UsageError(f"temperature: expected one value in column 'temperature' of "
                                 f"{path}, got {values.size} distinct values")
            out[name] = values[0]
    return out


def read_embeddings(path: str | Path) -> dict[str, Any]:
    """The arrays of an embeddings file: ``image``, ``text`` and the optional ones.

    Args:
        path: a ``.npz`` or ``.parquet`` file (see the module docstring).

    Returns:
        Name -> array (``temperature`` a scalar array), for the names of ``ARRAYS``
        present in the file.

    Raises:
        UsageError: the file is missing, of another type, unreadable, or lacks
            ``image`` or ``text`` (one line naming the file or the array).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        out = _read_npz(path)
    elif suffix in (".parquet", ".pq"):
        out = _read_parquet(path)
    else:
        raise UsageError(f"{path}: expected a .npz or .parquet file, got {suffix or 'no suffix'!r}")
    for name in ("image", "text"):
        if name not in out:
            raise UsageError(f"{name}: missing from {path} (found: "
                             f"{', '.join(sorted(out)) or 'nothing usable'})")
    if "temperature" in out and np.ndim(out["temperature"]) != 0:
        t = np.asarray(out["temperature"])
        if t.size != 1:
            raise UsageError(f"temperature: expected one number in {path}, got shape {t.shape}")
        out["temperature"] = t.reshape(())
    return out


# ------------------------------------------------------------------ the figure
def analysis_figure(result: Any):
    """Score distributions, margins against ``tau log(B - 1)`` and the zero-shot confusion.

    Args:
        result: an ``Analysis`` from ``clipsim.analyze``.

    Returns:
        A matplotlib ``Figure`` (two panels, three with class prompts).
    """
    from clipsim.plots import new_figure

    arrays = result.arrays
    confusion = arrays.get("confusion")
    fig, axes = new_figure(ncols=2 if confusion is None else 3, width=4.0, height=3.2)
    ax = axes[0, 0]
    pos, neg, same = (arrays["positive_scores"], arrays["negative_scores"],
                      arrays["negative_same_label"])
    lo = float(min(pos.min(), neg.min()))
    hi = float(max(pos.max(), neg.max()))
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 60)
    ax.hist(pos, bins=bins, density=True, alpha=0.6, color="C0", label="positive s(x_i, y_i)")
    ax.hist(neg[~same], bins=bins, density=True, alpha=0.6, color="C1",
            label="negative, other label")
    if same.any():
        ax.hist(neg[same], bins=bins, density=True, histtype="step", color="C2",
                label="negative, same label")
    ax.set_xlabel("score")
    ax.set_title("positive vs negative scores")
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    margins = arrays["margins"]
    margins = margins[np.isfinite(margins)]
    ax.hist(margins, bins=60, color="C0", alpha=0.8)
    tau = result.metrics["temperature"]
    if np.isfinite(tau):
        for k, row in enumerate(result.batches):
            ax.axvline(row["margin_threshold"], color=f"C{k + 1}", ls="--",
                       label=f"tau log(B-1), B={row['batch_size']}")
        ax.legend(fontsize=8)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_xlabel("margin m_i (same-label negatives excluded)")
    ax.set_title("margins")

    if confusion is not None:
        ax = axes[0, 2]
        rows = confusion.sum(axis=1, keepdims=True)
        rate = confusion / np.maximum(rows, 1)
        image = ax.imshow(rate, vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
        ax.grid(False)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"zero-shot (top-1 error {result.metrics['zs_top1_error']:.3f})"
                     if "zs_top1_error" in result.metrics else "zero-shot")
        fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def _png_bytes(fig) -> bytes:
    import matplotlib as mpl

    from clipsim.plots import STYLE

    buf = io.BytesIO()
    with mpl.rc_context(STYLE):
        fig.savefig(buf, format="png")
    return buf.getvalue()


# ------------------------------------------------------------------ the command
def run(args: argparse.Namespace) -> int:
    """Read FILE, analyze it, print the table, write the JSON record and the figure."""
    from clipsim.io import check_out_dir

    out = check_out_dir(args.out)
    arrays = read_embeddings(args.file)

    from clipsim.analysis import AnalysisInputError, analyze
    from clipsim.io import dumps, package_versions, write_atomic

    temperature = args.temperature if args.temperature is not None \
        else arrays.pop("temperature", None)
    try:
        result = analyze(arrays.pop("image"), arrays.pop("text"), labels=arrays.pop("labels", None),
                         class_text_emb=arrays.pop("class_text", None),
                         temperature=temperature, normalize=not args.no_normalize,
                         batch_sizes=args.batch_sizes, top_r=args.top_r, seed=args.seed,
                         progress=not args.quiet)
    except AnalysisInputError as err:
        raise UsageError(str(err)) from None
    record = {"file": str(args.file), **result.to_dict(), "versions": package_versions()}
    text = dumps(record)
    png = _png_bytes(analysis_figure(result))
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / FIGURE_FILE, png)
    write_atomic(out / JSON_FILE, text)
    if not args.quiet:
        print(result.table())
        print(f"\nwrote {out / JSON_FILE} and {out / FIGURE_FILE}")
    return 0
