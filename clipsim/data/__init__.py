"""Synthetic paired data: latent families, mixing, captions, zero-shot tasks, oracles."""

from clipsim.data.families import (
    LATENT_FAMILIES,
    LatentFamily,
    class_log_probs,
    get_latent_family,
    register_latent_family,
)
from clipsim.data.generator import (
    Batch,
    World,
    draw_pairs,
    image_from_latents,
    make_world,
    oracle_encoders,
    prompts,
    sample_caption_pairs,
    sample_pairs,
    sample_test_images,
    satisfies_conditional_independence,
    text_from_latents,
)

__all__ = [
    "LATENT_FAMILIES",
    "LatentFamily",
    "class_log_probs",
    "get_latent_family",
    "register_latent_family",
    "Batch",
    "World",
    "image_from_latents",
    "make_world",
    "oracle_encoders",
    "prompts",
    "sample_pairs",
    "sample_test_images",
    "satisfies_conditional_independence",
    "text_from_latents",
    "sample_caption_pairs",
    "draw_pairs",
]
