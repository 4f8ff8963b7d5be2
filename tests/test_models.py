"""Encoders: shapes, normalization, biases and initialization scale."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from clipsim.config import ModelConfig
from clipsim.models import encode, init_encoder, init_encoders

KEY = jax.random.key(0)


@pytest.mark.parametrize("kind", ["linear", "mlp2"])
@pytest.mark.parametrize("normalize", [True, False])
def test_shapes_and_normalization(kind, normalize):
    cfg = ModelConfig(kind=kind, embed_dim=5, hidden_dim=7, normalize=normalize)
    params = init_encoders(cfg, key=KEY, image_dim=9, text_dim=11)
    x = jax.random.normal(KEY, (13, 9))
    e = encode(params["image"], x, cfg=cfg)
    assert e.shape == (13, 5)
    norms = np.linalg.norm(e, axis=1)
    if normalize:
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    else:
        assert not np.allclose(norms, 1.0)


def test_linear_encoder_is_w_times_x():
    cfg = ModelConfig(kind="linear", embed_dim=3, normalize=False)
    p = init_encoder(cfg, key=KEY, in_dim=4)
    x = np.random.default_rng(0).normal(size=(6, 4))
    np.testing.assert_allclose(encode(p, x, cfg=cfg), x @ np.asarray(p["w"]).T, rtol=1e-5)


def test_mlp2_matches_reference_and_bias_switch():
    cfg = ModelConfig(kind="mlp2", embed_dim=3, hidden_dim=5, normalize=False)
    p = init_encoder(cfg, key=KEY, in_dim=4)
    p = {k: v + 0.1 for k, v in p.items()}  # nonzero biases
    x = np.random.default_rng(1).normal(size=(6, 4))
    ref = np.maximum(x @ np.asarray(p["w1"]).T + np.asarray(p["b1"]), 0)
    ref = ref @ np.asarray(p["w2"]).T + np.asarray(p["b2"])
    np.testing.assert_allclose(encode(p, x, cfg=cfg), ref, rtol=1e-5)
    nobias = init_encoder(ModelConfig(kind="mlp2", bias=False), key=KEY, in_dim=4)
    assert set(nobias) == {"w1", "w2"}


def test_init_scale_sets_weight_std():
    for scale in (0.1, 2.0):
        p = init_encoder(ModelConfig(embed_dim=200, init_scale=scale), key=KEY, in_dim=400)
        assert np.std(p["w"]) == pytest.approx(scale / np.sqrt(400), rel=0.02)


def test_zero_input_is_finite_after_normalization():
    cfg = ModelConfig(embed_dim=4)
    p = init_encoder(cfg, key=KEY, in_dim=3)
    assert np.all(np.isfinite(encode(p, np.zeros((2, 3)), cfg=cfg)))
