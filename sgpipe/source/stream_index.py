"""One-time streaming index of Objects365-size annotation files into per-shard entry files.

A 1.7M-image, 25M-box JSON does not fit a worker when loaded whole. Three streaming passes
(ijson's C backend lexes the file; only matching items become Python objects): images, then
categories, then annotations, which are routed to per-shard bucket files through a bounded
buffer. Each shard's entries are then assembled from its bucket alone. Peak memory holds the
image table (ids, sizes, names) and one buffer, never the boxes of the whole dataset.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import ijson

from sgpipe.errors import SourceError
from sgpipe.records import Caption, ImageEntry
from sgpipe.source.boxes import annotation_categories, known_category, sanitize_box
from sgpipe.source.coco import category_names, ordered_images
from sgpipe.source.entries import box_json, entry_line, write_lines
from sgpipe.storage import Location, open_binary

FLUSH_EVERY = 500_000  # annotations buffered before they go to the bucket files


def _stream(path: Location, prefix: str) -> Any:
    handle = open_binary(path)
    try:
        yield from ijson.items(handle, prefix, use_float=True)
    except ijson.JSONError as error:
        raise SourceError(f"instances file {str(path)!r} is not valid JSON: {error}") from None
    finally:
        handle.close()


def stream_index(
    instances: Location,
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

    # image id -> (shard, width, height) of its first entry; duplicates get no boxes
    where: dict[int, tuple[int, int, int]] = {}
    for position, (image_id, _, width, height, duplicate) in enumerate(rows):
        if not duplicate:
            where[image_id] = (position // samples_per_shard, width, height)
    n_shards = (len(rows) + samples_per_shard - 1) // samples_per_shard

    buckets = plan_dir / "buckets"
    shutil.rmtree(buckets, ignore_errors=True)
    buckets.mkdir(parents=True)
    buffer: dict[int, list[str]] = defaultdict(list)
    drops: dict[int, dict[str, int]] = defaultdict(dict)  # only images with a bad box
    buffered = malformed = 0

    def flush() -> None:
        for shard, lines in buffer.items():
            with open(buckets / f"{shard:05d}.tsv", "a", encoding="utf-8") as handle:
                handle.writelines(lines)
        buffer.clear()

    for annotation in _stream(instances, "annotations.item"):
        try:
            image_id = int(annotation["image_id"])
            annotation["id"]
        except (KeyError, TypeError, ValueError):
            malformed += 1
            continue
        place = where.get(image_id)
        if place is None:
            continue
        shard, width, height = place
        dropped = drops[image_id] if image_id in drops else {}
        box = sanitize_box(annotation, names, width, height, dropped)
        if dropped:
            drops[image_id] = dropped
        category = known_category(annotation, names)
        if box is None and category is None:
            continue
        # boxes are formatted once, here; assembling a shard is then string work only. A dropped box
        # keeps a line (its category, no box): RLIPv2's matching reads every annotation's category
        text = box_json(box) if box is not None else ""
        buffer[shard].append(f"{image_id}\t{category}\t{text}\n")
        buffered += 1
        if buffered >= FLUSH_EVERY:
            flush()
            buffered = 0
    flush()

    sizes = []
    for shard in range(n_shards):
        shard_rows = rows[shard * samples_per_shard : (shard + 1) * samples_per_shard]
        by_image: dict[int, list[tuple[int, str]]] = defaultdict(list)  # (category, box JSON or ""), file order
        bucket = buckets / f"{shard:05d}.tsv"
        if bucket.exists():
            with open(bucket, encoding="utf-8") as handle:
                for line in handle:
                    image_id, category, text = line.rstrip("\n").split("\t", 2)
                    by_image[int(image_id)].append((int(category), text))
        lines = []
        for image_id, file_name, width, height, duplicate in shard_rows:
            entry = ImageEntry(image_id, file_name, width, height, duplicate=duplicate)
            boxes: list[str] = []
            if not duplicate:
                annotations = by_image.get(image_id, [])
                boxes = [text for _, text in annotations if text]
                entry.annotation_categories = annotation_categories(
                    (c for c, _ in annotations), (c for c, text in annotations if text)
                )
                entry.dropped_boxes = drops.get(image_id, {})
                entry.captions = list((captions or {}).get(image_id, []))
            lines.append(entry_line(entry, boxes))
        write_lines(shard_file(shard), lines)
        sizes.append(len(lines))
        bucket.unlink(missing_ok=True)
    shutil.rmtree(buckets, ignore_errors=True)
    counters = {"images_unusable": unusable, "annotations_malformed": malformed}
    return sizes, [names[i] for i in sorted(names)], counters
