"""RLIPv2's test-time inputs: resize (short side to min_size, long side at most max_size), ImageNet
normalisation, boxes from COCO xywh pixels to cxcywh normalised by the resized size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass
class TaggerInput:
    """One image and its candidate group: `pairs` are (subject box index, object box index).

    Any sequence is accepted where one is asked (lists, tuples, numpy arrays, a [K, 2] integer array of
    pairs, a [N, 4] array of boxes) and normalised on construction to lists of Python values; a malformed
    field (a lone string for `texts`, a pair of three, a fractional index) is a ValueError naming it."""

    image: Image.Image
    boxes_xywh: Sequence[Sequence[float]]
    box_labels: Sequence[int]
    pairs: Sequence[tuple[int, int]]
    texts: Sequence[str]
    category_names: Sequence[str]

    def __post_init__(self) -> None:
        self.boxes_xywh = [_numbers(box) for box in _rows(self.boxes_xywh, "boxes_xywh")]
        self.box_labels = [_index(v, "box label") for v in _sequence(self.box_labels, "box_labels")]
        pairs = _rows(self.pairs, "pairs")
        for pair in pairs:
            if len(pair) != 2:
                raise ValueError(f"pair {list(pair)} is not (subject box, object box)")
        self.pairs = [(_index(s, "pair index"), _index(o, "pair index")) for s, o in pairs]
        self.texts = _strings(self.texts, "texts")
        self.category_names = _strings(self.category_names, "category_names")

    def check(self) -> None:
        if len(self.boxes_xywh) != len(self.box_labels):
            raise ValueError(f"{len(self.boxes_xywh)} boxes but {len(self.box_labels)} box labels")
        for label in self.box_labels:
            if not 0 <= label < len(self.category_names):
                raise ValueError(f"box label {label} is not an index into {len(self.category_names)} category names")
        for pair in self.pairs:
            if not all(0 <= i < len(self.boxes_xywh) for i in pair):
                raise ValueError(f"pair {pair} does not name two of the {len(self.boxes_xywh)} boxes")
        for box in self.boxes_xywh:
            if len(box) != 4 or not np.all(np.isfinite(box)):
                raise ValueError(f"box {box} is not four finite numbers (x, y, w, h)")


def _sequence(value, name: str) -> list:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or getattr(value, "ndim", 1) == 0:
        raise ValueError(f"{name} must be a sequence (list, tuple or array), not {type(value).__name__}")
    return list(value.tolist() if isinstance(value, np.ndarray) else value)


def _rows(value, name: str) -> list[list]:
    """A sequence of short sequences: an empty array of any shape is no rows."""
    if isinstance(value, np.ndarray) and value.size == 0:
        return []
    return [_sequence(row, f"each of {name}") for row in _sequence(value, name)]


def _numbers(box: list) -> list[float]:
    try:
        return [float(v) for v in box]
    except (TypeError, ValueError):
        raise ValueError(f"box {box} is not four finite numbers (x, y, w, h)") from None


def _index(value, what: str) -> int:
    """An integer, or a float holding one (labels read from a float column); never a bool."""
    numeric = isinstance(value, (int, np.integer, float, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not numeric or not float(value).is_integer():
        raise ValueError(f"{what} {value!r} is not an integer")
    return int(value)


def _strings(value, name: str) -> list[str]:
    items = _sequence(value, name)
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{name} must hold strings; got {item!r}")
    return [str(item) for item in items]


def resized_size(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(height, width) after RLIPv2's resize: rounding of the capped size, then int() truncation."""
    size = min_size
    short, long = float(min(width, height)), float(max(width, height))
    if long / short * size > max_size:
        size = round(max_size * short / long)
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def image_tensor(image: Image.Image, min_size: int, max_size: int) -> torch.Tensor:
    image = image.convert("RGB")
    height, width = resized_size(image.width, image.height, min_size, max_size)
    if (height, width) != (image.height, image.width):
        image = image.resize((width, height), Image.BILINEAR)
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
    mean = torch.as_tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.as_tensor(STD, dtype=torch.float32).view(3, 1, 1)
    return (pixels - mean) / std


def normalised_boxes(boxes_xywh, image_size: tuple[int, int], resized: tuple[int, int]) -> torch.Tensor:
    """COCO xywh pixel boxes of the original image -> cxcywh in [0, 1] of the resized one (RLIPv2's steps:
    xyxy clamped to the image, scaled by the resize ratios, then divided by the resized size)."""
    width, height = image_size
    new_height, new_width = resized
    boxes = torch.as_tensor(np.asarray(boxes_xywh, dtype=np.float32).reshape(-1, 4))
    boxes[:, 2:] += boxes[:, :2]
    boxes[:, 0::2].clamp_(min=0, max=width)
    boxes[:, 1::2].clamp_(min=0, max=height)
    ratio_w, ratio_h = float(new_width) / float(width), float(new_height) / float(height)
    boxes = boxes * torch.as_tensor([ratio_w, ratio_h, ratio_w, ratio_h])
    x0, y0, x1, y1 = boxes.unbind(-1)
    boxes = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1)
    return boxes / torch.tensor([new_width, new_height, new_width, new_height], dtype=torch.float32)
