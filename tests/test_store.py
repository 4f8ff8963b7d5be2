"""The results store: one writer, checksummed parts, clear errors, complete tables.

The sweep runner is exercised unchanged with a stand-in for ``compute_chunk`` that
returns one row per point at once, so these tests cost no training.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings

import pandas as pd
import pytest

from clipsim import sweep
from clipsim.sweep import runner
from clipsim.sweep.spec import SweepSpec
from clipsim.sweep.store import (
    LOCK,
    CorruptPartWarning,
    CorruptStoreError,
    IncompleteResultsError,
    IncompleteResultsWarning,
    ResultsStore,
    StoreLockedError,
)
from tests.conftest import ROOT, tiny_config

SPEC = SweepSpec(name="store", base=tiny_config(),
                 grid={"objective.temperature": [0.1, 0.2, 0.3, 0.4]}, seeds=(0, 1))


@pytest.fixture
def fake_compute(monkeypatch) -> list[tuple[int, ...]]:
    """Replace the computation by one synthetic row per point; record each chunk's points."""
    calls: list[tuple[int, ...]] = []

    def compute(task):
        calls.append(tuple(task.points))
        configs = task.run_configs()
        return pd.DataFrame({
            "sweep": task.sweep, "point": list(task.points),
            "config_hash": [c.hash() for c in configs], "seed": [c.seed for c in configs],
            "step": 40, "final": True, "nonfinite_step": -1,
            "loss": [float(p) + 0.5 for p in task.points]})

    monkeypatch.setattr(runner, "compute_chunk", compute)
    monkeypatch.setattr(runner, "metric_columns", lambda points, *args: ["loss"])
    return calls


def _run(out):
    return sweep.run(SPEC, out=out, max_batch=2, quiet=True)


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.attrs = {}
    return df


def _no_leftovers(out) -> None:
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name == LOCK]
    assert not leftovers, leftovers


def test_a_run_leaves_checksummed_parts_and_no_lock_or_temp_files(tmp_path, fake_compute):
    out = tmp_path / "s"
    df = _run(out)
    assert sorted(df["point"]) == list(range(8)) and len(fake_compute) == 4
    manifest = json.loads((out / "manifest.json").read_text())
    parts = ResultsStore(out).part_files()
    assert sorted(manifest["parts"]) == sorted(p.name for p in parts)
    for record in manifest["parts"].values():
        assert record["state"] == "done" and len(record["sha256"]) == 64 and record["points"] == 2
    _no_leftovers(out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.testing.assert_frame_equal(_plain(sweep.load(out, strict=True)), _plain(df))


def test_second_writer_is_refused_naming_folder_and_holder(tmp_path, fake_compute):
    out = tmp_path / "s"
    first = ResultsStore(out)
    first.open(SPEC, num_points=len(SPEC), metrics=["loss"])
    before = (out / "manifest.json").read_text()
    with pytest.raises(StoreLockedError) as info:
        _run(out)
    message = str(info.value)
    assert "\n" not in message
    assert str(out) in message and f"pid {os.getpid()}" in message
    assert socket.gethostname() in message
    assert (out / "manifest.json").read_text() == before  # the refused writer wrote nothing
    assert fake_compute == []
    first.close(points_run=0, complete=False)
    assert not (out / LOCK).exists()
    assert len(_run(out)) == 8  # free again


def test_a_live_writer_in_another_process_is_refused(tmp_path, fake_compute):
    out = tmp_path / "s"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from clipsim.sweep.store import ResultsStore; "
         "from tests.test_store import SPEC; s = ResultsStore(sys.argv[1]); "
         "s.open(SPEC, num_points=8, metrics=['loss']); print('locked', flush=True); "
         "time.sleep(120)", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match=f"pid {holder.pid} .*still running|"
                                                   f"pid {holder.pid} .*another writer"):
            _run(out)
    finally:
        holder.kill()
        holder.wait()
    # its lock is now stale (a dead process on this host): the next writer takes over
    assert (out / LOCK).exists()
    assert len(_run(out)) == 8
    _no_leftovers(out)


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, fake_compute):
    out = tmp_path / "s"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                        "since": "2000-01-01T00:00:00+00:00"}))
    assert len(_run(out)) == 8
    _no_leftovers(out)


def test_lock_from_another_host_is_refused_with_how_to_clear_it(tmp_path, fake_compute):
    out = tmp_path / "s"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "since": "x"}))
    with pytest.raises(StoreLockedError, match="elsewhere.example.*delete"):
        _run(out)
    assert fake_compute == [] and not (out / "manifest.json").exists()


