#!/usr/bin/env bash
# The wheel runs its own reproductions: build it, install it into a fresh venv,
# and from an empty folder train a shipped config and reproduce one result.
#
#   .ci/wheel_check.sh              dependencies seen from the project venv (no network)
#   WHEEL_DEPS=pypi .ci/wheel_check.sh   dependencies installed from the package registry
#
# PYTHON (default .venv/bin/python) builds the wheel and, in the default mode, lends
# the fresh venv its installed packages (clipsim itself is never taken from there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
start=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PY" -m pip wheel --no-deps --quiet --wheel-dir "$work/dist" .
wheel=$(ls "$work"/dist/clipsim-*.whl)
echo "built $(basename "$wheel") in $((SECONDS - start)) s"

"$PY" -m venv "$work/venv"
venv_py="$work/venv/bin/python"
if [[ "${WHEEL_DEPS:-venv}" == pypi ]]; then
    "$venv_py" -m pip install --quiet "$wheel"
else
    # A path line in a .pth file puts the project venv's packages on sys.path after the
    # fresh venv's own; .pth files inside that folder (the editable clipsim) are not run.
    deps=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    site=$("$venv_py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$deps" > "$site/zz_project_dependencies.pth"
    "$venv_py" -m pip install --quiet --no-deps --no-index "$wheel"
fi

run=$(mktemp -d)
cd "$run"
"$venv_py" - "$work/venv" <<'PY'
import sys
from pathlib import Path

import clipsim
import clipsim_experiments

venv = Path(sys.argv[1]).resolve()
for module in (clipsim, clipsim_experiments):
    path = Path(module.__file__).resolve()
    assert venv in path.parents, f"{module.__name__} imported from {path}, not from the wheel"
print(f"clipsim {clipsim.__version__} from {Path(clipsim.__file__).parent}")
PY
"$work/venv/bin/clipsim" train onehot_linear --out t --quiet --set train.steps=20
test -s t/metrics.json && test -s t/params.npz
"$work/venv/bin/clipsim" reproduce zero_shot_top_r --quick --out x --quiet
test -s x/zero_shot_top_r.json && test -s x/zero_shot_top_r.png && test -s x/report.md
"$venv_py" -c 'import json; r = json.load(open("x/zero_shot_top_r.json")); print("record:", r["prediction"], r["verdict"], r["versions"]["clipsim"])'
cd / && rm -rf "$run"
echo "wheel check passed in $((SECONDS - start)) s"
