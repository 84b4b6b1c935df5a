"""Tiny sgpipe output folders written in the test: hand-made records, small JPEGs, real shards."""

from __future__ import annotations

from pathlib import Path

from sgpipe.output.finalize import finalize_outputs
from sgpipe.output.writer import write_shard
from sgpipe.records import Box, Caption, Relation, Sample, Triplet
from tests.helpers.images import jpeg_bytes
from tests.helpers.samples import build_sample

PROVENANCE = {"sgpipe": "0.1.0", "config_hash": "0" * 16, "models": {}}


def output_sample(
    image_id: int,
    dataset: str = "t",
    verified: bool = True,
    relations: bool = True,
    width: int = 64,
    height: int = 48,
) -> Sample:
    """Three boxes; with `relations`, a kept and a dropped relation (or unverified ones), triplets."""
    base = image_id * 10
    sample = build_sample(
        image_id,
        dataset,
        width=width,
        height=height,
        objects=[
            Box(base + 1, "person", 1, [2, 2, 20, 30]),
            Box(base + 2, "dog", 18, [30, 20, 16, 12]),
            Box(base + 3, "bicycle", 2, [10, 25, 30, 20]),
        ],
        captions=[Caption(0, "a man riding a bicycle next to a dog", "annotation")],
        image_bytes=jpeg_bytes(width, height, image_id),
        image_ext="jpg",
    )
    if relations:
        sample.triplets = [
            Triplet("man", "ride", "bicycle", "a man", "riding", "a bicycle", 0, 2, [0]),
            Triplet("bicycle", "next to", "dog", "a bicycle", "next to", "a dog", 1, 1, [0]),
        ]
        sample.relations = [
            Relation(
                0, base + 1, base + 3, "ride", 0, 0.9, 0.8 if verified else None, True if verified else None
            ),
            Relation(
                1,
                base + 3,
                base + 2,
                "next to",
                1,
                0.7,
                0.1 if verified else None,
                False if verified else None,
            ),
        ]
    return sample


def make_output(
    out: Path,
    n_images: int = 5,
    per_shard: int = 2,
    dataset: str = "t",
    verified: bool = True,
    images: bool = True,
    failed: int = 1,
) -> list[Sample]:
    """Write shards of `n_images` ok samples (every 3rd without relations) plus `failed` missing ones."""
    samples = [output_sample(i + 1, dataset, verified, relations=(i % 3 != 2)) for i in range(n_images)]
    for j in range(failed):
        bad = build_sample(900 + j, dataset, file_name="gone.jpg", width=10, height=10)
        bad.fail("failed_missing", "no such file")
        samples.append(bad)
    for index, start in enumerate(range(0, len(samples), per_shard)):
        write_shard(
            out,
            index,
            samples[start : start + per_shard],
            PROVENANCE,
            write_images=images,
            timings={"wall_seconds": 0.5, "stages": {"parse": 0.1, "tag": 0.2}},
        )
    finalize_outputs(out, dataset)
    return samples
