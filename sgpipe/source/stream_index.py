"""One-time streaming index of Objects365-size annotation files into per-shard entry files.

A 1.7M-image, 25M-box JSON does not fit a worker when loaded whole. Three streaming passes
(ijson's C backend lexes the file; only matching items become Python objects): images, then
categories, then annotations, which are routed to per-shard bucket files through a bounded
buffer. Each shard's entries are then assembled from its bucket alone. Peak memory holds the
image table (ids, sizes, names) and one buffer, never the boxes of the whole dataset.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import ijson

from sgpipe.errors import SourceError
from sgpipe.records import Caption, ImageEntry
from sgpipe.source.boxes import sanitize_box
from sgpipe.source.coco import category_names, ordered_images
from sgpipe.source.entries import write_entries

FLUSH_EVERY = 500_000  # annotations buffered before they go to the bucket files


def _stream(path: Path, prefix: str) -> Any:
    handle = open(path, "rb")
    try:
        yield from ijson.items(handle, prefix, use_float=True)
    except ijson.JSONError as error:
        raise SourceError(f"instances file {str(path)!r} is not valid JSON: {error}") from None
    finally:
        handle.close()


def stream_index(
    instances: Path,
    plan_dir: Path,
    samples_per_shard: int,
    limit: int,
    captions: dict[int, list[Caption]] | None,
    shard_file: Callable[[int], Path],
) -> tuple[list[int], list[str], dict[str, int]]:
    """Write one entries file per shard; return shard sizes, category names and dataset counters."""
    rows, unusable = ordered_images(list(_stream(instances, "images.item")))
    if not rows and unusable == 0:
        raise SourceError(f"instances file {str(instances)!r}: no images found")
    if limit:
        rows = rows[:limit]
    names = category_names(list(_stream(instances, "categories.item")))

    shard_of: dict[int, int] = {}
    for position, row in enumerate(rows):
        if not row[4]:  # duplicates get no boxes: the first entry wins
            shard_of[row[0]] = position // samples_per_shard
    n_shards = (len(rows) + samples_per_shard - 1) // samples_per_shard

    buckets = plan_dir / "buckets"
    shutil.rmtree(buckets, ignore_errors=True)
    buckets.mkdir(parents=True)
    buffer: dict[int, list[str]] = defaultdict(list)
    buffered = malformed = 0

    def flush() -> None:
        for shard, lines in buffer.items():
            with open(buckets / f"{shard:05d}.jsonl", "a", encoding="utf-8") as handle:
                handle.writelines(lines)
        buffer.clear()

    for annotation in _stream(instances, "annotations.item"):
        try:
            shard = shard_of.get(int(annotation["image_id"])) if "id" in annotation else None
        except (KeyError, TypeError, ValueError):
            shard = None
        if "id" not in annotation or "image_id" not in annotation:
            malformed += 1
            continue
        if shard is None:
            continue
        buffer[shard].append(json.dumps(annotation, separators=(",", ":")) + "\n")
        buffered += 1
        if buffered >= FLUSH_EVERY:
            flush()
            buffered = 0
    flush()

    sizes = []
    for shard in range(n_shards):
        shard_rows = rows[shard * samples_per_shard : (shard + 1) * samples_per_shard]
        by_image: dict[int, list[dict]] = defaultdict(list)
        bucket = buckets / f"{shard:05d}.jsonl"
        if bucket.exists():
            with open(bucket, encoding="utf-8") as handle:
                for line in handle:
                    annotation = json.loads(line)
                    by_image[int(annotation["image_id"])].append(annotation)
        entries = []
        for image_id, file_name, width, height, duplicate in shard_rows:
            entry = ImageEntry(image_id, file_name, width, height, duplicate=duplicate)
            if not duplicate:
                for annotation in by_image.get(image_id, []):
                    box = sanitize_box(annotation, names, width, height, entry.dropped_boxes)
                    if box is not None:
                        entry.objects.append(box)
                entry.objects.sort(key=lambda b: b.id)
                entry.captions = list((captions or {}).get(image_id, []))
            entries.append(entry)
        write_entries(shard_file(shard), entries)
        sizes.append(len(entries))
        if bucket.exists():
            os.unlink(bucket)
    shutil.rmtree(buckets, ignore_errors=True)
    counters = {"images_unusable": unusable, "annotations_malformed": malformed}
    return sizes, [names[i] for i in sorted(names)], counters
