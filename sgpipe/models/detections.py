"""From a zero-shot detector's scores to an image's detections: thresholds, per-phrase NMS, a cap.

A model gives, for each of its box proposals ("queries") and each phrase it was asked about, the
probability that the phrase names what is in the box (Grounding DINO: the highest of the phrase's
token probabilities; OWL-ViT and OWLv2: the query's own probability). Then:

1. A proposal is a box when its best phrase reaches `box_threshold`; the phrases that reach
   `text_threshold` on it found it, each giving one detection (a box found by "man" and by "person"
   is an object of each phrase, so each phrase's triplets ground on it).
2. Per phrase, greedy non-maximum suppression: a detection whose box overlaps a better one of the
   same phrase by IoU above `nms_iou` is dropped (1.0 keeps them all).
3. The best `max_boxes` detections of the image are kept.

Ties are broken by phrase order, then proposal order, so the result never depends on sort stability.
Boxes are clipped to the image; one with no area left is dropped. Pure numpy: the tests check it on
hand-made scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Detection:
    phrase: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


@dataclass(frozen=True, slots=True)
class Thresholds:
    box: float = 0.35
    text: float = 0.25
    nms_iou: float = 0.5
    max_boxes: int = 50


@dataclass(frozen=True, slots=True)
class Candidate:
    score: float
    phrase_rank: int
    serial: int  # proposal order over the image's model rows
    box: tuple[float, float, float, float]

    @property
    def order(self) -> tuple[float, int, int]:
        return (-self.score, self.phrase_rank, self.serial)


def corners(boxes_cxcywh: np.ndarray, width: float, height: float) -> np.ndarray:
    """Normalised (cx, cy, w, h) -> pixel (x0, y0, x1, y1) in a `width` x `height` frame."""
    cx, cy, w, h = (boxes_cxcywh[:, i].astype(np.float64) for i in range(4))
    x0, y0, x1, y1 = (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height
    return np.stack([x0, y0, x1, y1], 1)


def candidates(
    scores: np.ndarray,
    boxes: np.ndarray,
    phrase_ranks: list[int],
    thresholds: Thresholds,
    image_size: tuple[int, int],
    first_serial: int = 0,
) -> tuple[list[Candidate], int]:
    """The (proposal, phrase) detections of one model row: `scores` [proposals, phrases], `boxes`
    [proposals, 4] pixel corners, `phrase_ranks` each column's phrase index in the image. Returns
    them and how many boxes were dropped for having no area inside the image."""
    width, height = image_size
    clipped = np.clip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), 0, [width, height, width, height])
    found, degenerate = [], 0
    best = scores.max(axis=1) if scores.size else np.zeros(len(boxes))
    for q in np.flatnonzero(best >= thresholds.box):
        x0, y0, x1, y1 = (float(v) for v in clipped[q])
        if x1 <= x0 or y1 <= y0:
            degenerate += 1
            continue
        for column in np.flatnonzero(scores[q] >= thresholds.text):
            score = float(scores[q, column])
            found.append(Candidate(score, phrase_ranks[column], first_serial + int(q), (x0, y0, x1, y1)))
    return found, degenerate


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def select(
    found: list[Candidate], phrases: list[str], thresholds: Thresholds
) -> tuple[list[Detection], dict[str, int]]:
    """Per-phrase NMS, then the best `max_boxes`; returns the detections, best first, and counts of
    what each step removed."""
    by_phrase: dict[int, list[Candidate]] = {}
    for candidate in sorted(found, key=lambda c: c.order):
        by_phrase.setdefault(candidate.phrase_rank, []).append(candidate)
    kept: list[Candidate] = []
    for group in by_phrase.values():
        survivors: list[Candidate] = []
        for candidate in group:
            if all(iou(candidate.box, other.box) <= thresholds.nms_iou for other in survivors):
                survivors.append(candidate)
        kept += survivors
    kept.sort(key=lambda c: c.order)
    counts = {
        "detect_suppressed": len(found) - len(kept),
        "detect_over_max_boxes": max(0, len(kept) - thresholds.max_boxes),
    }
    detections = [Detection(phrases[c.phrase_rank], c.score, c.box) for c in kept[: thresholds.max_boxes]]
    return detections, counts
