"""Config validation, round trips, hashing and the static/dynamic split."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import pytest

from clipsim.config import (
    ALL_FIELDS,
    DYNAMIC_FIELDS,
    STATIC_FIELDS,
    ConfigError,
    RunConfig,
    static_signature,
)
from tests.conftest import learning_config


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("objective.temperature", -0.1, "(0.0, inf]"),
        ("objective.temperature", 0.0, "(0.0, inf]"),
        ("model.embed_dim", 0, "[1, 2147483647]"),
        ("train.batch_size", 1, "[2, 2147483647]"),
        ("objective.name", "infonce++", "'clip'"),
        ("data.family", "poisson", "'onehot'"),
        ("data.omit_prob", 1.5, "[0.0, 1.0]"),
        ("data.omit_prob", -0.01, "[0.0, 1.0]"),
        ("data.noise_scale", math.nan, "NaN"),
        ("train.learning_rate", math.inf, "NaN or inf"),
        ("objective.reg_weight", math.nan, "NaN"),
        ("train.log_every", 7, "divide"),
        ("data.image_dim", 4, "num_concepts + image_unique_dim"),
        ("model.kind", "transformer", "'linear'"),
    ],
)
def test_validation_names_field_value_and_range(field, value, expected):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({field: value})
    message = str(info.value)
    assert message.startswith(field), message
    assert repr(value) in message or str(value) in message
    assert expected in message


def test_unknown_fields_and_sections_are_rejected():
    with pytest.raises(ConfigError, match=r"objective\.temprature is not a known field"):
        RunConfig.from_dict({"objective": {"temprature": 0.1}})
    with pytest.raises(ConfigError, match="optimiser is not a known config section"):
        RunConfig.from_dict({"optimiser": {"lr": 1}})
    with pytest.raises(ConfigError, match="train.lr is not a known field"):
        RunConfig().replace(**{"train.lr": 0.1})


def test_none_for_a_dynamic_field_is_rejected():
    with pytest.raises(ConfigError, match="objective.temperature = None"):
        RunConfig.from_json(json.dumps({"objective": {"temperature": None}}))


def test_bad_file_contents_give_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[objective\nname = 'clip'")
    with pytest.raises(ConfigError, match="not valid TOML"):
        RunConfig.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        RunConfig.load(tmp_path / "missing.toml")


def test_toml_and_json_round_trip():
    cfg = learning_config().replace(**{
        "data.class_probs": [0.5] + [0.5 / 9] * 9, "eval.top_r": [1, 2], "seed": 7,
        "train.num_train_batches": 3})
    assert RunConfig.from_toml(cfg.to_toml()) == cfg
    assert RunConfig.from_json(cfg.to_json()) == cfg
    assert RunConfig.from_dict(json.loads(cfg.to_json())).hash() == cfg.hash()


def test_hash_is_stable_and_sensitive():
    a = learning_config()
    b = RunConfig.from_toml(a.to_toml())
    assert a.hash() == b.hash()
    assert len(a.hash()) == 12
    assert a.replace(**{"objective.temperature": 0.31}).hash() != a.hash()
    assert a.replace(seed=1).hash() != a.hash()


def test_fields_are_split_into_static_and_dynamic():
    assert set(DYNAMIC_FIELDS).isdisjoint(STATIC_FIELDS)
    assert set(ALL_FIELDS) == set(DYNAMIC_FIELDS) | set(STATIC_FIELDS)
    for name in ("seed", "objective.temperature", "objective.reg_weight",
                 "train.learning_rate", "data.noise_scale", "data.omit_prob"):
        assert name in DYNAMIC_FIELDS
    for name in ("train.batch_size", "train.steps", "model.embed_dim", "model.kind",
                 "objective.name", "data.family"):
        assert name in STATIC_FIELDS


def test_static_signature_separates_programs():
    cfg = learning_config()
    dyn = cfg.replace(**{"objective.temperature": 0.05, "seed": 3, "data.noise_scale": 0.2})
    assert static_signature(dyn) == static_signature(cfg)
    stat = cfg.replace(**{"train.batch_size": 64})
    assert static_signature(stat) != static_signature(cfg)
    # every leaf of the pytree is a dynamic field, in a fixed order
    assert len(jax.tree.leaves(cfg)) == len(DYNAMIC_FIELDS)


def test_stacked_configs_vmap_over_dynamic_fields():
    cfgs = [learning_config().replace(**{"objective.temperature": t}) for t in (0.1, 0.2, 0.4)]
    stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *cfgs)
    doubled = jax.vmap(lambda c: 2 * c.objective.temperature)(stacked)
    assert doubled.tolist() == pytest.approx([0.2, 0.4, 0.8])


def test_one_rule_tells_a_toml_path_from_toml_text(tmp_path):
    from clipsim.config import read_toml
    from clipsim.sweep.spec import SpecError, SweepSpec

    plain = tmp_path / "spec_without_suffix"
    plain.write_text('name = "from_file"\nseeds = 3\n')
    assert read_toml(str(plain)) == ({"name": "from_file", "seeds": 3}, plain)
    assert read_toml("seed = 3") == ({"seed": 3}, None)
    assert read_toml('name = "x"\n[grid]\n')[1] is None
    assert SweepSpec.from_toml(str(plain)).name == "from_file"
    assert SweepSpec.from_toml(plain).name == "from_file"
    with pytest.raises(SpecError, match="sweep file .*missing_spec' does not exist"):
        SweepSpec.from_toml(str(tmp_path / "missing_spec"))
    with pytest.raises(ConfigError, match="config file .*missing' does not exist"):
        RunConfig.from_toml(str(tmp_path / "missing"))


def test_registries_are_the_single_source_of_names():
    from clipsim import config, data, objectives

    assert config.OBJECTIVES is objectives.OBJECTIVES
    assert config.LATENT_FAMILIES is data.LATENT_FAMILIES
    assert not hasattr(config, "OBJECTIVE_NAMES")
    for name in config.OBJECTIVES:
        RunConfig.from_dict({"objective.name": name})
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        objectives.register("clip", objectives.clip)


def test_config_hash_covers_only_non_default_fields():
    """A field added later (at its default) must not change existing hashes or stored runs."""
    import hashlib

    from clipsim.config import RunConfig

    assert RunConfig().hash() == hashlib.sha256(b"{}").hexdigest()[:12]
    cfg = RunConfig().replace(**{"objective.temperature": 0.2, "seed": 3})
    expected = hashlib.sha256(b'{"objective.temperature":0.2,"seed":3}').hexdigest()[:12]
    assert cfg.hash() == expected
    assert cfg.hash() != cfg.replace(seed=4).hash()
