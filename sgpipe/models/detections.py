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
Boxes are clipped to the image; one with no area left is dropped. Pure numpy, vectorised over
proposals (Grounding DINO makes 900 per image): the tests check it on hand-made scores.
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
    scores = np.asarray(scores).reshape(len(clipped), -1)
    is_box = scores.max(axis=1, initial=0.0) >= thresholds.box  # a proposal's best phrase reaches it
    has_area = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    proposals, columns = np.nonzero((scores >= thresholds.text) & (is_box & has_area)[:, None])
    found = [
        Candidate(float(scores[q, c]), phrase_ranks[c], first_serial + int(q), tuple(clipped[q].tolist()))
        for q, c in zip(proposals, columns)
    ]
    return found, int(np.count_nonzero(is_box & ~has_area))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(ious(np.asarray(a, dtype=np.float64), np.asarray([b], dtype=np.float64))[0])


def ious(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of `others` [n, 4]."""
    inter_w = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = inter_w * inter_h
    area = (box[2] - box[0]) * (box[3] - box[1])
    union = area + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def select(
    found: list[Candidate], phrases: list[str], thresholds: Thresholds
) -> tuple[list[Detection], dict[str, int]]:
    """Per-phrase NMS, then the best `max_boxes`; returns the detections, best first, and counts of
    what each step removed. A phrase stops at `max_boxes` survivors: a later one of its boxes could
    never be among the image's best `max_boxes`, so the cap drops it (and NMS need not look at it)."""
    by_phrase: dict[int, list[Candidate]] = {}
    for candidate in sorted(found, key=lambda c: c.order):
        by_phrase.setdefault(candidate.phrase_rank, []).append(candidate)
    kept: list[Candidate] = []
    suppressed = 0
    for group in by_phrase.values():
        boxes = np.array([c.box for c in group], dtype=np.float64)
        survivors: list[int] = []
        for index in range(len(group)):
            if len(survivors) == thresholds.max_boxes:
                break
            if survivors and ious(boxes[index], boxes[survivors]).max() > thresholds.nms_iou:
                suppressed += 1
                continue
            survivors.append(index)
        kept += [group[i] for i in survivors]
    kept.sort(key=lambda c: c.order)
    detections = [Detection(phrases[c.phrase_rank], c.score, c.box) for c in kept[: thresholds.max_boxes]]
    counts = {
        "detect_suppressed": suppressed,
        "detect_over_max_boxes": len(found) - suppressed - len(detections),
    }
    return detections, counts
