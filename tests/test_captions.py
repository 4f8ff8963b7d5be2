"""Several captions per image: the data option, its batches and its exact E3 floor."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import clipsim
from clipsim.config import ConfigError, DataConfig, RunConfig
from clipsim.data import draw_pairs, get_latent_family, sample_caption_pairs
from clipsim.theory import caption_collision_floor, collision_floor, family_caption_floor
from clipsim.train.loop import batch_source, world_for


def _brute_force_floor(probs, m, n_images, b, trials, seed=0):
    """Mean over simulated (dataset, batch) draws of (1/B) sum_i log n_i, with its s.e."""
    rng = np.random.default_rng(seed)
    means = np.empty(trials)
    for t in range(trials):
        if probs is None:  # continuous latents: every image its own value
            image_latent = np.arange(n_images)
        else:
            image_latent = rng.choice(len(probs), size=n_images, p=probs)
        pair_latent = np.repeat(image_latent, m)
        batch = pair_latent[rng.choice(n_images * m, size=b, replace=False)]
        counts = (batch[:, None] == batch[None, :]).sum(1)
        means[t] = np.log(counts).mean()
    return means.mean(), means.std(ddof=1) / np.sqrt(trials)


@pytest.mark.parametrize("probs,m,n_images,b", [
    ([0.2] * 5, 3, 40, 16),
    ([0.5, 0.3, 0.15, 0.05], 5, 12, 20),
    (None, 5, 30, 32),
    (None, 2, 10, 20),
])
def test_caption_floor_matches_brute_force_simulation(probs, m, n_images, b):
    exact = caption_collision_floor(b, m, n_images, probs).value
    mean, se = _brute_force_floor(probs, m, n_images, b, trials=20_000)
    assert abs(exact - mean) <= 4 * se + 1e-12, (exact, mean, se)


def test_caption_floor_limits():
    # one caption per image and a large pool: the i.i.d. floor of E3
    assert np.isclose(caption_collision_floor(32, 1, 200_000, [0.1] * 10).value,
                      collision_floor("onehot", 32, num_concepts=10).value, rtol=1e-3)
    # continuous latents and one caption: no collisions at all
    assert caption_collision_floor(16, 1, 100).value == 0.0
    # one image, M captions, the whole pool in the batch: every pair collides with all
    assert np.isclose(caption_collision_floor(6, 6, 1).value, np.log(6))
    # more captions per image at a fixed number of pairs: a higher floor
    floors = [caption_collision_floor(64, m, 1280 // m, [1 / 32] * 32).value for m in (1, 2, 5)]
    assert floors[0] < floors[1] < floors[2]


def test_family_caption_floor_asks_the_family():
    cfg = DataConfig(family="onehot", num_concepts=8, captions_per_image=3)
    got = family_caption_floor(get_latent_family("onehot"), cfg, 16, 50).value
    assert np.isclose(got, caption_collision_floor(16, 3, 50, [1 / 8] * 8).value)
    gauss = DataConfig(family="gaussian", captions_per_image=3)
    assert np.isclose(family_caption_floor(get_latent_family("gaussian"), gauss, 16, 50).value,
                      caption_collision_floor(16, 3, 50).value)
    with pytest.raises(ValueError, match="batch_size"):
        caption_collision_floor(64, 2, 10)


def test_config_field_is_static_with_default_one():
    from clipsim.config import STATIC_FIELDS
    assert DataConfig().captions_per_image == 1
    assert "data.captions_per_image" in STATIC_FIELDS
    with pytest.raises(ConfigError, match="data.captions_per_image"):
        DataConfig(captions_per_image=0)


def test_each_image_carries_m_independent_captions():
    cfg = DataConfig(family="onehot", num_concepts=5, captions_per_image=3, omit_prob=0.3,
                     image_dim=16, text_dim=16, image_unique_dim=4, text_unique_dim=4)
    world = world_for(RunConfig.from_dict({"data": cfg.to_dict(), "eval": {"top_r": [1]}}))
    pairs = sample_caption_pairs(cfg, world, key=jax.random.key(0), num_images=7)
    assert pairs.x.shape == (21, 16) and pairs.y.shape == (21, 16)
    x, y, z = (np.asarray(a).reshape(7, 3, -1) for a in (pairs.x, pairs.y, pairs.z))
    assert np.all(x == x[:, :1]) and np.all(z == z[:, :1])        # one image, one latent
    assert not np.any(np.all(np.isclose(y, y[:, :1]), axis=-1)[:, 1:])  # captions differ
    batch = draw_pairs(pairs, key=jax.random.key(1), n=10)
    rows = {tuple(np.round(r, 6)) for r in np.asarray(batch.y)}
    assert len(rows) == 10                                          # without replacement


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_training_batches_come_from_the_pair_list():
    cfg = RunConfig.from_dict({
        "data": {"family": "onehot", "num_concepts": 5, "image_dim": 16, "text_dim": 16,
                 "image_unique_dim": 4, "text_unique_dim": 4, "captions_per_image": 4},
        "model": {"embed_dim": 4}, "eval": {"top_r": [1], "num_samples": 100},
        "train": {"steps": 20, "batch_size": 16, "num_train_batches": 4, "log_every": 10}})
    world, key = world_for(cfg), jax.random.key(0)
    batch_fn = batch_source(cfg, world, key)
    b0, b1 = batch_fn(0), batch_fn(1)
    assert b0.x.shape == (16, 16)
    assert not np.allclose(np.asarray(b0.y), np.asarray(b1.y))     # fresh draws per step
    result = clipsim.train(cfg)
    assert np.isfinite(result.history["loss"]).all()
    with pytest.raises(ValueError, match="num_train_batches"):
        batch_source(cfg.replace(**{"train.num_train_batches": None}), world, key)
    with pytest.raises(ValueError, match="captions_per_image"):
        batch_source(cfg.replace(**{"data.captions_per_image": 3}), world, key)
