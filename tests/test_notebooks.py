"""The notebooks under notebooks/ execute top to bottom, so they never rot.

Each notebook runs in a fresh ``python3`` kernel of this environment, with
``notebooks/`` as its working directory (as in Jupyter). The files on disk must
carry no outputs and no execution counts.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell; a whole notebook takes well under a minute


def test_the_five_notebooks_exist():
    names = [p.stem for p in PATHS]
    assert names == ["01_quickstart", "02_theory_tour", "03_sweeps", "04_extending",
                     "05_real_embeddings"]


def test_kernel_is_this_environment():
    """The ``python3`` kernel launches the interpreter running the tests."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    cmd = km.format_kernel_cmd()
    assert Path(cmd[0]).resolve() == Path(sys.executable).resolve(), cmd


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.slow  # a kernel per notebook; CI runs them (make test-slow)
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_executes(path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the failing cell
    elapsed = time.perf_counter() - start
    print(f"{path.name}: {elapsed:.1f} s")
