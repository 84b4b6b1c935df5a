"""One image seen by both sides of `sgpipe compare`: which boxes are the same, which relations are.

A relation is identified by (image, subject box, object box, relation text). Boxes are matched in
two steps, one to one:
1. by annotation id: a box of B is the box of A with the same id when their coordinates also agree
   within the tolerance. Ids alone are not trusted: RLIPv2's own files number boxes with a running
   counter, which can equal an unrelated annotation id of the other side; sgpipe corpora and their
   exports carry the source's annotation ids, so there this step pairs every box, and tells apart
   duplicate boxes (same coordinates, different ids) that coordinates cannot.
2. by coordinates: the boxes left are paired closest first, the distance being the largest of the
   four differences |x|, |y|, |w|, |h| in pixels, within the tolerance.

The tolerance (default 0.5 px) is below a pixel, so two boxes within it cover the same pixels, and far
above what the same annotation loses on its way through either side: RLIPv2 writes boxes back from
normalised float32 cx, cy, w, h (a relative error of ~1e-7, 1e-3 px at 8,000 px), COCO stores
coordinates to 0.01 px, and JSON round trips are exact. A box clipped to the image by one side and
not the other differs by more, and is rightly a different box.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sgpipe.tools.compare_sources import ImageLabels

BOX_TOLERANCE_PX = 0.5
A, B = "a", "b"
BoxRef = tuple[str, int]  # (side whose box it is, index among that side's boxes)
RelationKey = tuple[BoxRef, BoxRef, str]


@dataclass(slots=True)
class BoxMatch:
    b_to_a: list[int | None]  # for each box of B, the box of A it is, if any
    by_id: int = 0
    by_coordinates: int = 0
    only_a: int = 0
    only_b: int = 0


def match_boxes(a: ImageLabels, b: ImageLabels, tolerance: float = BOX_TOLERANCE_PX) -> BoxMatch:
    match = BoxMatch([None] * len(b.boxes))
    if a.boxes and b.boxes:
        a_xywh = np.array([box.bbox for box in a.boxes], dtype=np.float64)
        b_xywh = np.array([box.bbox for box in b.boxes], dtype=np.float64)
        distance = np.abs(b_xywh[:, None, :] - a_xywh[None, :, :]).max(axis=2)  # [B boxes, A boxes]
        taken: set[int] = set()
        by_id: dict[Any, list[int]] = {}
        for i, box in enumerate(a.boxes):
            if box.id is not None:
                by_id.setdefault(box.id, []).append(i)
        for j, box in enumerate(b.boxes):
            for i in by_id.get(box.id, ()) if box.id is not None else ():
                if i not in taken and distance[j, i] <= tolerance:
                    match.b_to_a[j], match.by_id = i, match.by_id + 1
                    taken.add(i)
                    break
        rows, columns = np.nonzero(distance <= tolerance)
        for _, j, i in sorted(zip(distance[rows, columns].tolist(), rows.tolist(), columns.tolist())):
            if match.b_to_a[j] is None and i not in taken:
                match.b_to_a[j], match.by_coordinates = i, match.by_coordinates + 1
                taken.add(i)
    matched = match.by_id + match.by_coordinates
    match.only_a, match.only_b = len(a.boxes) - matched, len(b.boxes) - matched
    return match


@dataclass(slots=True)
class RelationTable:
    """An image's selected relations by key; a repeated key keeps its highest confidence (as RLIPv2's
    `deduplicate_verb_tagger_output` does) and is counted."""

    confidence: dict[RelationKey, float | None] = field(default_factory=dict)
    duplicates: int = 0


def relation_table(labels: ImageLabels, side: str, b_to_a: list[int | None] | None = None) -> RelationTable:
    """Keys in A's terms: B's boxes that are A's boxes are named as A's (`b_to_a`)."""

    def ref(index: int) -> BoxRef:
        if b_to_a is not None and b_to_a[index] is not None:
            return (A, b_to_a[index])
        return (side, index)

    table = RelationTable()
    for relation in labels.relations:
        key = (ref(relation.subject), ref(relation.object), relation.text)
        if key in table.confidence:
            table.duplicates += 1
            old = table.confidence[key]
            if relation.confidence is None or (old is not None and old >= relation.confidence):
                continue
        table.confidence[key] = relation.confidence
    return table


@dataclass(slots=True)
class ImageDiff:
    both: list[tuple[RelationKey, float | None, float | None]]
    only_a: list[tuple[RelationKey, float | None]]
    only_b: list[tuple[RelationKey, float | None]]
    boxes: BoxMatch | None = None
    duplicates_a: int = 0
    duplicates_b: int = 0


def diff_image(
    a: ImageLabels | None, b: ImageLabels | None, tolerance: float = BOX_TOLERANCE_PX
) -> ImageDiff:
    """The relations of one image in both sides, only in A, only in B (an absent side has none)."""
    boxes = match_boxes(a, b, tolerance) if a is not None and b is not None else None
    table_a = relation_table(a, A) if a is not None else RelationTable()
    table_b = relation_table(b, B, boxes.b_to_a if boxes else None) if b is not None else RelationTable()
    both = [(k, c, table_b.confidence[k]) for k, c in table_a.confidence.items() if k in table_b.confidence]
    return ImageDiff(
        both=both,
        only_a=[(k, c) for k, c in table_a.confidence.items() if k not in table_b.confidence],
        only_b=[(k, c) for k, c in table_b.confidence.items() if k not in table_a.confidence],
        boxes=boxes,
        duplicates_a=table_a.duplicates,
        duplicates_b=table_b.duplicates,
    )
