"""Tiny scene-graph shards for the trainer tests, written with the real shard writer."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from sgpipe.output.writer import write_shard
from sgpipe.records import Box, Relation, Sample
from tests.helpers.images import encode_jpeg
from tests.helpers.samples import build_sample

COLORS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}


def squares_sample(image_id: int, rng: random.Random, size: int = 64) -> Sample:
    """Three squares; true relations are left of / right of by position, one false one per image."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    boxes = []
    for n, (name, color) in enumerate(COLORS.items()):
        x, y = rng.randint(0, size - 16), rng.randint(0, size - 16)
        draw.rectangle([x, y, x + 14, y + 14], fill=color)
        boxes.append(Box(id=100 * image_id + n, category=name, category_id=n + 1, bbox=[x, y, 14, 14]))
    relations = []
    a, b = rng.sample(boxes, 2)
    truth = "left of" if a.bbox[0] < b.bbox[0] else "right of"
    false = "right of" if truth == "left of" else "left of"
    relations.append(Relation(0, a.id, b.id, truth, 0, 1.0, confidence=1.0, kept=True))
    relations.append(Relation(1, a.id, b.id, false, 0, 1.0, confidence=0.0, kept=False))
    return build_sample(
        image_id,
        "synth",
        width=size,
        height=size,
        objects=boxes,
        relations=relations,
        image_bytes=encode_jpeg(image),
    )


def make_shards(out: Path, n_shards: int, per_shard: int, seed: int = 0, first_id: int = 1) -> list[str]:
    rng = random.Random(seed)
    image_id = first_id
    for index in range(n_shards):
        samples = []
        for _ in range(per_shard):
            samples.append(squares_sample(image_id, rng))
            image_id += 1
        write_shard(out, index, samples, {"sgpipe": "test"})
    return [str(out / f"{i:05d}.tar") for i in range(n_shards)]
