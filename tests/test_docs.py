"""Documentation checks: docstrings of the public API, the API page, and doc links.

Every name in the ``__all__`` of a public module must

- be listed in that module's section of ``docs/api.md`` (so the page cannot rot),
- if it is a function or class, have a docstring whose first line is a summary;
  functions need an ``Args:`` section when they take arguments and a
  ``Returns:`` (or ``Yields:``) section unless they return None;
- if it is a loss or a metric, state its reduction (mean, sum, median, or none).

Constants (tuples, dicts, numbers) cannot carry docstrings; the API page
describes them. Every ``clipsim.…`` name and every ``tests/…::test_…`` reference
in ``docs/*.md`` must exist.

The docs stand alone: nothing under README.md, docs/, notebooks/, clipsim/ or
experiments/ points to a specification file outside the repository, and the
paper is cited (README and ``CITATION.cff``).
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API_PAGE = DOCS / "api.md"
PAGES = ("theory.md", "figures.md", "howto.md", "api.md", "glossary.md")

MODULES = [
    "clipsim",
    "clipsim.config",
    "clipsim.data",
    "clipsim.models",
    "clipsim.objectives",
    "clipsim.train",
    "clipsim.evaluation",
    "clipsim.metrics",
    "clipsim.theory",
    "clipsim.theory.report",
    "clipsim.plots",
    "clipsim.sweep",
    "clipsim.io",
    "clipsim.experiment",
    "clipsim.reproduce",
    "clipsim.runtime",
]


def _modules() -> list[str]:
    present = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:  # an optional subpackage not written yet
            if err.name != name:
                raise
            continue
        present.append(name)
    return present


def _public(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    return [(name, getattr(module, name)) for name in module.__all__]


def _documented_objects() -> list[tuple[str, str, object]]:
    out, seen = [], set()
    for module_name in _modules():
        for name, obj in _public(module_name):
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if id(obj) in seen:  # re-exports are checked once, where first met
                continue
            seen.add(id(obj))
            out.append((module_name, name, obj))
    return out


OBJECTS = _documented_objects()


def _sections(text: str) -> dict[str, str]:
    """``## `module` `` headings of the API page -> the text of their section."""
    parts = re.split(r"^## `([\w.]+)`\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _table_names(section: str) -> list[str]:
    return re.findall(r"^\| `([\w.]+)` \|", section, flags=re.M)


# --------------------------------------------------------------------------- the API page
@pytest.mark.parametrize("module_name", _modules())
def test_every_public_name_is_on_the_api_page(module_name):
    sections = _sections(API_PAGE.read_text())
    assert module_name in sections, f"docs/api.md has no section ## `{module_name}`"
    listed = set(_table_names(sections[module_name]))
    exported = {name for name, _ in _public(module_name)}
    missing = sorted(exported - listed)
    assert not missing, f"docs/api.md, section {module_name}: add {missing}"
    stale = sorted(listed - exported)
    assert not stale, f"docs/api.md, section {module_name}: {stale} are not in __all__"


def test_api_page_has_no_section_for_a_missing_module():
    for module_name in _sections(API_PAGE.read_text()):
        importlib.import_module(module_name)


# --------------------------------------------------------------------------- docstrings
def _has_section(doc: str, *names: str) -> bool:
    return any(re.search(rf"^{name}:", doc, flags=re.M) for name in names)


def _takes_arguments(fn) -> bool:
    params = inspect.signature(fn).parameters
    return any(p not in ("self", "cls") for p in params)


def _returns_none(fn) -> bool:
    return inspect.signature(fn).return_annotation in (None, "None")


@pytest.mark.parametrize(("module_name", "name", "obj"), OBJECTS,
                         ids=[f"{m}.{n}" for m, n, _ in OBJECTS])
def test_public_docstrings_have_the_required_parts(module_name, name, obj):
    doc = inspect.getdoc(obj) or ""
    where = f"{module_name}.{name}"
    summary = doc.split("\n", 1)[0].strip()
    assert summary, f"{where} has no one-line summary"
    if inspect.isclass(obj):
        return
    if _takes_arguments(obj):
        assert _has_section(doc, "Args"), f"{where}: docstring lacks an Args: section"
    if not _returns_none(obj):
        assert _has_section(doc, "Returns", "Yields"), f"{where}: docstring lacks Returns:"


def _losses_and_metrics() -> list[tuple[str, object]]:
    from clipsim import metrics, objectives

    out = [(f"objectives.{name}", obj.loss_fn) for name, obj in objectives.OBJECTIVES.items()]
    out += [("objectives.multimodal_clip", objectives.multimodal_clip),
            ("objectives.clip_loss_from_scores", objectives.clip_loss_from_scores),
            ("objectives.batch_stats", objectives.batch_stats)]
    out += [(f"metrics.{name}", obj) for name, obj in _public("clipsim.metrics")
            if inspect.isfunction(obj) and obj is not metrics.l2_normalize]
    return out


@pytest.mark.parametrize(("name", "fn"), _losses_and_metrics(),
                         ids=[n for n, _ in _losses_and_metrics()])
def test_losses_and_metrics_state_their_reduction(name, fn):
    doc = (inspect.getdoc(fn) or "").lower()
    assert "reduction" in doc, f"{name}: state the reduction (mean, sum, median, or none)"


# --------------------------------------------------------------------------- doc pages
def test_pages_exist_and_the_readme_links_them():
    readme = (ROOT / "README.md").read_text()
    for page in PAGES:
        assert (DOCS / page).is_file(), f"docs/{page} is missing"
        assert f"docs/{page}" in readme, f"README.md does not link docs/{page}"


def _resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted`` and walk the remaining attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("page", PAGES)
def test_names_cited_in_the_docs_exist(page):
    text = (DOCS / page).read_text()
    names = set(re.findall(r"\bclipsim(?:\.[A-Za-z_]\w*)+", text))
    missing = []
    for dotted in sorted(names):
        try:
            _resolve(dotted)
        except (ModuleNotFoundError, AttributeError):
            missing.append(dotted)
    assert not missing, f"docs/{page} cites names that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_tests_cited_in_the_docs_exist(page):
    text = (DOCS / page).read_text()
    missing = []
    for path, func in re.findall(r"(tests/test_\w+\.py)::(test_\w+)", text):
        source = ROOT / path
        if not source.is_file() or not re.search(rf"^def {func}\(", source.read_text(),
                                                 flags=re.M):
            missing.append(f"{path}::{func}")
    assert not missing, f"docs/{page} cites tests that do not exist: {missing}"


# --------------------------------------------------------------------------- standing alone
# Names of files that are not part of the repository; the docs must not depend on them.
OUTSIDE_FILES = re.compile(r"THEORY\.md|DESIGN\.md|\.\./shared")
STANDALONE_ROOTS = ("README.md", "docs", "notebooks", "clipsim", "experiments")
TEXT_SUFFIXES = {".md", ".py", ".ipynb", ".toml", ".txt", ".cff", ".rst", ".cfg", ".json"}


def _text_files() -> list[Path]:
    out = []
    for root in STANDALONE_ROOTS:
        path = ROOT / root
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        out += [f for f in candidates if f.is_file() and f.suffix in TEXT_SUFFIXES
                and "__pycache__" not in f.parts and ".ipynb_checkpoints" not in f.parts]
    return out


def test_nothing_refers_to_files_outside_the_repository():
    hits = []
    for path in _text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE_FILES.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not hits, "point into docs/ instead (e.g. docs/theory.md, E3):\n" + "\n".join(hits)


def test_the_outside_file_check_can_fail(tmp_path):
    assert OUTSIDE_FILES.search("see THEORY.md E3")
    assert OUTSIDE_FILES.search("the conventions of DESIGN.md")
    assert OUTSIDE_FILES.search("../shared/tools")
    assert not OUTSIDE_FILES.search("see docs/theory.md, E3")
    assert _text_files(), "the scan found no files"


PAPER_TITLE = "Understanding Transferable Representation Learning and Zero-shot Transfer in"
PAPER_AUTHORS = ("Zixiang", "Yihe", "Yuanzhi", "Quanquan")


def test_the_paper_is_cited():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^## Citation\s*$", readme, flags=re.M), "README.md has no Citation section"
    bibtex = re.search(r"```bibtex\n(.*?)```", readme, flags=re.S)
    assert bibtex, "README.md has no BibTeX block"
    entry = bibtex.group(1)
    assert entry.lstrip().startswith("@inproceedings{")
    assert PAPER_TITLE in entry and "2310.00927" in entry and "2024" in entry
    for name in ("Chen", "Deng", "Li", "Gu"):
        assert name in entry
    cff = (ROOT / "CITATION.cff").read_text()
    assert re.search(r"^cff-version: 1\.2\.0$", cff, flags=re.M)
    preferred = cff.split("preferred-citation:", 1)
    assert len(preferred) == 2, "CITATION.cff has no preferred-citation"
    body = preferred[1]
    assert "type: conference-paper" in body and PAPER_TITLE in body
    assert "year: 2024" in body and "2310.00927" in body and "ICLR" in body
    for given in PAPER_AUTHORS:
        assert f"given-names: {given}" in body


def test_figure_map_covers_every_item():
    text = (DOCS / "figures.md").read_text()
    rows = set(re.findall(r"^\| ([EPTMX]\d) \|", text, flags=re.M))
    expected = {f"E{i}" for i in range(1, 9)} | {f"P{i}" for i in range(1, 9)}
    from clipsim.reproduce import EXPERIMENTS  # every experiment's record names its item

    expected |= {json.loads((DOCS / "figures" / f"{n}.json").read_text())["prediction"]
                 for n in EXPERIMENTS}
    assert rows == expected, f"docs/figures.md rows: missing {sorted(expected - rows)}"
    theory = (DOCS / "theory.md").read_text()
    for i in range(1, 9):
        assert re.search(rf"^### E{i}\. ", theory, flags=re.M), f"docs/theory.md lacks E{i}"
