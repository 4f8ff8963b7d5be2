"""The paired-data generator: geometry, statistics, zero-shot tasks and oracles."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clipsim import data
from clipsim.config import DataConfig
from clipsim.data import oracle_encoders, text_from_latents

# jitted once per shape: eager op-by-op dispatch would dominate these tests
make_world = jax.jit(data.make_world)
sample_pairs = jax.jit(data.sample_pairs, static_argnames="n")
sample_test_images = jax.jit(data.sample_test_images,
                             static_argnames=("n", "class_probs"))
prompts = jax.jit(data.prompts, static_argnames="num_prompts")

KEY = jax.random.key(0)
BASE = DataConfig(num_concepts=6, image_dim=16, text_dim=14, image_unique_dim=4,
                  text_unique_dim=3)


@pytest.mark.parametrize("mixing", ["linear", "nonlinear"])
def test_mixing_bases_are_orthonormal(mixing):
    cfg = DataConfig(**{**BASE.to_dict(), "mixing": mixing, "class_probs": None})
    w = make_world(cfg, key=KEY)
    for shared, unique in ((w.shared_x, w.unique_x), (w.shared_y, w.unique_y)):
        basis = np.concatenate([shared, unique], axis=1)
        np.testing.assert_allclose(basis.T @ basis, np.eye(basis.shape[1]), atol=1e-5)
    for rot in (w.rotation_x, w.rotation_y):
        np.testing.assert_allclose(rot.T @ rot, np.eye(rot.shape[0]), atol=1e-5)


def test_world_is_a_function_of_the_data_seed():
    a, b = data.make_world(BASE), data.make_world(BASE)
    c = data.make_world(DataConfig(**{**BASE.to_dict(), "seed": 1, "class_probs": None}))
    np.testing.assert_array_equal(a.shared_x, b.shared_x)
    assert not np.allclose(a.shared_x, c.shared_x)


def test_pairs_have_the_stated_shapes_and_latents():
    w = make_world(BASE, key=KEY)
    b = sample_pairs(BASE, w, key=KEY, n=50)
    assert b.x.shape == (50, 16) and b.y.shape == (50, 14)
    assert b.z.shape == (50, 6) and b.xi.shape == (50, 4) and b.zeta.shape == (50, 3)
    np.testing.assert_array_equal(np.asarray(b.z).sum(1), 1.0)
    np.testing.assert_array_equal(np.argmax(b.z, 1), b.labels)


def test_noiseless_pairs_follow_the_linear_model():
    cfg = DataConfig(**{**BASE.to_dict(), "noise_scale": 0.0, "omit_prob": 0.3,
                        "class_probs": None})
    w = make_world(cfg, key=KEY)
    b = sample_pairs(cfg, w, key=KEY, n=40)
    x_ref = b.z @ w.shared_x.T + b.xi @ w.unique_x.T
    y_ref = (b.mask * b.z) @ w.shared_y.T + b.zeta @ w.unique_y.T
    np.testing.assert_allclose(b.x, x_ref, atol=1e-5)
    np.testing.assert_allclose(b.y, y_ref, atol=1e-5)


def test_statistics_of_unique_features_noise_and_omission():
    cfg = DataConfig(**{**BASE.to_dict(), "image_unique_scale": 0.7, "text_unique_scale": 1.3,
                        "omit_prob": 0.25, "noise_scale": 0.0, "class_probs": None})
    w = make_world(cfg, key=KEY)
    b = sample_pairs(cfg, w, key=KEY, n=20000)
    assert np.std(b.xi) == pytest.approx(0.7, rel=0.03)
    assert np.std(b.zeta) == pytest.approx(1.3, rel=0.03)
    assert np.mean(b.mask) == pytest.approx(0.75, abs=0.01)


def test_class_prior_is_respected():
    probs = (0.5, 0.2, 0.1, 0.1, 0.05, 0.05)
    cfg = DataConfig(**{**BASE.to_dict(), "class_probs": probs})
    b = sample_pairs(cfg, make_world(cfg, key=KEY), key=KEY, n=40000)
    freq = np.bincount(np.asarray(b.labels), minlength=6) / 40000
    np.testing.assert_allclose(freq, probs, atol=0.01)


def test_sparse_family_exact_and_bernoulli():
    exact = DataConfig(**{**BASE.to_dict(), "family": "sparse", "sparse_active": 2,
                          "class_probs": None})
    z = sample_pairs(exact, make_world(exact, key=KEY), key=KEY, n=500).z
    np.testing.assert_array_equal(np.asarray(z).sum(1), 2)
    bern = DataConfig(**{**BASE.to_dict(), "family": "sparse", "sparse_prob": 0.3,
                         "class_probs": None})
    z = sample_pairs(bern, make_world(bern, key=KEY), key=KEY, n=20000).z
    assert np.mean(z) == pytest.approx(0.3, abs=0.01)
    assert set(np.unique(z)) <= {0.0, 1.0}


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_gaussian_family_centres_and_spread():
    cfg = DataConfig(**{**BASE.to_dict(), "family": "gaussian", "num_classes": 5,
                        "within_class_std": 0.2, "class_probs": None})
    w = make_world(cfg, key=KEY)
    b = sample_pairs(cfg, w, key=KEY, n=5000)
    resid = np.asarray(b.z) - np.asarray(w.centres)[np.asarray(b.labels)]
    assert np.std(resid) == pytest.approx(0.2, rel=0.05)


@pytest.mark.parametrize("mixing", ["linear", "nonlinear"])
def test_oracle_ignores_unique_features_and_inverts_the_mixing(mixing):
    cfg = DataConfig(**{**BASE.to_dict(), "mixing": mixing, "noise_scale": 0.0,
                        "image_unique_scale": 3.0, "class_probs": None})
    w = make_world(cfg, key=KEY)
    b = sample_pairs(cfg, w, key=KEY, n=100)
    f_star, g_star = oracle_encoders(cfg, w, normalize=False)
    np.testing.assert_allclose(f_star(b.x), b.z, atol=1e-4)
    np.testing.assert_allclose(g_star(b.y), b.mask * b.z, atol=1e-4)


def test_nonlinear_mixing_is_not_linear():
    cfg = DataConfig(**{**BASE.to_dict(), "mixing": "nonlinear", "noise_scale": 0.0,
                        "class_probs": None})
    w = make_world(cfg, key=KEY)
    b = sample_pairs(cfg, w, key=KEY, n=400)
    u = np.concatenate([b.z, b.xi], 1)
    coef, *_ = np.linalg.lstsq(np.c_[u, np.ones(len(u))], np.asarray(b.x), rcond=None)
    resid = np.asarray(b.x) - np.c_[u, np.ones(len(u))] @ coef
    assert np.mean(resid**2) > 1e-3 * np.mean(np.asarray(b.x) ** 2)


def test_appropriate_prompts_and_ensembles():
    w = make_world(BASE, key=KEY)
    clean = prompts(BASE, w)
    assert clean.shape == (6, 1, 14)
    zeros = jnp.zeros((6, 3))
    np.testing.assert_allclose(clean[:, 0], text_from_latents(BASE, w, w.centres, zeros),
                               atol=1e-6)
    ens = prompts(BASE, w, key=KEY, num_prompts=5)
    assert ens.shape == (6, 5, 14)
    assert not np.allclose(ens[:, 0], ens[:, 1])
    with pytest.raises(ValueError, match="key"):
        data.prompts(BASE, w, num_prompts=3)


def test_shifted_test_images():
    w = make_world(BASE, key=KEY)
    probs = (1.0, 0, 0, 0, 0, 0)
    t = sample_test_images(BASE, w, key=KEY, n=300, class_probs=probs,
                           image_unique_scale=0.0, noise_scale=0.0)
    assert np.all(np.asarray(t.labels) == 0)
    np.testing.assert_allclose(t.x, np.broadcast_to(w.shared_x[:, 0], t.x.shape), atol=1e-6)


def test_sampling_vmaps_over_dynamic_data_fields():
    scales = jnp.array([0.0, 1.0, 2.0])

    def draw(scale):
        cfg = DataConfig(num_concepts=6, image_dim=16, text_dim=14, image_unique_dim=4,
                         text_unique_dim=3, image_unique_scale=scale)
        return data.sample_pairs(cfg, data.make_world(cfg, key=KEY), key=KEY, n=2000).xi

    xi = jax.jit(jax.vmap(draw))(scales)
    np.testing.assert_allclose(np.std(xi, axis=(1, 2)), [0.0, 1.0, 2.0], atol=0.05)


# ------------------------------------------------------------- family registry
def test_families_describe_themselves():
    onehot, sparse, gauss = (data.get_latent_family(n) for n in ("onehot", "sparse", "gaussian"))
    assert (onehot.discrete, sparse.discrete, gauss.discrete) == (True, True, False)
    cfg = DataConfig(**{**BASE.to_dict(), "class_probs": None})
    assert onehot.num_classes(cfg) == sparse.num_classes(cfg) == cfg.num_concepts
    g_cfg = DataConfig(**{**cfg.to_dict(), "family": "gaussian", "num_classes": 3})
    assert gauss.num_classes(g_cfg) == g_cfg.num_zero_shot_classes == 3
    assert onehot.class_prior and gauss.class_prior and not sparse.class_prior
    assert gauss.value_masses is None
    for fam, c in ((onehot, cfg), (sparse, DataConfig(**{**cfg.to_dict(), "family": "sparse"})),
                   (sparse, DataConfig(**{**cfg.to_dict(), "family": "sparse",
                                          "sparse_active": 2}))):
        masses, mult = fam.value_masses(c)
        assert np.sum(masses * mult) == pytest.approx(1.0, abs=1e-12)


def test_registering_a_family_twice_raises_unless_replaced():
    fam = data.get_latent_family("onehot")
    with pytest.raises(ValueError, match="'onehot' is already registered"):
        data.register_latent_family(fam)
    assert data.register_latent_family(fam, replace=True) is fam
    assert data.LATENT_FAMILIES is __import__("clipsim").config.LATENT_FAMILIES
    with pytest.raises(ValueError, match="did you mean 'gaussian'"):
        data.get_latent_family("gausian")


def test_a_registered_family_is_accepted_by_the_config_and_removed_cleanly():
    onehot = data.get_latent_family("onehot")
    custom = data.LatentFamily("test_copy", onehot.centres, onehot.sample,
                               onehot.sample_class, discrete=True)
    data.register_latent_family(custom)
    try:
        cfg = DataConfig(**{**BASE.to_dict(), "family": "test_copy", "class_probs": None})
        assert cfg.num_zero_shot_classes == cfg.num_concepts
    finally:
        data.LATENT_FAMILIES.unregister("test_copy")
    with pytest.raises(Exception, match="data.family"):
        DataConfig(family="test_copy")


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_draws_name_their_dtype():
    w = data.make_world(BASE, key=KEY)
    assert {a.dtype for a in jax.tree.leaves(w)} == {jnp.dtype("float32")}
    b = data.sample_pairs(BASE, w, key=KEY, n=8)
    assert b.x.dtype == b.y.dtype == b.mask.dtype == jnp.float32
    with jax.enable_x64(True):
        w_on = data.make_world(BASE, key=KEY)
        b_on = data.sample_pairs(BASE, w_on, key=KEY, n=8)
    np.testing.assert_array_equal(w_on.shared_x, w.shared_x)
    np.testing.assert_array_equal(b_on.x, b.x)
