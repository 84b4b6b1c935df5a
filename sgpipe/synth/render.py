"""Pixels of a synthetic image: a noisy, blotchy background and flat-coloured shapes in draw order."""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image

from sgpipe.synth.layout import Shape
from sgpipe.synth.shapes import COLORS, shape_mask

# Muted backgrounds, far from every shape colour.
BACKGROUNDS = ((128, 128, 122), (150, 140, 120), (110, 125, 135), (135, 150, 130), (160, 150, 155))
JPEG_QUALITY = 92


def _background(rng: random.Random, size: int) -> np.ndarray:
    noise = np.random.default_rng(rng.getrandbits(64))
    base = np.array(rng.choice(BACKGROUNDS), dtype=np.int16)
    # Low-frequency blotches (bilinear upsampling of a coarse grid) plus per-pixel grain.
    coarse = noise.integers(60, 196, (6, 6, 3), dtype=np.uint8)
    blotches = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR), dtype=np.int16)
    grain = noise.integers(-16, 17, (size, size, 3), dtype=np.int16)
    return np.clip(base + (blotches - 128) // 2 + grain, 0, 255).astype(np.uint8)


def render(rng: random.Random, shapes: list[Shape], size: int) -> tuple[bytes, list[np.ndarray]]:
    """JPEG bytes of the scene and each shape's full (amodal) mask, in the order of `shapes`."""
    pixels = _background(rng, size)
    masks = [shape_mask(s.category, s.box, (size, size)) for s in shapes]
    for index in sorted(range(len(shapes)), key=lambda i: shapes[i].rank):
        pixels[masks[index]] = COLORS[shapes[index].color]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue(), masks
