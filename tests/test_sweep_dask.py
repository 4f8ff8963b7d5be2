"""The dask backend: a 2-worker LocalCluster gives the local table; failed chunks are retried."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from clipsim import sweep
from clipsim.sweep.dask_backend import DaskBackend
from clipsim.sweep.engine import compute_chunk
from clipsim.sweep.spec import SweepSpec
from clipsim.sweep.table import BOOKKEEPING_COLUMNS, CONFIG_COLUMNS
from tests.test_sweep import BASE, MAX_BATCH, tiny_sweep_spec

pytestmark = pytest.mark.slow  # a 2-worker LocalCluster per test; CI runs them (make test-slow)

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A compilation cache folder shared by the workers."""
    return str(tmp_path_factory.mktemp("jax-cache"))


@pytest.fixture(scope="module")
def client(cache, tmp_path_factory):
    """A 2-worker cluster, warmed by a one-chunk sweep: one worker compiles the tiny
    group's program and writes it to the cache; the other loads it instead of compiling
    at the same time (compiles are the slow part of these tests)."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        warm = SweepSpec(name="warm-up", base=BASE, grid={"objective.temperature": [0.2, 0.4, 0.6]})
        sweep.run(warm, out=tmp_path_factory.mktemp("warm") / "w", quiet=True,
                  backend=DaskBackend(client=c, cache=cache), max_batch=MAX_BATCH)
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "tiny"
    return sweep.run(tiny_sweep_spec(), out=out, max_batch=MAX_BATCH, quiet=True)


def assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    exact = [*BOOKKEEPING_COLUMNS, *CONFIG_COLUMNS]
    pd.testing.assert_frame_equal(a[exact].reset_index(drop=True), b[exact].reset_index(drop=True))
    metrics = [c for c in a.columns if c not in exact]
    np.testing.assert_allclose(a[metrics].to_numpy(float), b[metrics].to_numpy(float),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_dask_backend_gives_the_local_table(client, cache, local_table, tmp_path):
    backend = DaskBackend(client=client, cache=cache)
    df = sweep.run(tiny_sweep_spec(), out=tmp_path / "dask", backend=backend,
                   max_batch=MAX_BATCH, quiet=True)
    assert_same_table(df, local_table)
    manifest = df.attrs["manifest"]
    assert manifest["sessions"][-1]["backend"] == "dask"
    assert client.status == "running"  # a client passed in is left open


class FlakyBackend(DaskBackend):
    """Fails the first chunk that starts (once per marker file): raises, or kills its worker."""

    def __init__(self, marker, how, **kwargs):
        super().__init__(**kwargs)
        self.marker, self.how = str(marker), how

    def map_chunks(self, fn, tasks):
        marker, how = self.marker, self.how

        def flaky(task):  # a closure: shipped to the workers by value
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                return fn(task)
            os.close(fd)
            if how == "kill":
                os._exit(1)  # the worker process dies mid-chunk
            raise RuntimeError("transient failure")

        return super().map_chunks(flaky, tasks)


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_failed_chunk_is_retried_not_lost(client, cache, local_table, tmp_path, how):
    marker = tmp_path / "failed-once"
    workers = set(client.nthreads())
    backend = FlakyBackend(marker, how, client=client, cache=cache)
    df = sweep.run(tiny_sweep_spec(), out=tmp_path / how, backend=backend,
                   max_batch=MAX_BATCH, quiet=True)
    assert marker.exists()  # one chunk did fail on its first attempt
    if how == "kill":
        assert set(client.nthreads()) != workers  # its worker died (and is being replaced)
    assert_same_table(df, local_table)
    final = df[df["final"]]
    assert sorted(final["point"]) == list(range(8)) and final["config_hash"].is_unique


def test_cli_dask_without_extra_is_a_clear_error(monkeypatch, tmp_path, capsys):
    import builtins

    from clipsim.cli import main

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.startswith("dask"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    spec = tmp_path / "s.toml"
    spec.write_text('name = "s"\n[grid]\n"objective.temperature" = [0.1]\n')
    out = tmp_path / "never"
    assert main(["sweep", str(spec), "--out", str(out), "--backend", "dask", "--no-cache"]) == 2
    assert "clipsim[dask]" in capsys.readouterr().err
    assert not out.exists()


def test_compute_chunk_is_picklable_by_reference():
    import pickle

    assert pickle.loads(pickle.dumps(compute_chunk)) is compute_chunk
