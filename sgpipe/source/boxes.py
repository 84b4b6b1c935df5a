"""Per-box sanity: a bad box is dropped or clipped and counted; it never fails its image."""

from __future__ import annotations

import math
from typing import Any, Iterable

from sgpipe.records import Box


def sanitize_box(
    annotation: dict[str, Any], categories: dict[int, str], width: int, height: int, dropped: dict[str, int]
) -> Box | None:
    """Return a clean Box, or None after counting why it was dropped (in `dropped`)."""

    def drop(reason: str) -> None:
        dropped[reason] = dropped.get(reason, 0) + 1

    bbox = annotation.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        drop("box_malformed")
        return None
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        drop("box_malformed")
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        drop("box_nan")
        return None
    if w <= 0 or h <= 0:
        drop("box_zero_area")
        return None
    category_id = annotation.get("category_id")
    if category_id not in categories:
        drop("box_unknown_category")
        return None
    if width > 0 and height > 0:
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(float(width), x + w), min(float(height), y + h)
        if x1 <= x0 or y1 <= y0:
            drop("box_outside")
            return None
        if (x0, y0, x1, y1) != (x, y, x + w, y + h):
            drop("box_clipped")
        x, y, w, h = x0, y0, x1 - x0, y1 - y0
    try:
        box_id = int(annotation["id"])
    except (KeyError, TypeError, ValueError):
        drop("box_malformed")
        return None
    return Box(
        id=box_id,
        category=categories[category_id],
        category_id=int(category_id),
        bbox=[x, y, w, h],
        iscrowd=int(bool(annotation.get("iscrowd", 0))),
    )


def known_category(annotation: dict[str, Any], categories: dict[int, str]) -> int | None:
    """The annotation's category id when the file names it, whatever its box."""
    category_id = annotation.get("category_id")
    return int(category_id) if category_id in categories else None


def annotation_categories(all_ids: Iterable[int], kept_ids: Iterable[int]) -> list[int] | None:
    """An entry's `annotation_categories` from the category ids of all its annotations and of its kept
    boxes, both in file order: None where both give the same distinct order (no dropped box changes it)."""
    order = list(dict.fromkeys(all_ids))
    return None if order == list(dict.fromkeys(kept_ids)) else order
