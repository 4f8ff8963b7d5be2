"""Evaluate a trained run: fresh test data -> embeddings -> every metric.

``evaluate_program(cfg, params, key)`` is pure and returns a flat dict of scalars,
so the sweep engine evaluates many runs with ``jax.vmap``. ``evaluate(result)``
is the host-side wrapper for one run; it adds the host-only metrics (principal
angles via ``scipy.linalg.subspace_angles``) and returns a ``Report``.

Test data comes from the evaluation key stream, never from the training one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from clipsim import metrics, objectives
from clipsim.config import RunConfig, precision
from clipsim.data import World, oracle_encoders, prompts, sample_pairs, sample_test_images
from clipsim.models import normalize_rows
from clipsim.train.loop import (
    STREAM_EVAL,
    Encoder,
    TrainResult,
    embedding_functions,
    weight_shares,
    world_for,
)

__all__ = ["Report", "evaluate", "evaluate_program", "oracle_program"]

Array = jax.Array


def _batched_losses(cfg: RunConfig, ea: Array, eb: Array, obj_params: dict) -> dict[str, Array]:
    """Objective and CLIP losses on consecutive test batches of the training size B."""
    b = cfg.train.batch_size
    nb = ea.shape[0] // b
    if nb == 0:
        nan = jnp.asarray(jnp.nan, ea.dtype)
        return {"eval_loss": nan, "eval_clip_loss": nan, "eval_temperature": nan}
    sa = ea[: nb * b].reshape(nb, b, -1)
    sb = eb[: nb * b].reshape(nb, b, -1)
    obj = objectives.get(cfg.objective.name)
    loss, aux = jax.lax.map(lambda ab: obj.loss_fn(*ab, obj_params, cfg=cfg.objective), (sa, sb))
    tau = jnp.mean(aux["temperature"])
    tau = jnp.where(jnp.isnan(tau), cfg.objective.temperature, tau)
    clip = objectives.clip_loss_per_batch(ea, eb, batch_size=b, temperature=tau)
    return {"eval_loss": jnp.mean(loss), "eval_clip_loss": jnp.mean(clip),
            "eval_temperature": tau}


def _metrics(cfg: RunConfig, world: World, f: Encoder, g: Encoder, key: Array,
             obj_params: dict, normalize: bool) -> dict[str, Array]:
    ec = cfg.eval
    k_pairs, k_test, k_prompts = jax.random.split(key, 3)
    pairs = sample_pairs(cfg.data, world, key=k_pairs, n=ec.num_samples)
    ea, eb = f(pairs.x), g(pairs.y)
    out: dict[str, Array] = dict(metrics.embedding_metrics(ea, eb, pairs.z, ks=ec.top_r))
    out.update(_batched_losses(cfg, ea, eb, obj_params))

    test = sample_test_images(
        cfg.data, world, key=k_test, n=ec.num_samples, class_probs=ec.test_class_probs,
        image_unique_scale=ec.test_image_unique_scale, noise_scale=ec.test_noise_scale)
    image_emb = f(test.x)
    texts = prompts(cfg.data, world, key=k_prompts, num_prompts=ec.num_prompts)
    class_emb = jnp.mean(g(texts), axis=1)
    if normalize:
        class_emb = normalize_rows(class_emb)
    out.update(metrics.zero_shot_metrics(image_emb, class_emb, test.labels, top_r=ec.top_r,
                                         temperature=out["eval_temperature"]))
    out["r2_shared"] = metrics.ridge_r2(ea, pairs.z, ridge=ec.ridge)
    nan = jnp.asarray(jnp.nan, ea.dtype)
    out["r2_image_unique"] = (metrics.ridge_r2(ea, pairs.xi, ridge=ec.ridge)
                              if cfg.data.image_unique_dim > 0 else nan)
    out["r2_text_unique"] = (metrics.ridge_r2(eb, pairs.zeta, ridge=ec.ridge)
                             if cfg.data.text_unique_dim > 0 else nan)
    out["probe_accuracy"] = metrics.linear_probe_accuracy(
        image_emb, test.labels, cfg.data.num_zero_shot_classes, ridge=ec.ridge)
    return out


def evaluate_program(cfg: RunConfig, params: dict, key: Array) -> dict[str, Array]:
    """All jittable metrics of a trained model, a flat dict of scalars.

    Pure; ``vmap``-able over runs (stacked ``cfg``, ``params``, ``key``).
    Keys: margin and retrieval statistics, alignment (``positive_cosine``,
    ``modality_gap``, ``uniformity_a``/``_b``), ``eval_loss`` and ``eval_clip_loss``
    (mean over fresh batches of size B), zero-shot errors and loss, recovery
    ``r2_shared``/``r2_image_unique``/``r2_text_unique``, ``probe_accuracy``, and
    for linear encoders ``unique_share_image``/``unique_share_text``.

    Args:
        cfg: the run config.
        params: trained parameters.
        key: evaluation PRNG key.

    Returns:
        A flat dict of scalar arrays (reductions: see each metric).
    """
    world = world_for(cfg)
    f, g = embedding_functions(params, cfg)
    out = _metrics(cfg, world, f, g, key, params["objective"], cfg.model.normalize)
    if cfg.model.kind == "linear":
        nan = jnp.asarray(jnp.nan, out["r2_shared"].dtype)
        out.update({"unique_share_image": nan, "unique_share_text": nan,
                    **weight_shares(params, world, cfg)})
    return out


def oracle_program(cfg: RunConfig, key: Array) -> dict[str, Array]:
    """The same metrics for the oracle encoders f*, g* (normalized) of the run's data.

    Args:
        cfg: the run config (its data and objective; no parameters are trained).
        key: evaluation PRNG key.

    Returns:
        A flat dict of scalar arrays with the keys of ``evaluate_program`` (no
        ``unique_share_*``).
    """
    world = world_for(cfg)
    f, g = oracle_encoders(cfg.data, world, normalize=True)
    obj_params = objectives.get(cfg.objective.name).init_params(cfg.objective)
    return _metrics(cfg, world, f, g, key, obj_params, True)


_evaluate_jit = jax.jit(evaluate_program)


@dataclass(frozen=True)
class Report(Mapping[str, float]):
    """Metrics of one trained run, with the config that produced them.

    A read-only mapping of metric name -> value: ``report["zs_accuracy"]``,
    ``"zs_accuracy" in report``, ``dict(report)``.
    """

    metrics: dict[str, float]
    config: RunConfig
    extras: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``metrics``, ``config`` (nested), ``config_hash`` and extras."""
        return {"metrics": self.metrics, "config": self.config.to_dict(),
                "config_hash": self.config.hash(), **self.extras}

    def table(self) -> str:
        """A two-column text table of the metrics."""
        width = max(len(k) for k in self.metrics)
        return "\n".join(f"{k:<{width}}  {v: .4f}" for k, v in self.metrics.items())

    def __str__(self) -> str:
        return self.table()


