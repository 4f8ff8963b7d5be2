#!/usr/bin/env bash
# The declared lower bounds are true: install every dependency of pyproject.toml at
# its minimum (">=X" pinned to "==X", binary wheels only) into a scratch venv, then
# import clipsim and train, evaluate, sweep, save and load one tiny run.
# Needs the package registry (pip's cache makes reruns fast).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
start=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pins=$("$PY" - <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for dep in deps:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([^,;\s]+)\s*", dep)
    if not match:
        raise SystemExit(f"dependency {dep!r} has no plain '>=' lower bound")
    print(f"{match.group(1)}=={match.group(2)}")
PY
)
echo "minimum versions: $(echo $pins)"
"$PY" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --only-binary :all: $pins
"$work/venv/bin/python" -m pip install --quiet --no-deps .
"$work/venv/bin/python" -m pip check
(cd "$work" && "$work/venv/bin/python" "$OLDPWD/.ci/min_versions_check.py" "$work/out")
echo "minimum versions check passed in $((SECONDS - start)) s"
