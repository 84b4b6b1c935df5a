"""The one way tests make small images: a seeded pattern, as JPEG bytes or a file in any format."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image


def pattern_image(width: int, height: int, seed: int) -> Image.Image:
    """A flat colour from `seed` with a diagonal of white dots, so that images differ and compress."""
    image = Image.new("RGB", (width, height), ((seed * 50) % 256, (seed * 80) % 256, 120))
    for x in range(0, width, 5):
        image.putpixel((x, (x * (seed + 1)) % height), (255, 255, 255))
    return image


def encode_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def jpeg_bytes(width: int, height: int, seed: int) -> bytes:
    return encode_jpeg(pattern_image(width, height, seed))


def write_image(path: Path, width: int, height: int, seed: int = 0, fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pattern_image(width, height, seed).save(path, format=fmt, quality=90)