def test_flipped_byte_is_detected_and_recomputed_on_resume(tmp_path, fake_compute):
    out = tmp_path / "s"
    original = _run(out)
    victim = ResultsStore(out).part_files()[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    with pytest.warns(CorruptPartWarning, match=victim.name):
        with pytest.warns(IncompleteResultsWarning, match="6 of the 8 points"):
            partial = sweep.load(out)
    assert len(partial) == 6
    with pytest.raises(CorruptStoreError, match=victim.name):
        sweep.load(out, strict=True)
    fake_compute.clear()
    with pytest.warns(CorruptPartWarning, match="recomputed"):
        again = _run(out)
    assert len(fake_compute) == 1 and len(fake_compute[0]) == 2  # only the bad part's points
    pd.testing.assert_frame_equal(_plain(again), _plain(original))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sweep.load(out, strict=True)


@pytest.mark.parametrize("damage", ["truncate", "empty", "unrecorded"])
def test_truncated_empty_or_unknown_parts_are_reported_by_name(tmp_path, fake_compute, damage):
    out = tmp_path / "s"
    _run(out)
    victim = ResultsStore(out).part_files()[0]
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:100])
    elif damage == "empty":
        victim.write_bytes(b"")
    else:
        victim = victim.with_name("part-stranger.parquet")
        victim.write_bytes(b"PAR1 not really")
    with pytest.warns(CorruptPartWarning, match=victim.name), warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteResultsWarning)
        sweep.load(out)
    fake_compute.clear()
    with pytest.warns(CorruptPartWarning):
        assert len(_run(out)) == 8
    assert not victim.exists() or damage != "unrecorded"
    assert len(fake_compute) == (0 if damage == "unrecorded" else 1)


def test_incomplete_table_is_reported(tmp_path, fake_compute):
    out = tmp_path / "s"
    _run(out)
    victim = ResultsStore(out).part_files()[2]
    victim.unlink()
    with pytest.warns(IncompleteResultsWarning, match=f"6 of the 8 points.*{victim.name}"):
        assert len(sweep.load(out)) == 6
    with pytest.raises(IncompleteResultsError, match=victim.name):
        sweep.load(out, strict=True)


@pytest.mark.parametrize("content", ["", "{\"name\": \"store\", \"spec_h", "[1, 2]"])
def test_bad_manifest_is_a_clear_error_naming_the_file(tmp_path, fake_compute, content):
    out = tmp_path / "s"
    _run(out)
    (out / "manifest.json").write_text(content)
    for action in (lambda: sweep.load(out), lambda: _run(out)):
        with pytest.raises(CorruptStoreError) as info:
            action()
        assert "manifest.json" in str(info.value) and "\n" not in str(info.value)
    assert (out / "manifest.json").read_text() == content


def test_failed_manifest_write_leaves_no_temporary_file(tmp_path, fake_compute, monkeypatch):
    out = tmp_path / "s"
    _run(out)
    store = ResultsStore(out)
    store.open(SPEC, num_points=len(SPEC), metrics=["loss"])

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        store.close(points_run=0, complete=True)
    monkeypatch.undo()
    _no_leftovers(out)
    json.loads((out / "manifest.json").read_text())  # the old manifest is intact


def test_folder_without_checksums_is_adopted_on_resume(tmp_path, fake_compute):
    out = tmp_path / "s"
    original = _run(out)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["parts"]
    manifest["format"] = 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    fake_compute.clear()
    again = _run(out)
    assert fake_compute == []
    pd.testing.assert_frame_equal(_plain(again), _plain(original))
    assert len(json.loads((out / "manifest.json").read_text())["parts"]) == 4


def test_a_killed_write_between_record_and_rename_is_not_counted(tmp_path, fake_compute):
    out = tmp_path / "s"
    _run(out)
    manifest = json.loads((out / "manifest.json").read_text())
    name = sorted(manifest["parts"])[0]
    manifest["parts"][name]["state"] = "writing"
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "results" / name).unlink()
    manifest["finished"] = None
    (out / "manifest.json").write_text(json.dumps(manifest))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unfinished sweep missing an unfinished part is fine
        assert len(sweep.load(out)) == 6
    fake_compute.clear()
    assert len(_run(out)) == 8 and len(fake_compute) == 1


def test_parts_written_before_a_field_existed_read_with_it_null() -> None:
    """A folder grown across versions: an old part lacks a column a new part has."""
    import pyarrow as pa

    from clipsim.sweep.store import concat_parts

    old = pa.table({"point": [0], "loss": [1.5]})
    new = pa.table({"point": [1], "loss": [1.25], "data.captions_per_image": [1]})
    frame = concat_parts([old, new]).to_pandas()
    assert list(frame["point"]) == [0, 1]
    assert frame["data.captions_per_image"].isna().tolist() == [True, False]
    assert frame["loss"].tolist() == [1.5, 1.25]
