"""The geometric prior that ranks candidate box pairs of a triplet (`Relation.tag_score`, in [0, 1]).

    score = base                          when the predicate names no spatial relation
    score = (base + spatial) / 2          when it does
    base  = (proximity + overlap) / 2
      proximity = 1 / (1 + gap / scale)   gap: distance between the box edges (0 when they touch or
                                          overlap), scale: mean side length of the two boxes
      overlap   = intersection / smaller box area
    spatial: agreement of the geometry with the predicate's spatial word, 0.5 + 0.5 * tanh(offset / scale)
      above / below / left / right: the centres' offset along that direction
      on: subject higher than the object, and resting over it horizontally (mean of the two)
      inside: the share of the subject box that lies in the object box
      "in front of", "behind" and everything else: no spatial term (depth is not in the boxes)

Related objects touch or sit near each other, so nearby pairs come first; the prior only orders
the pairs of a triplet (for the per-triplet cap), the verifier decides.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ABOVE, BELOW, LEFT, RIGHT, ON, INSIDE = "above", "below", "left", "right", "on", "inside"
_DEPTH = {"front", "behind", "back"}
_WORDS = (
    ({"left"}, LEFT),
    ({"right"}, RIGHT),
    ({"above", "over", "atop", "top"}, ABOVE),
    ({"below", "under", "beneath", "underneath"}, BELOW),
    ({"on", "onto", "upon"}, ON),
    ({"in", "inside", "within", "into"}, INSIDE),
)


def spatial_relation(predicate: str) -> str | None:
    """The spatial relation a predicate names ("sit on" -> on, "to the left of" -> left), or None."""
    words = set(predicate.lower().split())
    if words & _DEPTH:
        return None
    for keys, relation in _WORDS:
        if words & keys:
            return relation
    return None


def tag_scores(subjects: np.ndarray, objects: np.ndarray, predicate: str = "") -> np.ndarray:
    """Priors for every (subject, object) pair of two [N, 4] / [M, 4] arrays of [x, y, w, h] boxes: [N, M]."""
    s = np.asarray(subjects, dtype=np.float64).reshape(-1, 1, 4)
    o = np.asarray(objects, dtype=np.float64).reshape(1, -1, 4)
    sx, sy, sw, sh = (s[..., k] for k in range(4))
    ox, oy, ow, oh = (o[..., k] for k in range(4))
    s_area, o_area = np.maximum(sw * sh, 0.0), np.maximum(ow * oh, 0.0)
    scale = np.maximum((np.sqrt(s_area) + np.sqrt(o_area)) / 2, 1e-6)
    inter_w = np.minimum(sx + sw, ox + ow) - np.maximum(sx, ox)
    inter_h = np.minimum(sy + sh, oy + oh) - np.maximum(sy, oy)
    gap = np.hypot(np.maximum(0.0, -inter_w), np.maximum(0.0, -inter_h))
    inter = np.maximum(0.0, inter_w) * np.maximum(0.0, inter_h)
    overlap = np.minimum(inter / np.maximum(np.minimum(s_area, o_area), 1e-6), 1.0)
    base = (1.0 / (1.0 + gap / scale) + overlap) / 2

    relation = spatial_relation(predicate)
    if relation is None:
        return base
    dx = (ox + ow / 2) - (sx + sw / 2)  # > 0: the subject is left of the object
    dy = (oy + oh / 2) - (sy + sh / 2)  # > 0: the subject is above the object (y grows downwards)
    if relation == ABOVE:
        spatial = _agree(dy, scale)
    elif relation == BELOW:
        spatial = _agree(-dy, scale)
    elif relation == LEFT:
        spatial = _agree(dx, scale)
    elif relation == RIGHT:
        spatial = _agree(-dx, scale)
    elif relation == ON:
        over = np.maximum(0.0, inter_w) / np.maximum(sw, 1e-6)
        spatial = (_agree(dy, scale) + np.minimum(over, 1.0)) / 2
    else:  # INSIDE
        spatial = inter / np.maximum(s_area, 1e-6)
    return (base + np.clip(spatial, 0.0, 1.0)) / 2


def tag_score(subject: Sequence[float], object_: Sequence[float], predicate: str = "") -> float:
    """Prior in [0, 1] for `subject predicate object` on two [x, y, w, h] boxes."""
    return float(tag_scores(np.asarray([subject]), np.asarray([object_]), predicate)[0, 0])


def _agree(offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(offset / scale)
