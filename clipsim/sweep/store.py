"""The results folder: a manifest and one Parquet dataset of finished chunks.

Layout::

    DIR/manifest.json                 spec, spec hash, versions, start/end times
    DIR/results/part-<chunk id>.parquet

Each part holds whole runs and is written to a hidden temporary file in the same
folder, then renamed (``os.replace``), so a part is either complete or absent,
even if the process is killed. Resuming skips the points whose config hash is in
a finished part. A folder written by another spec is refused, never mixed.
``pandas.read_parquet(DIR / "results")`` reads the parts as one table (every part
has the same schema); ``load(DIR)`` does that, sorted and deduplicated.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from clipsim.io import package_versions
from clipsim.sweep.spec import SweepSpec
from clipsim.sweep.table import table_schema, to_arrow

__all__ = ["SweepError", "StoreMismatchError", "ResultsStore", "load", "package_versions"]

MANIFEST = "manifest.json"
RESULTS = "results"
FORMAT = 1


class SweepError(Exception):
    """A sweep cannot proceed for a reason the user can fix (one-line message)."""


class StoreMismatchError(SweepError):
    """The results folder belongs to a different sweep spec."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ResultsStore:
    """A sweep's results folder.

    Args:
        path: the folder (created on ``open``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest_path = self.path / MANIFEST
        self.results_path = self.path / RESULTS
        self._manifest: dict[str, Any] | None = None

    # ----------------------------------------------------------- manifest
    def read_manifest(self) -> dict[str, Any] | None:
        """The folder's manifest.

        Returns:
            The parsed ``manifest.json``, or None when the folder has none.
        """
        if not self.manifest_path.is_file():
            return None
        return json.loads(self.manifest_path.read_text())

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        text = json.dumps(manifest, indent=2).encode()
        _write_atomic(self.manifest_path, lambda fh: fh.write(text))
        self._manifest = manifest

    def check(self, spec: SweepSpec) -> dict[str, Any] | None:
        """Refuse a folder written by another spec (or not a results folder).

        Args:
            spec: the spec about to write here.

        Returns:
            The existing manifest, or None for a new or empty folder.

        Raises:
            StoreMismatchError: the folder holds another spec's results, or other files.
        """
        manifest = self.read_manifest()
        if manifest is None:
            if self.path.exists() and any(self.path.iterdir()):
                raise StoreMismatchError(
                    f"refusing to write sweep {spec.name!r} into {str(self.path)!r}: the folder "
                    "is not empty and has no manifest.json (not a sweep results folder); "
                    "choose a new --out folder")
            return None
        if manifest.get("spec_hash") != spec.hash():
            raise StoreMismatchError(
                f"results folder {str(self.path)!r} holds sweep {manifest.get('name')!r} "
                f"(spec hash {manifest.get('spec_hash')}), not sweep {spec.name!r} "
                f"(spec hash {spec.hash()}); results of different specs are not mixed: "
                "choose a new --out folder, or delete the old one to start over")
        return manifest

    def open(self, spec: SweepSpec, *, num_points: int, metrics: list[str],
             backend: str = "local") -> list[str]:
        """Create or resume the folder for ``spec``; record a session start.

        Args:
            spec: the sweep spec.
            num_points: number of points of the spec.
            metrics: metric columns of the table (used for a new folder).
            backend: backend name, recorded in the session.

        Returns:
            The metric columns of the table (the manifest's, when resuming).
        """
        manifest = self.check(spec)
        self.results_path.mkdir(parents=True, exist_ok=True)
        for stale in self.results_path.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        now = _now()
        if manifest is None:
            manifest = {
                "format": FORMAT, "name": spec.name, "spec_hash": spec.hash(),
                "spec": spec.to_dict(), "num_points": num_points, "metrics": list(metrics),
                "versions": package_versions(), "started": now, "finished": None,
                "sessions": [],
            }
        manifest["sessions"].append({"started": now, "finished": None, "backend": backend,
                                     "versions": package_versions(), "points_run": 0})
        self._write_manifest(manifest)
        return list(manifest["metrics"])

    def close(self, *, points_run: int, complete: bool) -> None:
        """Record the session's end (and the sweep's, when every point is done).

        Args:
            points_run: points computed in this session.
            complete: every point of the spec is now in the folder.
        """
        manifest = self._manifest or self.read_manifest()
        if manifest is None:
            return
        now = _now()
        manifest["sessions"][-1].update(finished=now, points_run=points_run)
        if complete:
            manifest["finished"] = now
        self._write_manifest(manifest)

    # -------------------------------------------------------------- parts
    def part_files(self) -> list[Path]:
        """Finished part files.

        Returns:
            Paths of ``results/part-*.parquet``, sorted by name.
        """
        if not self.results_path.is_dir():
            return []
        return sorted(self.results_path.glob("part-*.parquet"))

    def finished_hashes(self) -> set[str]:
        """Config hashes of the points present in finished parts.

        Returns:
            The set of ``config_hash`` values (whole points: parts are atomic).
        """
        done: set[str] = set()
        for part in self.part_files():
            done.update(pq.read_table(part, columns=["config_hash"]).column(0).to_pylist())
        return done

    def write_part(self, chunk_id: str, frame: pd.DataFrame) -> Path:
        """Write a finished chunk atomically as ``results/part-<chunk_id>.parquet``.

        Args:
            chunk_id: the chunk's id.
            frame: its rows; conformed to the folder's schema (missing metrics NaN).

        Returns:
            The part's path.
        """
        manifest = self._manifest or self.read_manifest()
        if manifest is None:
            raise SweepError(f"{str(self.path)!r} was not opened for writing")
        table = to_arrow(frame, table_schema(manifest["metrics"]))
        path = self.results_path / f"part-{chunk_id}.parquet"
        _write_atomic(path, lambda fh: pq.write_table(table, fh))
        return path

    def read(self) -> pd.DataFrame:
        """The whole table.

        Returns:
            Runs in point order, steps ascending, no duplicate (config_hash, step) rows;
            ``attrs["manifest"]`` holds the manifest.
        """
        manifest = self.read_manifest()
        if manifest is None:
            raise FileNotFoundError(f"{str(self.path)!r} is not a sweep results folder "
                                    "(no manifest.json)")
        if not self.part_files():
            frame = table_schema(manifest["metrics"]).empty_table().to_pandas()
        else:
            frame = pd.read_parquet(self.results_path)
            frame = frame.drop_duplicates(subset=["config_hash", "step"], keep="first")
            frame = frame.sort_values(["point", "step"], kind="stable").reset_index(drop=True)
        frame.attrs["manifest"] = manifest
        return frame


def load(path: str | Path) -> pd.DataFrame:
    """Read a sweep results folder as one table (``frame.attrs["manifest"]`` holds the manifest).

    Args:
        path: a results folder written by ``clipsim.sweep.run`` or ``clipsim sweep``.

    Returns:
        The results table: one row per (run, logged step), as ``run`` returns it.

    Raises:
        FileNotFoundError: the folder has no manifest.
    """
    return ResultsStore(path).read()
