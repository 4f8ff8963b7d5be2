"""Metrics of trained embeddings (docs/theory.md, section 4).

Everything here is a pure function of arrays, jittable and ``vmap``-pable
(static sizes, no value-dependent Python), except :func:`principal_angles`,
which runs on the host with SciPy.

Modules: :mod:`~clipsim.metrics.similarity` (scores), :mod:`~clipsim.metrics.margins`,
:mod:`~clipsim.metrics.zero_shot`, :mod:`~clipsim.metrics.retrieval`,
:mod:`~clipsim.metrics.alignment` (cosine, gap, uniformity),
:mod:`~clipsim.metrics.recovery` (ridge R^2, weight share, principal angles),
:mod:`~clipsim.metrics.probe` (linear probe) and :mod:`~clipsim.metrics.bundle`.
"""

from clipsim.metrics.alignment import modality_gap, positive_cosine, uniformity
from clipsim.metrics.bundle import embedding_metrics
from clipsim.metrics.invariance import unique_energy_share, unique_invariance
from clipsim.metrics.margins import margin_stats, margin_summary, pair_margins, same_latent_mask
from clipsim.metrics.probe import linear_probe_accuracy
from clipsim.metrics.recovery import principal_angles, ridge_r2, unique_weight_share
from clipsim.metrics.retrieval import retrieval_recall
from clipsim.metrics.similarity import l2_normalize, scores
from clipsim.metrics.zero_shot import zero_shot_loss, zero_shot_metrics, zero_shot_ranks

__all__ = [
    "embedding_metrics",
    "l2_normalize",
    "linear_probe_accuracy",
    "margin_stats",
    "margin_summary",
    "modality_gap",
    "pair_margins",
    "positive_cosine",
    "principal_angles",
    "retrieval_recall",
    "ridge_r2",
    "same_latent_mask",
    "scores",
    "unique_weight_share",
    "uniformity",
    "unique_energy_share",
    "unique_invariance",
    "zero_shot_loss",
    "zero_shot_metrics",
    "zero_shot_ranks",
]
