"""The synthetic world's vocabulary (shape categories, colours) and how each shape is rasterised.

A shape is a function of (category, box) only, and its drawn pixels fill the box exactly (tight
bounding box), so masks can be re-rendered from the annotation boxes alone.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive

CATEGORIES = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "heart")

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "green": (30, 165, 60),
    "blue": (35, 75, 225),
    "yellow": (245, 215, 30),
    "orange": (250, 135, 20),
    "purple": (140, 50, 190),
    "white": (248, 248, 248),
    "black": (15, 15, 15),
}

RING_WIDTH = 0.2  # stroke width of a ring, as a fraction of its size


def _normalise(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    return [((x - x0) / (x1 - x0), (y - y0) / (y1 - y0)) for x, y in points]


def _star() -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        radius = 1.0 if k % 2 == 0 else 0.45
        angle = -math.pi / 2 + k * math.pi / 5
        points.append((radius * math.cos(angle), radius * math.sin(angle)))
    return _normalise(points)


def _heart() -> list[tuple[float, float]]:
    points = []
    for k in range(56):
        t = 2 * math.pi * k / 56
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append((x, -y))
    return _normalise(points)


def _cross(arm: float = 0.34) -> list[tuple[float, float]]:
    a, b = 0.5 - arm / 2, 0.5 + arm / 2
    return [(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b), (0, a), (a, a)]


# Unit-square outlines of the polygon shapes, computed once.
_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "triangle": [(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)],
    "diamond": [(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)],
    "star": _star(),
    "heart": _heart(),
    "cross": _cross(),
}


def draw_shape(draw: ImageDraw.ImageDraw, category: str, box: Box, fill) -> None:
    """Rasterise one shape filling `box` (exclusive ends) with `fill`."""
    x0, y0, x1, y1 = box
    right, bottom = x1 - 1, y1 - 1  # PIL coordinates are inclusive
    if category == "circle":
        draw.ellipse((x0, y0, right, bottom), fill=fill)
    elif category == "square":
        draw.rectangle((x0, y0, right, bottom), fill=fill)
    elif category == "ring":
        width = max(2, round(RING_WIDTH * min(x1 - x0, y1 - y0)))
        draw.ellipse((x0, y0, right, bottom), outline=fill, width=width)
    elif category in _POLYGONS:
        sx, sy = right - x0, bottom - y0
        draw.polygon([(x0 + u * sx, y0 + v * sy) for u, v in _POLYGONS[category]], fill=fill)
    else:
        raise ValueError(f"unknown shape category {category!r}; choose from: {', '.join(CATEGORIES)}")


def shape_mask(category: str, box: Box, size: tuple[int, int]) -> np.ndarray:
    """Boolean (height, width) mask of the shape's pixels on a canvas of `size` (width, height)."""
    canvas = Image.new("L", size, 0)
    draw_shape(ImageDraw.Draw(canvas), category, box, 255)
    return np.asarray(canvas) > 0


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
