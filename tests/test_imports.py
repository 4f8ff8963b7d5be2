"""The import graph of clipsim flows one way, and the package ships what it imports.

Layers, low to high (a module may import its own layer or lower ones):
config, runtime 0; data, models, objectives, metrics 1; train 2; theory, evaluation, analysis 3;
sweep, plots, io 4; experiment, reproduce 5; cli 6. Read from the source (AST),
so imports inside functions count too.
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "clipsim"

LAYERS = {"config": 0, "runtime": 0, "data": 1, "models": 1, "objectives": 1, "metrics": 1,
          "train": 2, "theory": 3, "evaluation": 3, "analysis": 3, "sweep": 4, "plots": 4, "io": 4,
          "experiment": 5, "reproduce": 5, "cli": 6}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the clipsim modules it imports (anywhere in its body)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [module] + [f"{module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] != "clipsim":
                    continue
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges[name].add(target)
    return edges


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else None


def test_every_top_level_module_has_a_layer():
    unknown = sorted({m.split(".")[1] for m in _modules() if "." in m} - set(LAYERS))
    assert not unknown, f"give {unknown} a layer in LAYERS (tests/test_imports.py)"


def test_no_module_imports_a_higher_layer():
    upward = sorted(f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
                    for a, targets in _imports(_modules()).items() for b in targets
                    if _layer(a) is not None and _layer(b) is not None and _layer(b) > _layer(a))
    assert not upward, "\n".join(upward)


def test_import_graph_has_no_cycle():
    mods = _modules()
    faces = {m for m, p in mods.items() if p.name == "__init__.py"}  # re-exports only
    graph = {a: {b for b in bs if b not in faces}
             for a, bs in _imports(mods).items() if a not in faces}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_nothing_outside_the_cli_imports_it():
    offenders = sorted(a for a, bs in _imports(_modules()).items()
                       if not a.startswith("clipsim.cli") and any(b.startswith("clipsim.cli")
                                                                   for b in bs))
    experiments = sorted(p.name for p in (ROOT / "experiments").glob("*.py")
                         if "clipsim.cli" in p.read_text())
    assert not offenders and not experiments, offenders + experiments


def test_the_wheel_lists_every_package_and_ships_the_experiments():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {".".join(p.parent.relative_to(ROOT).parts)
                for p in PACKAGE.rglob("__init__.py")}
    shipped = {"clipsim_experiments", "clipsim_experiments.configs", "clipsim_experiments.sweeps"}
    assert set(setuptools["packages"]) == packages | shipped
    assert setuptools["package-dir"]["clipsim_experiments"] == "experiments"
    assert (ROOT / "experiments" / "__init__.py").is_file()
    for kind in ("configs", "sweeps"):
        assert setuptools["package-data"][f"clipsim_experiments.{kind}"] == ["*.toml"]


def test_experiments_import_as_the_installed_package():
    import importlib.util

    from clipsim.reproduce import EXPERIMENTS, experiments_dir, shipped_files

    assert {p.name for p in experiments_dir().glob("*.py")} == {
        p.name for p in (ROOT / "experiments").glob("*.py")}
    for name in EXPERIMENTS:  # found by name, as clipsim.reproduce.load_experiment imports them
        spec = importlib.util.find_spec(f"clipsim_experiments.{name}")
        assert spec is not None and Path(spec.origin).parent == experiments_dir(), name
    assert "onehot_linear" in shipped_files("configs")
    assert "quick_tau" in shipped_files("sweeps")
