"""The results folder: a manifest, a lock and one Parquet dataset of checksummed parts.

Layout::

    DIR/manifest.json                 spec, spec hash, versions, sessions, and per part
                                      its sha256, size, rows and points
    DIR/.lock                         while a writer holds the folder: its pid and host
    DIR/results/part-<chunk id>.parquet

**Atomic writes.** Every file (parts and the manifest) is written to a hidden
temporary file in the same folder, flushed to disk and renamed (``os.replace``);
the temporary file is removed whatever happens. A part is either complete or
absent, even if the process is killed.

**Checksums.** Before a part is renamed into place, the manifest records it as
``"writing"`` with the SHA-256 of its bytes; after, as ``"done"``. Loading and
resuming verify every part against its record. A part whose bytes do not match
(a flipped bit, a truncation) or that the manifest does not know is reported by
name (``CorruptPartWarning``); on resume it is removed, so its points count as
not finished and are recomputed.

**One writer.** ``open`` takes the folder's lock (an ``fcntl`` lock on ``.lock``,
which also names the holder's pid and host) and ``close`` releases it; a second
writer is refused with ``StoreLockedError`` naming the folder and the holder. A
lock left by a dead process on this host is taken over; one from another host
is refused (its message says how to clear it). Readers take no lock.

**Completeness.** ``load`` compares the parts with the manifest: parts recorded
as done but missing or corrupt, or a finished sweep with fewer points than its
spec, give an ``IncompleteResultsWarning`` (``IncompleteResultsError`` with
``strict=True``). Resuming skips the points whose config hash is in a verified
part.

**Growing a sweep.** Runs are identified by their config hash, so a folder accepts
any spec of the same ``name`` and ``program`` whose metric columns the folder's
table has: a spec with more seeds, more grid values, another chain link, or only
a new description or order of values reuses every stored run and computes only
the new ones. Every spec that wrote to the folder is appended to the manifest's
``specs`` (with the session it first wrote in); ``spec`` is the latest. A spec of
another name or program, or one whose runs have metric columns the table lacks,
is refused (``StoreMismatchError``), never mixed. ``clipsim.sweep.run`` returns
exactly its spec's points; ``load(DIR)`` returns every run in the folder, those of
earlier specs included (``point`` numbers the latest spec's points first).
``pandas.read_parquet(DIR / "results")`` reads the parts as one table (every part
has the same schema); ``load(DIR)`` does that after verification, sorted and
deduplicated.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import socket
import uuid
import warnings
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from clipsim.config import ConfigError
from clipsim.io import package_versions
from clipsim.sweep.spec import MAX_POINTS, SweepPoints, SweepSpec
from clipsim.sweep.table import table_schema, to_arrow

__all__ = ["SweepError", "StoreMismatchError", "StoreLockedError", "CorruptStoreError",
           "IncompleteResultsError", "CorruptPartWarning", "IncompleteResultsWarning",
           "ResultsStore", "concat_parts", "load", "package_versions"]

MANIFEST = "manifest.json"
RESULTS = "results"
LOCK = ".lock"
FORMAT = 2
"""Folder format: 1 had no checksums (its parts are checksummed on the next resume)."""


def concat_parts(tables: list[pa.Table]) -> pa.Table:
    """Parts as one table; a column some parts lack is null in their rows.

    A folder grown across versions of clipsim can hold parts written before a config
    field or a metric existed: their rows read with that column null (unknown), not
    as an error.

    Args:
        tables: part tables, at least one.

    Returns:
        The tables concatenated, schemas unified (``promote_options="default"``).
    """
    return pa.concat_tables(tables, promote_options="default")

class SweepError(Exception):
    """A sweep cannot proceed for a reason the user can fix (one-line message)."""


class StoreMismatchError(SweepError):
    """The results folder belongs to a different sweep spec."""


class StoreLockedError(SweepError):
    """Another live process is writing into the results folder."""


class CorruptStoreError(SweepError):
    """A manifest or part file is truncated, empty or not what was written."""


class IncompleteResultsError(CorruptStoreError):
    """``load(strict=True)``: the parts do not cover the points the manifest records."""


class CorruptPartWarning(UserWarning):
    """A part file failed verification; it is left out (and recomputed on resume)."""


class IncompleteResultsWarning(UserWarning):
    """The loaded table lacks points the manifest records as finished."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename; no temp file survives."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _FolderLock:
    """An exclusive, non-blocking lock on ``DIR/.lock`` naming its holder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK
        self.fd: int | None = None

    @staticmethod
    def _holder(text: str) -> dict[str, Any]:
        try:
            holder = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return holder if isinstance(holder, dict) else {}

    def _refuse(self, holder: dict[str, Any], why: str) -> StoreLockedError:
        who = (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')!r} "
               f"(since {holder.get('since', '?')})")
        return StoreLockedError(
            f"results folder {str(self.folder)!r} is locked by {who}: {why}; wait for that "
            f"process, or choose another --out (delete {str(self.path)!r} only if that "
            "process is gone)")

    def acquire(self) -> None:
        host = socket.gethostname()
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                text = os.pread(fd, 4096, 0).decode(errors="replace")
                os.close(fd)
                raise self._refuse(self._holder(text), "another writer holds it") from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # released and removed while we opened it: try again
                os.close(fd)
                continue
            holder = self._holder(os.pread(fd, 4096, 0).decode(errors="replace"))
            pid = holder.get("pid")
            if holder and (holder.get("host") != host or not isinstance(pid, int)):
                os.close(fd)
                raise self._refuse(holder, "it was taken on another host, whose processes "
                                   "cannot be checked from here")
            if holder and pid != os.getpid() and _pid_alive(pid):
                os.close(fd)
                raise self._refuse(holder, "that process is still running")
            # free, or stale (its process is dead): take it
            record = json.dumps({"pid": os.getpid(), "host": host, "since": _now()}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
            os.fsync(fd)
            self.fd = fd
            return
        raise StoreLockedError(f"results folder {str(self.folder)!r}: could not take its lock "
                               f"{str(self.path)!r}; another process keeps replacing it")

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        os.close(fd)


def _release(lock: _FolderLock) -> None:
    lock.release()


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
        self._lock = _FolderLock(self.path)
        weakref.finalize(self, _release, self._lock)

    @property
    def locked(self) -> bool:
        """Whether this object holds the folder's lock (between ``open`` and ``close``)."""
        return self._lock.fd is not None

    # ----------------------------------------------------------- manifest
    def read_manifest(self) -> dict[str, Any] | None:
        """The folder's manifest.

        Returns:
            The parsed ``manifest.json``, or None when the folder has none.

        Raises:
            CorruptStoreError: the manifest is empty, truncated or not a manifest
                (the message names the file).
        """
        if not self.manifest_path.is_file():
            return None
        where = str(self.manifest_path)
        try:
            text = self.manifest_path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise CorruptStoreError(f"{where}: cannot be read ({err})") from None
        if not text.strip():
            raise CorruptStoreError(f"{where}: the manifest is empty (a write was cut short); "
                                    "the folder cannot be verified: move it aside or delete it "
                                    "to start over")
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as err:
            raise CorruptStoreError(f"{where}: the manifest is not valid JSON ({err.msg} at "
                                    f"line {err.lineno}, column {err.colno}; truncated?); move "
                                    "the folder aside or delete it to start over") from None
        required = ("spec_hash", "metrics", "sessions", "num_points")
        if not isinstance(manifest, dict) or any(k not in manifest for k in required):
            raise CorruptStoreError(f"{where}: not a sweep manifest (it lacks "
                                    f"{', '.join(required)})")
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        text = json.dumps(manifest, indent=2).encode()
        _write_atomic(self.manifest_path, text)
        self._manifest = manifest

    def _foreign_files(self) -> list[str]:
        """Names in the folder that a results store does not write."""
        out = []
        for entry in self.path.iterdir():
            if entry.name in (LOCK, MANIFEST) or (entry.name.startswith(".")
                                                  and entry.name.endswith(".tmp")):
                continue
            if entry.name == RESULTS and entry.is_dir() and not any(entry.iterdir()):
                continue
            out.append(entry.name)
        return out

    def check(self, spec: SweepSpec, *, metrics: list[str] | None = None
              ) -> dict[str, Any] | None:
        """Refuse a folder that ``spec`` cannot write to (see "Growing a sweep" above).

        Args:
            spec: the spec about to write here.
            metrics: the metric columns of ``spec``'s runs; when given, each must be
                a column of the folder's table.

        Returns:
            The existing manifest, or None for a new or empty folder.

        Raises:
            StoreMismatchError: the folder holds another sweep (name), another
                program's runs, a table without some of ``metrics``, or other files.
            CorruptStoreError: the manifest is unreadable.
        """
        if self.path.exists() and not self.path.is_dir():
            raise StoreMismatchError(f"results folder {str(self.path)!r} is a file, not a "
                                     "folder; choose a new --out folder")
        manifest = self.read_manifest()
        if manifest is None:
            if self.path.exists() and self._foreign_files():
                raise StoreMismatchError(
                    f"refusing to write sweep {spec.name!r} into {str(self.path)!r}: the folder "
                    "is not empty and has no manifest.json (not a sweep results folder); "
                    "choose a new --out folder")
            return None
        where = f"results folder {str(self.path)!r}"
        if manifest.get("name") != spec.name:
            raise StoreMismatchError(
                f"{where} holds sweep {manifest.get('name')!r}, not sweep {spec.name!r}: a "
                "folder keeps one sweep (which may grow: more seeds, grid values or chain "
                "links); choose a new --out folder, or delete the old one to start over")
        old_program = (manifest.get("spec") or {}).get("program", "train_evaluate")
        if old_program != spec.program:
            raise StoreMismatchError(
                f"{where} holds runs of program {old_program!r}, not {spec.program!r} (sweep "
                f"{spec.name!r}): runs of different programs are never mixed; choose a new "
                "--out folder")
        if metrics is not None:
            have = set(manifest["metrics"])
            extra = [m for m in metrics if m not in have]
            if extra:
                shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more"
                                                if len(extra) > 5 else "")
                raise StoreMismatchError(
                    f"{where}: sweep {spec.name!r} now has metric columns its table lacks "
                    f"({shown}); the table's schema is fixed by the spec that created the "
                    "folder: choose a new --out folder for this spec")
        return manifest

    def open(self, spec: SweepSpec, *, num_points: int, metrics: list[str],
             backend: str = "local", check_metrics: bool = False) -> list[str]:
        """Take the folder's lock, create or resume it for ``spec``, record a session start.

        A spec not yet recorded in the manifest is appended to its ``specs`` and
        becomes its ``spec``; the folder counts as unfinished until it completes.

        Args:
            spec: the sweep spec.
            num_points: number of points of the spec.
            metrics: metric columns of the spec's runs (the table's, for a new folder).
            backend: backend name, recorded in the session.
            check_metrics: refuse a folder whose table lacks some of ``metrics``.

        Returns:
            The metric columns of the table (the manifest's, when resuming).

        Raises:
            StoreLockedError: another live process writes into the folder.
            StoreMismatchError: the folder holds another sweep, program or schema.
            CorruptStoreError: the manifest is unreadable.
        """
        checked = list(metrics) if check_metrics else None
        self.check(spec, metrics=checked)
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.locked:
            self._lock.acquire()
        try:
            # again, now that no other writer can change it
            manifest = self.check(spec, metrics=checked)
            for folder in (self.path, self.results_path):
                for stale in folder.glob(".*.tmp") if folder.is_dir() else ():
                    stale.unlink(missing_ok=True)
            now = _now()
            if manifest is None:
                manifest = {
                    "format": FORMAT, "name": spec.name, "spec_hash": spec.hash(),
                    "spec": spec.to_dict(), "num_points": num_points, "metrics": list(metrics),
                    "versions": package_versions(), "started": now, "finished": None,
                    "sessions": [], "parts": {}, "specs": [],
                }
            specs = manifest.setdefault("specs", [
                {"spec_hash": manifest["spec_hash"], "spec": manifest.get("spec"),
                 "since": manifest.get("started"), "session": 0}])
            if spec.hash() not in {s.get("spec_hash") for s in specs}:
                specs.append({"spec_hash": spec.hash(), "spec": spec.to_dict(), "since": now,
                              "session": len(manifest["sessions"])})
                manifest["finished"] = None
            manifest.update(spec_hash=spec.hash(), spec=spec.to_dict(), num_points=num_points)
            manifest["sessions"].append({"started": now, "finished": None, "backend": backend,
                                         "versions": package_versions(), "points_run": 0,
                                         "work_run": 0, "updated": now})
            self._write_manifest(manifest)
            self.results_path.mkdir(parents=True, exist_ok=True)
            if "parts" not in manifest:  # a format-1 folder: checksum its readable parts
                self._adopt_legacy_parts(manifest)
        except BaseException:
            self._lock.release()
            raise
        return list(manifest["metrics"])

    def _adopt_legacy_parts(self, manifest: dict[str, Any]) -> None:
        parts = {}
        for part in self.part_files():
            try:
                table = pq.read_table(part, columns=["config_hash"])
            except (OSError, pa.ArrowException) as err:
                warnings.warn(f"{part}: unreadable part ({err}); removed, its points will be "
                              "recomputed", CorruptPartWarning, stacklevel=3)
                part.unlink(missing_ok=True)
                continue
            parts[part.name] = {"sha256": _sha256(part), "bytes": part.stat().st_size,
                                "rows": table.num_rows,
                                "points": len(set(table.column(0).to_pylist())),
                                "state": "done"}
        manifest["parts"] = parts
        manifest["format"] = FORMAT
        self._write_manifest(manifest)

    def close(self, *, points_run: int, complete: bool) -> None:
        """Record the session's end (and the sweep's, when every point is done); unlock.

        Args:
            points_run: points computed in this session.
            complete: every point of the spec is now in the folder.
        """
        try:
            manifest = self._manifest
            if manifest is None or not self.locked:
                return
            now = _now()
            manifest["sessions"][-1].update(finished=now, updated=now, points_run=points_run)
            if complete:
                manifest["finished"] = now
            self._write_manifest(manifest)
        finally:
            self._lock.release()

    # -------------------------------------------------------------- parts
    def part_files(self) -> list[Path]:
        """Part files present in the folder (verified or not).

        Returns:
            Paths of ``results/part-*.parquet``, sorted by name.
        """
        if not self.results_path.is_dir():
            return []
        return sorted(self.results_path.glob("part-*.parquet"))

    def verify(self, manifest: dict[str, Any] | None = None
               ) -> tuple[list[Path], dict[str, str], list[str]]:
        """Check every part against the manifest.

        Args:
            manifest: the manifest (default: read it).

        Returns:
            ``(good, bad, missing)``: verified part paths; part name -> reason for
            parts that fail (checksum or size mismatch, not recorded); names of parts
            recorded as done whose file is gone.
        """
        manifest = manifest if manifest is not None else self.read_manifest() or {}
        records = manifest.get("parts")
        good, bad = [], {}
        for part in self.part_files():
            if records is None:  # format 1: no checksums to compare with
                good.append(part)
                continue
            record = records.get(part.name)
            if record is None:
                bad[part.name] = "not recorded in the manifest"
                continue
            size = part.stat().st_size
            if size != record["bytes"]:
                bad[part.name] = f"{size} bytes where {record['bytes']} were written (truncated?)"
            elif _sha256(part) != record["sha256"]:
                bad[part.name] = "its sha256 does not match the one recorded (corrupted)"
            else:
                good.append(part)
        present = {p.name for p in self.part_files()}
        missing = sorted(n for n, r in (records or {}).items()
                         if r.get("state") == "done" and n not in present)
        return good, bad, missing

    def finished_hashes(self) -> set[str]:
        """Config hashes of the points present in verified parts.

        A part that fails verification is reported (``CorruptPartWarning``) and does
        not count; while this store holds the lock (a resume) it is removed and the
        manifest's record of it dropped, so its points are recomputed.

        Returns:
            The set of ``config_hash`` values (whole points: parts are atomic).
        """
        manifest = self._manifest if self.locked else self.read_manifest()
        if manifest is None:
            return set()
        good, bad, missing = self.verify(manifest)
        for name, why in bad.items():
            action = "removed; its points will be recomputed" if self.locked else "skipped"
            warnings.warn(f"{self.results_path / name}: {why}; {action}", CorruptPartWarning,
                          stacklevel=2)
        if missing:
            warnings.warn(f"{str(self.path)!r}: parts recorded as finished are missing "
                          f"({', '.join(missing)}); their points are not finished",
                          IncompleteResultsWarning, stacklevel=2)
        if self.locked and "parts" in manifest:
            records = manifest["parts"]
            for name in bad:
                (self.results_path / name).unlink(missing_ok=True)
            present = {p.name for p in self.part_files()}
            dropped = [n for n in records if n not in present]  # lost, or never written
            for name in dropped:
                records.pop(name)
            if dropped:
                self._write_manifest(manifest)
        done: set[str] = set()
        for part in good:
            done.update(self._read_part(part, columns=["config_hash"])
                        .column(0).to_pylist())
        return done

    def _read_part(self, part: Path, columns: list[str] | None = None) -> pa.Table:
        try:
            return pq.read_table(part, columns=columns)
        except (OSError, pa.ArrowException) as err:
            raise CorruptStoreError(f"{part}: not a readable Parquet part ({err}); delete it "
                                    "and resume the sweep to recompute its points") from None

    def write_part(self, chunk_id: str, frame: pd.DataFrame, *, work: int = 0) -> Path:
        """Write a finished chunk atomically as ``results/part-<chunk_id>.parquet``.

        The manifest records the part's checksum before the part appears (state
        ``"writing"``) and marks it ``"done"`` after, adding the chunk's points and
        work to the session's ``points_run`` and ``work_run`` (so a killed session
        still tells how fast it went: ``started`` to ``updated``).

        Args:
            chunk_id: the chunk's id.
            frame: its rows; conformed to the folder's schema (missing metrics NaN).
            work: the chunk's work (``clipsim.sweep.engine.estimate_run_work`` summed
                over its runs), for time estimates.

        Returns:
            The part's path.

        Raises:
            SweepError: the store was not opened (its lock is not held).
        """
        manifest = self._manifest
        if manifest is None or not self.locked:
            raise SweepError(f"{str(self.path)!r} was not opened for writing")
        table = to_arrow(frame, table_schema(manifest["metrics"]))
        data = _parquet_bytes(table)
        name = f"part-{chunk_id}.parquet"
        record = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                  "rows": table.num_rows,
                  "points": len(set(table.column("config_hash").to_pylist())),
                  "state": "writing"}
        manifest.setdefault("parts", {})[name] = record
        self._write_manifest(manifest)
        path = self.results_path / name
        _write_atomic(path, data)
        record["state"] = "done"
        if manifest.get("sessions"):
            session = manifest["sessions"][-1]
            session["points_run"] = int(session.get("points_run") or 0) + record["points"]
            session["work_run"] = int(session.get("work_run") or 0) + int(work)
            session["updated"] = _now()
        self._write_manifest(manifest)
        return path

    def read(self, *, strict: bool = False, points: SweepPoints | None = None) -> pd.DataFrame:
        """The table, from verified parts only.

        Args:
            strict: raise instead of warning when parts are corrupt or missing.
            points: keep only the runs of these points (``SweepSpec.points()``), their
                ``point`` column set to the index in ``points``: the table of one spec.
                Default: every run in the folder; ``point`` is the index in the latest
                spec's points, and runs that only earlier specs hold are numbered after
                them (by their stored point number).

        Returns:
            Runs in point order, steps ascending, no duplicate (config_hash, step) rows;
            ``attrs["manifest"]`` holds the manifest.

        Raises:
            FileNotFoundError: the folder has no manifest.
            CorruptStoreError: the manifest or a part is unreadable; with ``strict``,
                a part fails verification.
            IncompleteResultsError: with ``strict``, recorded points are missing.
        """
        manifest = self.read_manifest()
        if manifest is None:
            raise FileNotFoundError(f"{str(self.path)!r} is not a sweep results folder "
                                    "(no manifest.json)")
        good, bad, missing = self.verify(manifest)
        if bad:
            listing = "; ".join(f"{self.results_path / n}: {why}" for n, why in bad.items())
            if strict:
                raise CorruptStoreError(f"{listing}; resume the sweep to recompute")
            for name, why in bad.items():
                warnings.warn(f"{self.results_path / name}: {why}; left out of the table "
                              "(resume the sweep to recompute it)", CorruptPartWarning,
                              stacklevel=3)
        if not good:
            frame = table_schema(manifest["metrics"]).empty_table().to_pandas()
        else:
            frame = concat_parts([self._read_part(p) for p in good]).to_pandas()
            frame = frame.drop_duplicates(subset=["config_hash", "step"], keep="first")
            frame = frame.sort_values(["point", "step"], kind="stable").reset_index(drop=True)
        self._check_complete(manifest, frame, bad, missing, strict)
        if len(frame) and (points is not None or len(manifest.get("specs") or ()) > 1):
            frame = _renumber(frame, points if points is not None else _latest_points(manifest),
                              keep_others=points is None)
        frame.attrs["manifest"] = manifest
        return frame

    def _check_complete(self, manifest: dict[str, Any], frame: pd.DataFrame,
                        bad: dict[str, str], missing: list[str], strict: bool) -> None:
        records = manifest.get("parts") or {}
        lost = sum(int(records[n].get("points", 0)) for n in missing) + sum(
            int(records[n].get("points", 0)) for n in bad if n in records)
        have = int(frame["config_hash"].nunique()) if len(frame) else 0
        expected = int(manifest["num_points"]) if manifest.get("finished") else have + lost
        if have >= expected and not missing:
            return  # complete (corrupt parts, if any, were reported by name)
        parts = f"; missing parts: {', '.join(missing)}" if missing else ""
        message = (f"{str(self.path)!r}: the table holds {have} of the {expected} points the "
                   f"manifest records as finished{parts}; resume the sweep on this folder to "
                   "recompute them")
        if strict:
            raise IncompleteResultsError(message)
        warnings.warn(message, IncompleteResultsWarning, stacklevel=4)


