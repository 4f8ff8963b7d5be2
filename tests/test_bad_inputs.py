"""A corpus of bad inputs: each is refused before any compute, with one line naming it.

Every case builds its input (a file in a fresh folder, a dict, a spec), then calls
the API and asserts: the documented exception type (``ConfigError``, or its
subclass ``SpecError`` for sweep specs), a one-line message naming the field or
path, and that nothing was written (the folder holds exactly what the case put
there; sweeps are run with an ``out`` folder that must not appear).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clipsim import sweep
from clipsim.config import ConfigError, RunConfig
from clipsim.sweep.spec import SpecError, SweepSpec
from tests.conftest import tiny_config

BIG = 2**31  # one past the largest seed


def _file(name: str, text: str | bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path
    return make


def _load(name: str, text: str | bytes):
    make = _file(name, text)
    return lambda folder: RunConfig.load(make(folder))


def _load_str(name: str, text: str | bytes, given: str):
    """Write ``name``, then load the string ``given`` (relative to the folder)."""
    make = _file(name, text)

    def call(folder: Path):
        make(folder)
        return RunConfig.load(str(folder / given))
    return call


def _dict(values):
    return lambda folder: RunConfig.from_dict(values)


def _replace(**dotted):
    return lambda folder: tiny_config().replace(**dotted)


def _sweep_dict(values):
    return lambda folder: sweep.run(values, out=folder / "out", quiet=True)


def _sweep_file(name: str, text: str | bytes, given: str | None = None):
    make = _file(name, text) if text is not None else None

    def call(folder: Path):
        if make is not None:
            make(folder)
        return sweep.run(str(folder / (given or name)), out=folder / "out", quiet=True)
    return call


TINY = {"data": {"num_concepts": 4, "image_dim": 8, "text_dim": 8, "image_unique_dim": 2,
                 "text_unique_dim": 2}, "model": {"embed_dim": 4},
        "train": {"steps": 20, "log_every": 10}, "eval": {"top_r": [1, 2]}}
GOOD_SPEC = '[base]\n"train.steps" = 20\n"train.log_every" = 10\n'

# (id, call(folder), exception type, text the one-line message must contain)
CASES: list[tuple[str, Callable[[Path], object], type[Exception], str]] = [
    # ---- config files
    ("config-missing", lambda f: RunConfig.load(f / "nope.toml"), ConfigError, "nope.toml"),
    ("config-directory", lambda f: RunConfig.load(f), ConfigError, "is a directory"),
    ("config-empty", _load("c.toml", ""), ConfigError, "c.toml' is empty"),
    ("config-only-comments", _load("c.toml", "# nothing\n\n"), ConfigError, "c.toml' is empty"),
    ("config-bad-toml", _load("c.toml", "[data\nfamily = 1"), ConfigError, "c.toml"),
    ("config-empty-json", _load("c.json", " "), ConfigError, "c.json' is empty"),
    ("config-bad-json", _load("c.json", "{"), ConfigError, "c.json' is not valid JSON"),
    ("config-binary", _load("c.toml", b"\xff\xfe\x00bad"), ConfigError, "c.toml"),
    ("config-without-suffix", _load_str("c.toml", "seed = 1\n", "c"), ConfigError,
     "did you mean"),
    ("config-unknown-section", _load("c.toml", "[optimiser]\nlr = 1\n"), ConfigError,
     "optimiser"),
    ("config-section-as-value", _load("c.toml", "model = 3\n"), ConfigError,
     "model is a config section"),
    ("config-float-seed", _load("c.toml", "seed = 1.0\n"), ConfigError, "seed"),
    ("config-misspelled-field", _load("c.toml", "[objective]\ntemprature = 0.1\n"),
     ConfigError, "did you mean 'temperature'"),
    ("config-text-empty", lambda f: RunConfig.from_toml("# only a comment = no\n"),
     ConfigError, "config text is empty"),
    # ---- RunConfig.from_dict
    ("seed-too-large", _dict({**TINY, "seed": BIG}), ConfigError, "seed"),
    ("seed-negative", _dict({**TINY, "seed": -1}), ConfigError, "seed"),
    ("seed-float", _dict({**TINY, "seed": 1.0}), ConfigError, "seed = 1.0"),
    ("seed-bool", _dict({**TINY, "seed": True}), ConfigError, "seed"),
    ("seed-string", _dict({**TINY, "seed": "0"}), ConfigError, "seed"),
    ("data-seed-2**32", _dict({**TINY, "data.seed": 2**32}), ConfigError, "data.seed"),
    ("class-probs-scalar", _dict({**TINY, "data.class_probs": 0.25}), ConfigError,
     "data.class_probs"),
    ("class-probs-length", _dict({**TINY, "data.class_probs": [0.5, 0.5]}), ConfigError,
     "data.class_probs"),
    ("class-probs-sum", _dict({**TINY, "data.class_probs": [0.3, 0.3, 0.3, 0.3]}),
     ConfigError, "must sum to 1"),
    ("class-probs-negative", _dict({**TINY, "data.class_probs": [1.2, -0.2, 0.0, 0.0]}),
     ConfigError, "data.class_probs"),
    ("class-probs-strings", _dict({**TINY, "data.class_probs": ["a", "b", "c", "d"]}),
     ConfigError, "data.class_probs"),
    ("class-probs-sparse", _dict({**TINY, "data.family": "sparse",
                                  "data.class_probs": [0.25] * 4}), ConfigError,
     "data.class_probs"),
    ("test-probs-scalar", _dict({**TINY, "eval.test_class_probs": 0.25}), ConfigError,
     "eval.test_class_probs"),
    ("test-probs-length", _dict({**TINY, "eval.test_class_probs": [0.5, 0.5]}), ConfigError,
     "eval.test_class_probs"),
    ("test-probs-sum", _dict({**TINY, "eval.test_class_probs": [0.5] * 4}), ConfigError,
     "eval.test_class_probs"),
    ("steps-huge", _dict({**TINY, "train.steps": 10**11, "train.log_every": 1}), ConfigError,
     "train.steps"),
    ("steps-float", _dict({**TINY, "train.steps": 1e3}), ConfigError, "train.steps"),
    ("batch-numpy-float", _dict({**TINY, "train.batch_size": np.float64(16.0)}), ConfigError,
     "train.batch_size"),
    ("top-r-above-classes", _dict({**TINY, "eval.top_r": [1, 5]}), ConfigError,
     "eval.top_r"),
    ("top-r-empty", _dict({**TINY, "eval.top_r": []}), ConfigError, "eval.top_r"),
    ("top-r-zero", _dict({**TINY, "eval.top_r": [0]}), ConfigError, "eval.top_r"),
    ("embed-dim-above-input", _dict({**TINY, "model.embed_dim": 9}), ConfigError,
     "model.embed_dim"),
    ("family-misspelled", _dict({**TINY, "data.family": "onehto"}), ConfigError,
     "did you mean 'onehot'"),
    ("objective-misspelled", _dict({**TINY, "objective.name": "sigclip"}), ConfigError,
     "objective.name"),
    ("one-concept", _dict({**TINY, "data.num_concepts": 1, "data.image_dim": 8}),
     ConfigError, "data.num_concepts"),
    ("one-gaussian-class", _dict({**TINY, "data.family": "gaussian", "data.num_classes": 1}),
     ConfigError, "data.num_classes"),
    ("dtype-float16", _dict({**TINY, "train.dtype": "float16"}), ConfigError, "train.dtype"),
    ("bias-string", _dict({**TINY, "model.bias": "yes"}), ConfigError, "model.bias"),
    ("noise-nan", _dict({**TINY, "data.noise_scale": float("nan")}), ConfigError,
     "data.noise_scale"),
    ("sparse-active-above-k", _dict({**TINY, "data.family": "sparse", "data.sparse_active": 5}),
     ConfigError, "data.sparse_active"),
    ("not-a-table", _dict([1, 2]), ConfigError, "table"),
    ("section-misspelled", _dict({"modle": {"embed_dim": 4}}), ConfigError,
     "did you mean 'model'"),
    # ---- RunConfig.replace (the --set path)
    ("set-section", _replace(model=3), ConfigError, "model is a config section, not a field"),
    ("set-unknown", _replace(**{"train.learning_rat": 0.1}), ConfigError,
     "did you mean 'train.learning_rate'"),
    ("set-negative-tau", _replace(**{"objective.temperature": -1.0}), ConfigError,
     "objective.temperature"),
    ("set-huge-dim", _replace(**{"data.image_dim": 2**40}), ConfigError, "data.image_dim"),
    ("set-seed-float", _replace(seed=2.5), ConfigError, "seed"),
    # ---- sweep specs
    ("sweep-path-no-suffix", _sweep_file("s.toml", None, "runs/s"), SpecError, "runs/s"),
    ("sweep-suffix-hint", _sweep_file("s.toml", GOOD_SPEC, "s"), SpecError,
     "did you mean"),
    ("sweep-directory", lambda f: sweep.run(str(f), out=f / "out", quiet=True), SpecError,
     "is a directory"),
    ("sweep-empty-file", _sweep_file("s.toml", ""), SpecError, "s.toml' is empty"),
    ("sweep-bad-toml", _sweep_file("s.toml", "[grid\n"), SpecError, "s.toml"),
    ("sweep-unknown-key", _sweep_dict({"name": "s", "gird": {}}), SpecError,
     "did you mean 'grid'"),
    ("sweep-grid-unknown-field", _sweep_dict({"name": "s", "grid": {
        "objective.temprature": [0.1]}}), SpecError, "objective.temprature"),
    ("sweep-grid-not-list", _sweep_dict({"name": "s", "grid": {
        "objective.temperature": 0.1}}), SpecError, "objective.temperature"),
    ("sweep-seed-2**32", _sweep_dict({"name": "s", "seeds": [0, 2**32]}), SpecError, "seeds"),
    ("sweep-seeds-zero", _sweep_dict({"name": "s", "seeds": 0}), SpecError, "seeds"),
    ("sweep-seeds-float", _sweep_dict({"name": "s", "seeds": 1.5}), SpecError, "seeds"),
    ("sweep-seeds-repeated", _sweep_dict({"name": "s", "seeds": [1, 1]}), SpecError, "seeds"),
    ("sweep-seeds-huge-count", _sweep_dict({"name": "s", "seeds": 10**9}), SpecError, "seeds"),
    ("sweep-zip-lengths", _sweep_dict({"name": "s", "zip": {
        "objective.temperature": [0.1, 0.2], "train.learning_rate": [0.1]}}), SpecError,
     "objective.temperature"),
    ("sweep-bad-point", _sweep_dict({"name": "s", "base": TINY, "grid": {
        "objective.temperature": [0.1, -1.0]}}), SpecError, "objective.temperature"),
    ("sweep-eval-unknown", _sweep_dict({"name": "s", "eval": {"num_sample": 10}}), SpecError,
     "eval.num_sample"),
    ("sweep-base-unknown", _sweep_dict({"name": "s", "base": {"model.embed": 4}}), SpecError,
     "model.embed"),
    ("sweep-base-top-r", _sweep_dict({"name": "s", "base": {**TINY, "eval": {"top_r": [9]}}}),
     SpecError, "eval.top_r"),
    ("sweep-seed-field", _sweep_dict({"name": "s", "grid": {"seed": [0, 1]}}), SpecError,
     "seed"),
    ("sweep-no-name", lambda f: SweepSpec.from_toml('[grid]\n"seed" = [1]\n'), SpecError,
     "name"),
]


@pytest.mark.parametrize(("case", "call", "error", "names"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_one_line_naming_it(tmp_path, case, call, error, names):
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(error) as info:
        call(work)
    message = str(info.value)
    assert "\n" not in message, message
    assert names in message, message
    # nothing written: the folder holds only the input the case itself put there
    entries = {p.relative_to(work).as_posix() for p in work.rglob("*")}
    assert entries <= {"c.toml", "c.json", "s.toml"}, f"{case}: wrote {sorted(entries)}"


def test_the_corpus_is_large_and_covers_every_surface():
    ids = [c[0] for c in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
    for prefix in ("config-", "seed-", "set-", "sweep-"):
        assert any(i.startswith(prefix) for i in ids), prefix


def test_numpy_integers_are_accepted_as_seeds_and_counts():
    cfg = RunConfig.from_dict({**TINY, "seed": np.int64(3), "data.seed": np.int32(4),
                               "train.steps": np.int64(20)})
    assert (cfg.seed, cfg.data.seed, cfg.train.steps) == (3, 4, 20)
    assert type(cfg.seed) is int and type(cfg.train.steps) is int
    assert cfg.hash() == RunConfig.from_dict({**TINY, "seed": 3, "data.seed": 4}).hash()
    spec = SweepSpec(name="s", base=cfg, seeds=[np.int64(0), np.int64(2**31 - 1)])
    assert spec.seeds == (0, 2**31 - 1)
