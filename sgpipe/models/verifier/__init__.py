"""The RLIPv2-style relational verifier: vision backbone + per-label text encoder + ALIF fusion +
pair decoder + sigmoid scores. Needs only torch + transformers (+ numpy, PIL)."""

from sgpipe.models.verifier.config import (
    PRESETS,
    VerifierConfig,
    base_config,
    preset_config,
    small_config,
    tiny_config,
)
from sgpipe.models.verifier.inputs import Example, collate, image_to_pixels, normalise_boxes
from sgpipe.models.verifier.model import WEIGHTS_NAME, Verifier, focal_loss

__all__ = [
    "PRESETS",
    "VerifierConfig",
    "base_config",
    "preset_config",
    "small_config",
    "tiny_config",
    "Example",
    "collate",
    "image_to_pixels",
    "normalise_boxes",
    "WEIGHTS_NAME",
    "Verifier",
    "focal_loss",
]