def _latest_points(manifest: dict[str, Any]) -> SweepPoints | None:
    """The points of the manifest's latest spec, or None if it no longer parses."""
    try:
        spec = SweepSpec.from_dict(manifest["spec"])
        return spec.points(max_points=max(MAX_POINTS, spec.num_candidates))
    except (KeyError, TypeError, ConfigError):
        return None


def _renumber(frame: pd.DataFrame, points: SweepPoints | None, *,
              keep_others: bool) -> pd.DataFrame:
    """``point`` := index in ``points``; other runs dropped, or numbered after them."""
    if points is None:
        return frame
    index = {h: i for i, h in enumerate(points.hashes)}
    new = frame["config_hash"].map(index)
    inside = new.notna()
    if not keep_others:
        frame = frame[inside].copy()
        frame["point"] = new[inside].astype("int64")
    else:
        others = (frame.loc[~inside, ["point", "config_hash"]]
                  .drop_duplicates("config_hash").sort_values(["point", "config_hash"]))
        extra = {h: len(points) + j for j, h in enumerate(others["config_hash"])}
        frame = frame.copy()
        frame["point"] = new.fillna(frame["config_hash"].map(extra)).astype("int64")
    return frame.sort_values(["point", "step"], kind="stable").reset_index(drop=True)


def load(path: str | Path, *, strict: bool = False) -> pd.DataFrame:
    """Read a sweep results folder as one table (``frame.attrs["manifest"]`` holds the manifest).

    The table holds every run in the folder, those of earlier specs that a grown
    sweep no longer contains included (``point`` numbers the latest spec's points
    first; see ``ResultsStore.read``). ``clipsim.sweep.run`` returns only its spec's.

    Every part is verified against its checksum; corrupt parts are left out with a
    ``CorruptPartWarning`` naming them, and a table that lacks points the manifest
    records as finished gives an ``IncompleteResultsWarning``.

    Args:
        path: a results folder written by ``clipsim.sweep.run`` or ``clipsim sweep``.
        strict: raise (``CorruptStoreError`` / ``IncompleteResultsError``) instead of
            warning.

    Returns:
        The results table: one row per (run, logged step), as ``run`` returns it.

    Raises:
        FileNotFoundError: the folder has no manifest.
        CorruptStoreError: the manifest or a part cannot be read (or, with ``strict``,
            fails verification or does not cover the manifest).
    """
    return ResultsStore(path).read(strict=strict)
