"""Near-copies of an image as they turn up in other datasets: re-encoded, resized, slightly cropped.

The perceptual-hash threshold is measured on these (benchmarks/bench_leakage.py) and the tests find
them; one definition serves both.
"""

from __future__ import annotations

import io
from typing import Callable

from PIL import Image


def encode(image: Image.Image, quality: int = 90, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _resized(scale: float) -> Callable[[Image.Image], bytes]:
    def make(image: Image.Image) -> bytes:
        size = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
        return encode(image.resize(size, Image.Resampling.BICUBIC))

    return make


def _cropped(percent: float, centred: bool = True) -> Callable[[Image.Image], bytes]:
    """Keep (100 - percent)% of each side: centred, or cut from the right and bottom only."""

    def make(image: Image.Image) -> bytes:
        dx, dy = round(image.width * percent / 100), round(image.height * percent / 100)
        left, top = (dx // 2, dy // 2) if centred else (0, 0)
        return encode(image.crop((left, top, left + image.width - dx, top + image.height - dy)))

    return make


COPIES: dict[str, Callable[[Image.Image], bytes]] = {
    "png": lambda image: encode(image, fmt="PNG"),
    "jpeg_q90": lambda image: encode(image, 90),
    "jpeg_q70": lambda image: encode(image, 70),
    "jpeg_q50": lambda image: encode(image, 50),
    "jpeg_q30": lambda image: encode(image, 30),
    "resize_0.5": _resized(0.5),
    "resize_0.25": _resized(0.25),
    "resize_1.5": _resized(1.5),
    "crop_2%": _cropped(2),
    "crop_4%": _cropped(4),
    "crop_6%": _cropped(6),
    "crop_4%_corner": _cropped(4, centred=False),
    "resize_0.5+crop_4%+q50": lambda image: encode(
        Image.open(io.BytesIO(_cropped(4)(image.resize((image.width // 2, image.height // 2))))), 50
    ),
}
