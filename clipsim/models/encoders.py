"""Linear and two-layer encoders (docs/theory.md, section 2).

Parameters are plain dicts of arrays:

* ``linear``: ``{"w": (d, d_in)}``, f(x) = W x (no bias: the theory's linear model);
* ``mlp2``: ``{"w1": (h, d_in), "b1": (h,), "w2": (d, h), "b2": (d,)}``,
  f(x) = W2 relu(W1 x + b1) + b2, biases present only when ``cfg.bias``.

Outputs are L2-normalized when ``cfg.normalize`` (so scores lie in [-1, 1]).
Weights start as ``init_scale / sqrt(fan_in)`` times standard normals, biases at 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from clipsim.config import ModelConfig
from clipsim.metrics.similarity import l2_normalize

__all__ = ["init_encoder", "init_encoders", "encode", "normalize_rows"]

Array = jax.Array
Params = dict[str, Array]


def _dense(key: Array, fan_out: int, fan_in: int, scale: Array | float, dtype) -> Array:
    # every factor in ``dtype``: the numbers do not depend on whether x64 is on
    std = jnp.asarray(scale, dtype) / jnp.sqrt(jnp.asarray(fan_in, dtype))
    return std * jax.random.normal(key, (fan_out, fan_in), dtype)


def init_encoder(cfg: ModelConfig, *, key: Array, in_dim: int, dtype=jnp.float32) -> Params:
    """Parameters of one encoder mapping R^in_dim -> R^embed_dim.

    Args:
        cfg: the model config (``kind``, ``embed_dim``, ``hidden_dim``, ``bias``,
            ``init_scale``).
        key: PRNG key.
        in_dim: input dimension (dx or dy).
        dtype: parameter dtype.

    Returns:
        A dict of arrays: ``{"w": (d, in_dim)}`` for ``linear``; ``w1``, ``w2`` (and
        ``b1``, ``b2`` when ``cfg.bias``) for ``mlp2``.
    """
    if cfg.kind == "linear":
        return {"w": _dense(key, cfg.embed_dim, in_dim, cfg.init_scale, dtype)}
    k1, k2 = jax.random.split(key)
    params = {
        "w1": _dense(k1, cfg.hidden_dim, in_dim, cfg.init_scale, dtype),
        "w2": _dense(k2, cfg.embed_dim, cfg.hidden_dim, cfg.init_scale, dtype),
    }
    if cfg.bias:
        params["b1"] = jnp.zeros((cfg.hidden_dim,), dtype)
        params["b2"] = jnp.zeros((cfg.embed_dim,), dtype)
    return params


def init_encoders(
    cfg: ModelConfig, *, key: Array, image_dim: int, text_dim: int, dtype=jnp.float32
) -> dict[str, Params]:
    """Parameters of both encoders: ``{"image": ..., "text": ...}``.

    Args:
        cfg: the model config.
        key: PRNG key (split into one key per encoder).
        image_dim: dx.
        text_dim: dy.
        dtype: parameter dtype.

    Returns:
        ``{"image": init_encoder(...), "text": init_encoder(...)}``.
    """
    k_img, k_txt = jax.random.split(key)
    return {
        "image": init_encoder(cfg, key=k_img, in_dim=image_dim, dtype=dtype),
        "text": init_encoder(cfg, key=k_txt, in_dim=text_dim, dtype=dtype),
    }


normalize_rows = l2_normalize
"""Rows scaled to unit L2 norm: ``clipsim.metrics.l2_normalize`` (floor ``NORM_FLOOR`` on the norm).

Kept under this name for the encoders' callers; one function, one floor.
"""


def encode(params: Params, x: Array, *, cfg: ModelConfig) -> Array:
    """Embed a batch.

    Args:
        params: one encoder's parameters (from ``init_encoder``).
        x: inputs, (..., d_in).
        cfg: the model config (``kind`` and ``normalize`` are used).

    Returns:
        Embeddings, (..., d); unit rows when ``cfg.normalize``.
    """
    if cfg.kind == "linear":
        e = x @ params["w"].T
    else:
        h = x @ params["w1"].T
        if "b1" in params:
            h = h + params["b1"]
        e = jax.nn.relu(h) @ params["w2"].T
        if "b2" in params:
            e = e + params["b2"]
    return normalize_rows(e) if cfg.normalize else e