def _principal_angle_summary(result: TrainResult) -> dict[str, float]:
    cfg = result.config
    if cfg.model.kind != "linear":
        return {}
    world = world_for(cfg)
    angles = metrics.principal_angles(
        np.asarray(result.params["encoders"]["image"]["w"]), np.asarray(world.shared_x))
    return {"angle_max_deg": float(np.degrees(np.max(angles))),
            "angle_mean_deg": float(np.degrees(np.mean(angles)))}


def evaluate(result: TrainResult) -> Report:
    """Evaluate a trained run on fresh test data.

    The test data come from the run key's evaluation stream
    (``fold_in(key(seed), STREAM_EVAL)``), never from the training one, so the
    numbers are a function of the config alone and equal those of a sweep.

    Args:
        result: from ``clipsim.train``.

    Returns:
        A ``Report`` of float metrics (see ``evaluate_program``), plus the largest and
        mean principal angle (degrees) between a linear image encoder's row space
        and the shared subspace.
    """
    if not isinstance(result, TrainResult):
        raise TypeError(f"evaluate: expected a TrainResult, got {type(result).__name__}")
    key = jax.random.fold_in(result.key, STREAM_EVAL)
    with precision(result.config.train.dtype):
        values = _evaluate_jit(result.config, result.params, key)
        out = {k: float(v) for k, v in values.items()}
        out.update(_principal_angle_summary(result))
    return Report(metrics=out, config=result.config)
