"""Scene layout: which shapes an image holds, where, and in which order they are drawn.

A scene is built from units placed apart from each other on the canvas: a single shape, a stack
(one shape resting on another), a container with a shape inside, or an overlapping pair. Units are
placed relative to an earlier unit (above/below/left/right at a small or large gap) so directional
relations are common. Within an overlapping pair the geometry is sampled exchangeably and the
front shape is then chosen by a coin flip, so boxes carry no hint of the depth order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from sgpipe.synth.geometry import contains
from sgpipe.synth.shapes import CATEGORIES, COLORS, Box, shape_mask

SUPPORTS = ("square", "circle", "ring", "cross", "heart")
# Largest inner size per container size, so the inner shape stays within the container's interior.
CONTAINERS = {"ring": 0.38, "square": 0.62, "circle": 0.6, "diamond": 0.45}
UNIT_GAP = 6  # minimum free pixels between units


@dataclass(slots=True)
class Shape:
    category: str
    color: str
    box: Box
    rank: int = 0  # draw order: higher is drawn later (on top)


class _Palette:
    """Draws (colour, category) pairs never used before in the image, so each shape is nameable."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[tuple[str, str]] = set()

    def pick(self, categories=CATEGORIES, avoid_colors: tuple[str, ...] = ()) -> tuple[str, str]:
        while True:
            category = self.rng.choice(categories)
            color = self.rng.choice([c for c in COLORS if c not in avoid_colors])
            if (color, category) not in self.used:
                self.used.add((color, category))
                return color, category


def _box(cx: float, cy: float, w: int, h: int) -> Box:
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    return (x0, y0, x0 + w, y0 + h)


def _single(rng: random.Random, palette: _Palette, scale: float) -> list[Shape]:
    color, category = palette.pick()
    size = rng.randint(int(36 * scale), int(92 * scale))
    return [Shape(category, color, (0, 0, size, size))]


def _stack(rng: random.Random, palette: _Palette, scale: float) -> list[Shape]:
    base_color, base_cat = palette.pick(SUPPORTS)
    top_color, top_cat = palette.pick(avoid_colors=(base_color,))
    base = rng.randint(int(60 * scale), int(100 * scale))
    top = rng.randint(int(34 * scale), min(int(80 * scale), base))
    cx = base / 2 + rng.uniform(-0.25, 0.25) * base
    top_box = _box(cx, 0, top, top)
    top_box = (top_box[0], 0, top_box[2], top)
    gap = rng.choice((0, 1))
    base_box = (0, top + gap, base, top + gap + base)
    return [Shape(base_cat, base_color, base_box, 0), Shape(top_cat, top_color, top_box, 1)]


def _container(rng: random.Random, palette: _Palette, scale: float) -> list[Shape]:
    outer_color, outer_cat = palette.pick(tuple(CONTAINERS))
    inner_color, inner_cat = palette.pick(avoid_colors=(outer_color,))
    size = rng.randint(int(100 * scale), int(150 * scale))
    room = CONTAINERS[outer_cat] * size
    inner = max(14, int(rng.uniform(0.3, 1.0) * room))
    slack = (room - inner) / 2
    cx = size / 2 + rng.uniform(-slack, slack)
    cy = size / 2 + rng.uniform(-slack, slack)
    return [
        Shape(outer_cat, outer_color, (0, 0, size, size), 0),
        Shape(inner_cat, inner_color, _box(cx, cy, inner, inner), 1),
    ]


def _overlap(rng: random.Random, palette: _Palette, scale: float) -> list[Shape] | None:
    first_color, first_cat = palette.pick()
    second_color, second_cat = palette.pick(avoid_colors=(first_color,))
    for _ in range(30):
        s1 = rng.randint(int(46 * scale), int(96 * scale))
        s2 = rng.randint(int(46 * scale), int(96 * scale))
        angle = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(0.3, 0.75) * (s1 + s2) / 2
        span = s1 + s2 + 4
        a = _box(span, span, s1, s1)
        b = _box(span + dist * np.cos(angle), span + dist * np.sin(angle), s2, s2)
        if contains(a, b) or contains(b, a):
            continue
        canvas = (2 * span, 2 * span)
        ma, mb = shape_mask(first_cat, a, canvas), shape_mask(second_cat, b, canvas)
        shared = int(np.count_nonzero(ma & mb))
        smaller = min(int(ma.sum()), int(mb.sum()))
        # Either shape must stay mostly visible if it ends up behind: checked for both orders,
        # so the accepted geometry does not depend on the coin flip below.
        if shared < max(60, 0.1 * smaller) or shared > 0.45 * smaller:
            continue
        front = rng.random() < 0.5
        return [
            Shape(first_cat, first_color, a, int(front)),
            Shape(second_cat, second_color, b, int(not front)),
        ]
    return None


