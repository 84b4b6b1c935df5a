"""The world's relations, decided from boxes (and, for in front of / behind, from pixels and draw order).

Boxes are (x0, y0, x1, y1) with exclusive ends; y grows downwards. For subject a and object b:

- above(a, b):    a.y1 <= b.y0 and x_overlap(a, b) >= 0.5 * min(a.w, b.w)
- below(a, b):    above(b, a)
- left of(a, b):  a.x1 <= b.x0 and y_overlap(a, b) >= 0.5 * min(a.h, b.h)
- right of(a, b): left of(b, a)
- next to(a, b):  (left of or right of)(a, b) and the horizontal gap <= 0.5 * min(a.w, b.w)
- on(a, b):       0 <= b.y0 - a.y1 <= 2 and b.x0 <= centre_x(a) <= b.x1
- inside(a, b):   a's box strictly inside b's box (every edge strictly within)
- in front of(a, b): the two shapes share >= 30 pixels, neither box contains the other, and a is
                     drawn after b; behind(a, b) = in front of(b, a)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sgpipe.synth.shapes import Box

PREDICATES = ("above", "below", "left of", "right of", "next to", "on", "inside", "in front of", "behind")
INVERSE = {
    "above": "below",
    "below": "above",
    "left of": "right of",
    "right of": "left of",
    "in front of": "behind",
    "behind": "in front of",
}
ON_MAX_GAP = 2
MIN_OVERLAP_PX = 30

Triple = tuple[int, int, str]  # (subject index or id, object index or id, predicate)


def width(a: Box) -> int:
    return a[2] - a[0]


def height(a: Box) -> int:
    return a[3] - a[1]


def x_overlap(a: Box, b: Box) -> int:
    return min(a[2], b[2]) - max(a[0], b[0])


def y_overlap(a: Box, b: Box) -> int:
    return min(a[3], b[3]) - max(a[1], b[1])


def above(a: Box, b: Box) -> bool:
    return a[3] <= b[1] and x_overlap(a, b) >= 0.5 * min(width(a), width(b))


def left_of(a: Box, b: Box) -> bool:
    return a[2] <= b[0] and y_overlap(a, b) >= 0.5 * min(height(a), height(b))


def next_to(a: Box, b: Box) -> bool:
    if left_of(a, b):
        gap = b[0] - a[2]
    elif left_of(b, a):
        gap = a[0] - b[2]
    else:
        return False
    return gap <= 0.5 * min(width(a), width(b))


def on(a: Box, b: Box) -> bool:
    return 0 <= b[1] - a[3] <= ON_MAX_GAP and b[0] <= (a[0] + a[2]) / 2 <= b[2]


def inside(a: Box, b: Box) -> bool:
    return b[0] < a[0] and a[2] < b[2] and b[1] < a[1] and a[3] < b[3]


def contains(a: Box, b: Box) -> bool:
    """b lies within a, edges may touch."""
    return a[0] <= b[0] and b[2] <= a[2] and a[1] <= b[1] and b[3] <= a[3]


def in_front(a: Box, b: Box, overlap_px: int, a_rank: int, b_rank: int) -> bool:
    return overlap_px >= MIN_OVERLAP_PX and not contains(a, b) and not contains(b, a) and a_rank > b_rank


def box_predicates(a: Box, b: Box) -> list[str]:
    """Every box-decided predicate that holds for (a, b)."""
    found = []
    if above(a, b):
        found.append("above")
    if above(b, a):
        found.append("below")
    if left_of(a, b):
        found.append("left of")
    if left_of(b, a):
        found.append("right of")
    if next_to(a, b):
        found.append("next to")
    if on(a, b):
        found.append("on")
    if inside(a, b):
        found.append("inside")
    return found


def true_relations(boxes: Sequence[Box], masks: Sequence[np.ndarray], ranks: Sequence[int]) -> set[Triple]:
    """All relations among objects given by index: boxes, their shape masks and draw ranks."""
    truth: set[Triple] = set()
    for i, a in enumerate(boxes):
        for j, b in enumerate(boxes):
            if i == j:
                continue
            truth.update((i, j, p) for p in box_predicates(a, b))
            if i < j and x_overlap(a, b) > 0 and y_overlap(a, b) > 0:
                overlap = int(np.count_nonzero(masks[i] & masks[j]))
                if in_front(a, b, overlap, ranks[i], ranks[j]):
                    truth.update({(i, j, "in front of"), (j, i, "behind")})
                elif in_front(b, a, overlap, ranks[j], ranks[i]):
                    truth.update({(j, i, "in front of"), (i, j, "behind")})
    return truth


def false_statements(truth: set[Triple]) -> list[Triple]:
    """Statements that are clearly false given the truth: the kind of errors a captioner makes.

    Swapped direction or depth of a true pair (above/below, left/right, in front/behind), a support
    turned upside down ("b on a" for a on b), a containment reversed or turned into occlusion
    ("star behind ring" for a star drawn inside a ring), "next to" for a vertically stacked pair.
    """
    candidates: set[Triple] = set()
    for s, o, p in truth:
        if p in INVERSE:
            candidates.add((s, o, INVERSE[p]))
        if p == "below":
            candidates.add((s, o, "on"))
        if p in ("above", "below") and not any((s, o, q) in truth for q in ("left of", "right of")):
            candidates.add((s, o, "next to"))
        if p == "inside":
            candidates.update({(o, s, "inside"), (s, o, "behind")})
    return sorted(candidates - truth)
