"""Several views of the same latents: pairs reused, extra views from their own worlds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clipsim import data
from clipsim.config import DataConfig
from clipsim.data import multiview
from clipsim.data.multiview import view_dims

# jitted once per shape: eager op-by-op dispatch would dominate these tests
make_worlds = jax.jit(multiview.make_worlds, static_argnames="num_views")
sample = jax.jit(multiview.sample_views, static_argnames="n")
sample_pairs = jax.jit(data.sample_pairs, static_argnames="n")
prompts = jax.jit(data.prompts, static_argnames="num_prompts")
view_prompts = jax.jit(multiview.view_prompts)

KEY = jax.random.key(3)
CFG = DataConfig(num_concepts=5, image_dim=12, text_dim=10, image_unique_dim=3,
                 text_unique_dim=2, noise_scale=0.0, omit_prob=0.0)


def test_first_two_views_are_the_paired_data():
    worlds = make_worlds(CFG, 3, key=KEY)
    views = sample(CFG, worlds, key=KEY, n=256)
    pairs = sample_pairs(CFG, worlds[0], key=jax.random.fold_in(KEY, 0), n=256)
    np.testing.assert_allclose(views.views[0], pairs.x, atol=1e-6)
    np.testing.assert_allclose(views.views[1], pairs.y, atol=1e-6)
    np.testing.assert_array_equal(views.z, pairs.z)
    np.testing.assert_array_equal(views.labels, pairs.labels)
    assert [v.shape[1] for v in views.views] == list(view_dims(CFG, 3))


def test_extra_view_carries_the_latent_through_its_own_mixing():
    worlds = make_worlds(CFG, 3, key=KEY)
    views = sample(CFG, worlds, key=KEY, n=256)
    assert len(worlds) == 2 and len(views.views) == 3
    # noiseless, no omission: projecting onto the view's shared basis recovers z
    np.testing.assert_allclose(views.views[2] @ worlds[1].shared_y, views.z, atol=1e-5)
    assert not np.allclose(worlds[1].shared_y, worlds[0].shared_y)
    assert not np.allclose(views.views[2], views.views[1])


def test_prompts_are_clean_views_of_the_class_latents():
    worlds = make_worlds(CFG, 3, key=KEY)
    clean = view_prompts(CFG, worlds)
    centres = worlds[0].centres
    np.testing.assert_allclose(clean[1], prompts(CFG, worlds[0])[:, 0], atol=1e-6)
    np.testing.assert_allclose(clean[0] @ worlds[0].shared_x, centres, atol=1e-5)
    np.testing.assert_allclose(clean[0] @ worlds[0].unique_x, 0.0, atol=1e-5)
    np.testing.assert_allclose(clean[2] @ worlds[1].shared_y, centres, atol=1e-5)
    np.testing.assert_allclose(clean[2] @ worlds[1].unique_y, 0.0, atol=1e-5)


def test_views_are_conditionally_independent_noise_draws():
    cfg = DataConfig(**{**CFG.to_dict(), "noise_scale": 0.5, "class_probs": None})
    worlds = make_worlds(cfg, 3, key=KEY)
    views = sample(cfg, worlds, key=KEY, n=256)
    resid1 = views.views[1] - views.z @ worlds[0].shared_y.T
    resid2 = views.views[2] - views.z @ worlds[1].shared_y.T
    corr = jnp.corrcoef(resid1[:, 0], resid2[:, 0])[0, 1]
    assert abs(float(corr)) < 0.25  # 4 standard errors at n = 256


def test_needs_two_views():
    with pytest.raises(ValueError, match="at least 2 views"):
        multiview.make_worlds(CFG, 1)
