"""E8: the closed-form population optimum of the ``spectral`` loss for linear encoders.

For linear encoders f(x) = W x, g(y) = V y (W: (d, dx), V: (d, dy)) without output
normalization, and negatives drawn independently of the positive pair, the
population ``spectral`` loss depends on W and V only through M = W^T V:

    L(M) = -2 tr(M S_xy^T) + tr(M S_y M^T S_x),

with the uncentered second moments S_x = E[x x^T], S_y = E[y y^T], S_xy = E[x y^T].
With C = S_x^{-1/2} S_xy S_y^{-1/2} and N = S_x^{1/2} M S_y^{1/2},
L = ||N - C||_F^2 - ||C||_F^2, so the minimizer over rank-d matrices is
N* = the rank-d truncated SVD of C (Eckart-Young), and the optimal loss is minus
the sum of the top d squared singular values of C (docs/theory.md, E8 and the
section "Computed optima and the completeness chain").

The second moments follow in closed form from the data model (linear mixing):

    S_x  = A_z S_zz A_z^T + sigma_xi^2 A_xi A_xi^T + sigma_noise^2 I,
    S_y  = B_z S_mm B_z^T + sigma_zeta^2 B_zeta B_zeta^T + sigma_noise^2 I,
    S_xy = (1 - p_omit) A_z S_zz B_z^T,

with S_zz = E[z z^T] the latent family's second moment and
S_mm = E[(m*z)(m*z)^T] = q^2 S_zz + (q - q^2) diag(S_zz), q = 1 - p_omit.

Everything here is pure JAX (``jit``/``vmap``-able over the dynamic data fields),
so an experiment's program can compare a trained model with the optimum per run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from clipsim.config import DataConfig
from clipsim.data import World
from clipsim.data.families import class_log_probs
from clipsim.theory._checks import check_int, check_ndim, result_type

__all__ = [
    "DataMoments",
    "SpectralOptimum",
    "latent_second_moment",
    "data_second_moments",
    "spectral_population_loss",
    "spectral_optimum",
    "subspace_angles",
]

Array = jax.Array


@result_type
class DataMoments:
    """Uncentered second moments of one pair (x, y).

    Attributes:
        s_x: E[x x^T], (dx, dx). s_y: E[y y^T], (dy, dy). s_xy: E[x y^T], (dx, dy).
    """

    s_x: Array
    s_y: Array
    s_xy: Array


@result_type
class SpectralOptimum:
    """The population minimizer of the ``spectral`` loss over rank-d linear encoders.

    Attributes:
        loss: the optimal population loss, -sum_{i <= d} sigma_i(C)^2 (a scalar).
        singular_values: all singular values of C, descending, (min(dx, dy),).
        image_weight: an optimal W, (d, dx): Sigma_d^{1/2} U_d^T S_x^{-1/2}.
        text_weight: the matching V, (d, dy): Sigma_d^{1/2} V_d^T S_y^{-1/2}, so that
            W^T V = M* = S_x^{-1/2} U_d Sigma_d V_d^T S_y^{-1/2}.
        gap: sigma_d(C) - sigma_{d+1}(C) (0 when d = min(dx, dy)); the optimal
            subspaces are unique exactly when the gap is positive.
    """

    loss: Array
    singular_values: Array
    image_weight: Array
    text_weight: Array
    gap: Array


def latent_second_moment(cfg: DataConfig, world: World) -> Array:
    r"""S_zz = E[z z^T], (k, k), of a built-in latent family, in closed form.

    * ``onehot``: diag(pi).
    * ``sparse`` with independent Bernoulli(p) coordinates: p^2 11^T + (p - p^2) I;
      with exactly s of k on: (s/k) on the diagonal, s(s-1)/(k(k-1)) off it.
    * ``gaussian``: sum_c pi_c z_c z_c^T + sigma_w^2 I (z = z_c + sigma_w N(0, I)).

    Args:
        cfg: the data config (numeric fields may be traced).
        world: the dataset (its ``centres`` and dtype are used).

    Returns:
        The (k, k) second moment in the world's dtype.

    Raises:
        ValueError: a registered family with no closed form here.
    """
    k, dtype = cfg.num_concepts, world.shared_x.dtype
    if cfg.family == "onehot":
        return jnp.diag(jnp.exp(class_log_probs(cfg, dtype=dtype)))
    if cfg.family == "sparse":
        if cfg.sparse_active is None:
            p = jnp.asarray(cfg.sparse_prob, dtype)
            return p * p * jnp.ones((k, k), dtype) + (p - p * p) * jnp.eye(k, dtype=dtype)
        s = cfg.sparse_active
        off = s * (s - 1) / (k * (k - 1)) if k > 1 else 0.0
        return off * jnp.ones((k, k), dtype) + (s / k - off) * jnp.eye(k, dtype=dtype)
    if cfg.family == "gaussian":
        pi = jnp.exp(class_log_probs(cfg, dtype=dtype))
        centres = world.centres
        w = jnp.asarray(cfg.within_class_std, dtype)
        return (centres.T * pi) @ centres + w * w * jnp.eye(k, dtype=dtype)
    raise ValueError(f"data.family = {cfg.family!r} has no closed-form second moment: "
                     "latent_second_moment knows 'onehot', 'sparse', 'gaussian'")


def data_second_moments(cfg: DataConfig, world: World) -> DataMoments:
    r"""S_x, S_y, S_xy of one (image, caption) pair, in closed form from the data model.

    .. math::
        S_x = A_z S_{zz} A_z^\top + \sigma_\xi^2 A_\xi A_\xi^\top + \sigma^2 I,\quad
        S_y = B_z S_{mm} B_z^\top + \sigma_\zeta^2 B_\zeta B_\zeta^\top + \sigma^2 I,\quad
        S_{xy} = q\, A_z S_{zz} B_z^\top,

    with q = 1 - p_omit and S_mm = q^2 S_zz + (q - q^2) diag(S_zz) (the mask
    coordinates are independent Bernoulli(q), so E[m_i m_j] = q^2 off the diagonal
    and q on it). Cross terms vanish because xi, zeta, m and the noises are
    independent of z and of each other, with mean zero where they enter linearly.

    Args:
        cfg: the data config; ``mixing`` must be ``"linear"``.
        world: the dataset's fixed matrices.

    Returns:
        ``DataMoments`` in the world's dtype.

    Raises:
        ValueError: nonlinear mixing (no closed form).
    """
    if cfg.mixing != "linear":
        raise ValueError(f"data.mixing = {cfg.mixing!r} is invalid here: the closed-form "
                         "second moments need 'linear' mixing")
    dtype = world.shared_x.dtype
    szz = latent_second_moment(cfg, world)
    q = 1.0 - jnp.asarray(cfg.omit_prob, dtype)
    smm = q * q * szz + (q - q * q) * jnp.diag(jnp.diagonal(szz))
    ax, axi, bz, bze = world.shared_x, world.unique_x, world.shared_y, world.unique_y
    noise2 = jnp.asarray(cfg.noise_scale, dtype) ** 2
    sxi2 = jnp.asarray(cfg.image_unique_scale, dtype) ** 2
    sze2 = jnp.asarray(cfg.text_unique_scale, dtype) ** 2
    s_x = ax @ szz @ ax.T + sxi2 * (axi @ axi.T) + noise2 * jnp.eye(cfg.image_dim, dtype=dtype)
    s_y = bz @ smm @ bz.T + sze2 * (bze @ bze.T) + noise2 * jnp.eye(cfg.text_dim, dtype=dtype)
    s_xy = q * (ax @ szz @ bz.T)
    return DataMoments(s_x=s_x, s_y=s_y, s_xy=s_xy)


def spectral_population_loss(image_weight: ArrayLike, text_weight: ArrayLike,
                             moments: DataMoments) -> Array:
    r"""The population ``spectral`` loss of unnormalized linear encoders W, V.

    .. math::
        L = -2\,\mathbb E[s_{11}] + \mathbb E[s_{12}^2]
          = -2 \operatorname{tr}(M S_{xy}^\top) + \operatorname{tr}(M S_y M^\top S_x),
        \quad M = W^\top V,

    the expectation of the batch loss of ``clipsim.objectives`` (``spectral``: the
    mean over B positives and over the B(B-1) off-diagonal pairs, whose two sides
    are independent draws).

    Args:
        image_weight: W, (d, dx).
        text_weight: V, (d, dy).
        moments: the data's second moments.

    Returns:
        The scalar population loss (unbounded below only through the data scale;
        its minimum over rank-d M is ``spectral_optimum(...).loss``).
    """
    w, v = jnp.asarray(image_weight), jnp.asarray(text_weight)
    check_ndim("image_weight", w, 2)
    check_ndim("text_weight", v, 2)
    if w.shape[0] != v.shape[0]:
        raise ValueError(f"image_weight {w.shape} and text_weight {v.shape} must have the same "
                         "number of rows d")
    m = w.T @ v
    return -2.0 * jnp.sum(m * moments.s_xy) + jnp.trace(m @ moments.s_y @ m.T @ moments.s_x)


def _inv_sqrt(s: Array) -> Array:
    """S^{-1/2} of a symmetric positive definite matrix (eigendecomposition)."""
    evals, evecs = jnp.linalg.eigh((s + s.T) / 2)
    return (evecs * jax.lax.rsqrt(evals)) @ evecs.T


def spectral_optimum(moments: DataMoments, embed_dim: int) -> SpectralOptimum:
    r"""The closed-form minimizer of the population ``spectral`` loss at rank d.

    .. math::
        C = S_x^{-1/2} S_{xy} S_y^{-1/2} = U \Sigma V^\top,\quad
        M^\star = S_x^{-1/2} U_d \Sigma_d V_d^\top S_y^{-1/2},\quad
        L^\star = -\sum_{i \le d} \sigma_i(C)^2.

    Proof: with N = S_x^{1/2} M S_y^{1/2}, tr(M S_xy^T) = <N, C>_F and
    tr(M S_y M^T S_x) = ||N||_F^2, so L = ||N - C||_F^2 - ||C||_F^2; rank N = rank M
    <= d, and Eckart-Young gives the truncated SVD. Any W, V with W^T V = M* is
    optimal (W -> R W, V -> R^{-T} V for invertible R keep M), so only the row
    spaces row(W*) = col(S_x^{-1/2} U_d) and row(V*) are determined, and only
    when ``gap > 0``.

    Args:
        moments: the data's second moments (S_x, S_y positive definite: any noise).
        embed_dim: d >= 1.

    Returns:
        A ``SpectralOptimum`` (jittable given a static ``embed_dim``).
    """
    check_int("embed_dim", embed_dim, 1)
    dx, dy = moments.s_xy.shape
    if embed_dim > min(dx, dy):
        raise ValueError(f"embed_dim = {embed_dim} is invalid: must be <= min(dx, dy) = "
                         f"{min(dx, dy)}")
    rx, ry = _inv_sqrt(moments.s_x), _inv_sqrt(moments.s_y)
    c = rx @ moments.s_xy @ ry
    u, sv, vt = jnp.linalg.svd(c, full_matrices=False)
    d = embed_dim
    root = jnp.sqrt(sv[:d])
    w = (root[:, None] * u[:, :d].T) @ rx
    v = (root[:, None] * vt[:d]) @ ry
    nxt = sv[d] if d < sv.shape[0] else jnp.zeros((), sv.dtype)
    return SpectralOptimum(loss=-jnp.sum(sv[:d] ** 2), singular_values=sv, image_weight=w,
                           text_weight=v, gap=sv[d - 1] - nxt)


def subspace_angles(a: ArrayLike, b: ArrayLike) -> Array:
    r"""Principal angles (radians, descending) between the row spaces of a and b; jittable.

    cos(theta_i) are the singular values of Q_a^T Q_b for orthonormal bases of
    row(a) and row(b) (QR of the transposes); the same numbers as
    ``scipy.linalg.subspace_angles(a.T, b.T)`` for full-rank inputs with
    well-separated angles (SciPy switches to a sine formula for small angles, more
    accurate below about 1e-4 rad in float32).

    Args:
        a: (p, n) with full row rank. b: (q, n) with full row rank.

    Returns:
        min(p, q) angles in [0, pi/2], sorted descending.
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    check_ndim("a", a, 2)
    check_ndim("b", b, 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a {a.shape} and b {b.shape} must have the same number of columns")
    qa, _ = jnp.linalg.qr(a.T)
    qb, _ = jnp.linalg.qr(b.T)
    cos = jnp.linalg.svd(qa.T @ qb, compute_uv=False)
    return jnp.sort(jnp.arccos(jnp.clip(cos, -1.0, 1.0)))[::-1]