def _bounds(unit: list[Shape]) -> Box:
    return (
        min(s.box[0] for s in unit),
        min(s.box[1] for s in unit),
        max(s.box[2] for s in unit),
        max(s.box[3] for s in unit),
    )


def _shift(unit: list[Shape], dx: int, dy: int) -> list[Shape]:
    return [
        Shape(s.category, s.color, (s.box[0] + dx, s.box[1] + dy, s.box[2] + dx, s.box[3] + dy), s.rank)
        for s in unit
    ]


def _clear(box: Box, placed: list[Box], size: int) -> bool:
    if box[0] < 2 or box[1] < 2 or box[2] > size - 2 or box[3] > size - 2:
        return False
    gap = UNIT_GAP
    return all(
        box[2] + gap <= p[0] or p[2] + gap <= box[0] or box[3] + gap <= p[1] or p[3] + gap <= box[1]
        for p in placed
    )


def _place(rng: random.Random, w: int, h: int, placed: list[Box], size: int) -> tuple[int, int] | None:
    """Top-left corner for a w x h unit: next to an earlier unit when possible, else anywhere free."""
    for attempt in range(60):
        if placed and attempt < 40:
            anchor = rng.choice(placed)
            direction = rng.choice(("left", "right", "above", "below"))
            gap = rng.randint(UNIT_GAP, 18) if rng.random() < 0.5 else rng.randint(19, 70)
            acx, acy = (anchor[0] + anchor[2]) / 2, (anchor[1] + anchor[3]) / 2
            if direction in ("left", "right"):
                jitter = rng.uniform(-0.3, 0.3) * min(h, anchor[3] - anchor[1])
                y = int(round(acy + jitter - h / 2))
                x = anchor[0] - gap - w if direction == "left" else anchor[2] + gap
            else:
                jitter = rng.uniform(-0.3, 0.3) * min(w, anchor[2] - anchor[0])
                x = int(round(acx + jitter - w / 2))
                y = anchor[1] - gap - h if direction == "above" else anchor[3] + gap
        else:
            if w > size - 4 or h > size - 4:
                return None
            x, y = rng.randint(2, size - 2 - w), rng.randint(2, size - 2 - h)
        if _clear((x, y, x + w, y + h), placed, size):
            return x, y
    return None


def sample_scene(rng: random.Random, size: int) -> list[Shape]:
    """2-5 shapes with unique (colour, category), in annotation order; ranks give the draw order."""
    scale = size / 320
    palette = _Palette(rng)
    target = rng.randint(2, 5)
    shapes: list[Shape] = []
    placed: list[Box] = []
    while len(shapes) < target:
        left = target - len(shapes)
        kinds = ["single", "stack", "container", "overlap"] if left >= 2 else ["single"]
        kind = rng.choices(kinds, weights=[3, 2, 2, 3][: len(kinds)])[0]
        unit = {"single": _single, "stack": _stack, "container": _container, "overlap": _overlap}[kind](
            rng, palette, scale
        )
        if unit is None:
            continue
        x0, y0, x1, y1 = _bounds(unit)
        corner = _place(rng, x1 - x0, y1 - y0, placed, size)
        if corner is None:
            break  # the canvas is full: keep what fits
        unit = _shift(unit, corner[0] - x0, corner[1] - y0)
        placed.append(_bounds(unit))
        base_rank = len(shapes)
        shapes.extend(Shape(s.category, s.color, s.box, base_rank + s.rank) for s in unit)
    return shapes
