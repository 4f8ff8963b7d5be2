"""The exact statements E1-E7 of docs/theory.md as calculators.

Each function computes both sides of one statement from arrays, callables or
numbers and returns a small frozen dataclass (a JAX pytree) with the two sides,
a ``holds`` flag and a standard error where a side is an expectation. Nothing
here trains or samples a model; callers pass score matrices, pair statistics
or losses.

=====  ==================================================================
E1     :func:`row_loss_sandwich`, :func:`score_range_bounds`
E2     :func:`ranking_bound`, :func:`zero_shot_ranking_bound`
E3     :func:`collision_floor_onehot`, :func:`collision_floor`,
       :func:`collision_floor_monte_carlo`, :func:`family_floor`,
       :func:`latent_collision_counts`,
       :func:`clip_floor_check`
E4     :func:`completeness_profile`, :func:`pair_statistics_upper_bound`,
       :func:`best_profile_bound`, :func:`mean_loss_upper_check`
E5     :func:`saturation_loss_bound`, :func:`margin_needed`,
       :func:`saturation_check`
E6     :func:`concentration_radius`, :func:`batch_loss_range`,
       :func:`concentration_check`, :func:`two_sample_radius`
E7     :func:`tv_class_prior`, :func:`reweighted_error`, :func:`shift_check`,
       :func:`tv_monte_carlo`, :func:`tv_gaussian_same_mean_upper`,
       :func:`tv_joint_same_prior`
=====  ==================================================================

Exact checks (E1, E2, E5 and the sample form of E4) compare in the input's
float dtype with a rounding tolerance; run them under ``jax.enable_x64(True)``
for the tightest check.
"""

from clipsim.theory.chain import (
    excess_budget,
    guaranteed_margin,
    margin_violation_bound,
    top_r_error_bound,
)
from clipsim.theory.concentration import (
    ConcentrationCheck,
    batch_loss_range,
    concentration_check,
    concentration_radius,
    two_sample_radius,
)
from clipsim.theory.floor import (
    CollisionFloor,
    MonteCarloCheck,
    caption_collision_floor,
    clip_floor_check,
    collision_floor,
    collision_floor_monte_carlo,
    collision_floor_onehot,
    family_caption_floor,
    family_floor,
    latent_collision_counts,
    mean_loss_upper_check,
)
from clipsim.theory.profile import (
    BestProfileBound,
    CompletenessProfile,
    PairStatisticsBound,
    best_profile_bound,
    completeness_profile,
    pair_statistics_upper_bound,
)
from clipsim.theory.ranking import (
    RankingBound,
    ZeroShotRankingBound,
    ranking_bound,
    zero_shot_ranking_bound,
)
from clipsim.theory.sandwich import (
    RowLossSandwich,
    ScoreRange,
    row_loss_sandwich,
    score_range_bounds,
)
from clipsim.theory.saturation import (
    SaturationCheck,
    margin_needed,
    saturation_check,
    saturation_loss_bound,
)
from clipsim.theory.shift import (
    ShiftCheck,
    TVEstimate,
    reweighted_error,
    shift_check,
    tv_class_prior,
    tv_gaussian_same_mean_upper,
    tv_joint_same_prior,
    tv_monte_carlo,
)
from clipsim.theory.spectral import (
    DataMoments,
    SpectralOptimum,
    data_second_moments,
    latent_second_moment,
    spectral_optimum,
    spectral_population_loss,
    subspace_angles,
)

__all__ = [
    # E1
    "RowLossSandwich",
    "ScoreRange",
    "row_loss_sandwich",
    "score_range_bounds",
    # E2
    "RankingBound",
    "ZeroShotRankingBound",
    "ranking_bound",
    "zero_shot_ranking_bound",
    # E3
    "CollisionFloor",
    "MonteCarloCheck",
    "clip_floor_check",
    "collision_floor",
    "collision_floor_monte_carlo",
    "collision_floor_onehot",
    "family_floor",
    "latent_collision_counts",
    "caption_collision_floor",
    "family_caption_floor",
    # E4
    "BestProfileBound",
    "CompletenessProfile",
    "PairStatisticsBound",
    "best_profile_bound",
    "completeness_profile",
    "mean_loss_upper_check",
    "pair_statistics_upper_bound",
    # E5
    "SaturationCheck",
    "margin_needed",
    "saturation_check",
    "saturation_loss_bound",
    # E6
    "ConcentrationCheck",
    "batch_loss_range",
    "concentration_check",
    "concentration_radius",
    "two_sample_radius",
    # E7
    "ShiftCheck",
    "TVEstimate",
    "reweighted_error",
    "shift_check",
    "tv_class_prior",
    "tv_gaussian_same_mean_upper",
    "tv_joint_same_prior",
    "tv_monte_carlo",
    # E8
    "DataMoments",
    "SpectralOptimum",
    "data_second_moments",
    "latent_second_moment",
    "spectral_optimum",
    "spectral_population_loss",
    "subspace_angles",
    # T1 (the completeness chain)
    "excess_budget",
    "guaranteed_margin",
    "margin_violation_bound",
    "top_r_error_bound",
]
