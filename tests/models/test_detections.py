"""The detector's post-processing on hand-made scores: thresholds, per-phrase NMS, the cap, frames."""

import numpy as np
import pytest

from sgpipe.models.detections import Thresholds, candidates, corners, iou, select


def _boxes(*rows):
    return np.array(rows, dtype=np.float64)


def test_a_box_needs_its_best_phrase_at_box_threshold_and_each_phrase_at_text_threshold():
    scores = np.array([[0.9, 0.3], [0.3, 0.2], [0.5, 0.6], [0.4, 0.25]])
    boxes = _boxes([0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10], [0, 40, 10, 50])
    found, degenerate = candidates(scores, boxes, [0, 1], Thresholds(box=0.4, text=0.25), (100, 100))
    # q0: both phrases; q1: best 0.3 < 0.4, none; q2: both; q3: best exactly 0.4 and 0.25 exactly: both
    assert [(c.serial, c.phrase_rank, c.score) for c in found] == [
        (0, 0, 0.9), (0, 1, 0.3), (2, 0, 0.5), (2, 1, 0.6), (3, 0, 0.4), (3, 1, 0.25)
    ]
    assert degenerate == 0


def test_boxes_are_clipped_and_empty_ones_dropped():
    scores = np.array([[0.9], [0.9], [0.9]])
    boxes = _boxes([-5, -5, 10, 10], [100, 10, 120, 20], [30, 30, 30, 40])  # partly out, out, no width
    settings = Thresholds(box=0.5, text=0.5)
    found, degenerate = candidates(scores, boxes, [0], settings, (100, 80), first_serial=7)
    assert [(c.serial, c.box) for c in found] == [(7, (0.0, 0.0, 10.0, 10.0))]
    assert degenerate == 2


def test_corners_scale_normalised_centres_to_the_frame():
    out = corners(np.array([[0.5, 0.5, 0.2, 0.4], [0.1, 0.9, 0.2, 0.2]]), 100, 50)
    np.testing.assert_allclose(out, [[40, 15, 60, 35], [0, 40, 20, 50]])


def test_iou_by_hand():
    assert iou((0, 0, 10, 10), (1, 1, 11, 11)) == pytest.approx(81 / 119)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0


def _select(scores, boxes, phrases, **thresholds):
    settings = Thresholds(**{"box": 0.1, "text": 0.1, **thresholds})
    found, _ = candidates(np.array(scores), _boxes(*boxes), list(range(len(phrases))), settings, (100, 100))
    return select(found, phrases, settings)


def test_nms_suppresses_overlaps_within_a_phrase_only():
    boxes = ([0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60])  # IoU(0, 1) = 81 / 119 = 0.68
    scores = [[0.9, 0.2], [0.8, 0.7], [0.6, 0.0]]
    detections, counts = _select(scores, boxes, ["dog", "cat"], nms_iou=0.5)
    # dog: box 1 (0.8) overlaps its box 0 (0.9) and goes; cat: its box 0 (0.2) overlaps its box 1 (0.7)
    # and goes; cat's box 1 stays although dog's better box 0 overlaps it
    assert [(d.phrase, d.score, d.box[0]) for d in detections] == [
        ("dog", 0.9, 0.0), ("cat", 0.7, 1.0), ("dog", 0.6, 50.0)
    ]
    assert counts == {"detect_suppressed": 2, "detect_over_max_boxes": 0}


def test_nms_threshold_and_one_keeps_everything():
    boxes = ([0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10])
    scores = [[0.9], [0.8], [0.7]]
    assert len(_select(scores, boxes, ["dog"], nms_iou=0.5)[0]) == 1  # 0.68 and 1.0 overlaps
    assert len(_select(scores, boxes, ["dog"], nms_iou=0.7)[0]) == 2  # the identical box still goes
    assert len(_select(scores, boxes, ["dog"], nms_iou=1.0)[0]) == 3


def test_max_boxes_keeps_the_best_with_ties_by_phrase_then_proposal():
    boxes = ([0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70])
    scores = [[0.5, 0.9], [0.9, 0.5], [0.5, 0.3], [0.5, 0.5]]
    detections, counts = _select(scores, boxes, ["a", "b"], max_boxes=4, nms_iou=1.0)
    got = [(d.phrase, d.score, d.box[0]) for d in detections]
    # 0.9 ties: phrase a (rank 0) first; then the 0.5s: a's proposals 0, 2, 3 before b's
    assert got == [("a", 0.9, 20.0), ("b", 0.9, 0.0), ("a", 0.5, 0.0), ("a", 0.5, 40.0)]
    assert counts["detect_over_max_boxes"] == 4  # of 8 (proposal, phrase) detections


def test_a_phrase_stops_at_max_boxes_survivors():
    boxes = ([0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60])  # box 1 overlaps box 0 (IoU 0.68)
    detections, counts = _select([[0.9], [0.8], [0.7]], boxes, ["dog"], nms_iou=0.5, max_boxes=1)
    assert [(d.score, d.box[0]) for d in detections] == [(0.9, 0.0)]
    # boxes 1 and 2 could never make the cut: dropped by it, not looked at by NMS
    assert counts == {"detect_suppressed": 0, "detect_over_max_boxes": 2}
