"""Model inputs: one `Example` per image (pixels, boxes, candidate pairs, candidate predicates,
optional targets) and `collate`, which pads a list of them into one batch. Pure torch/numpy/PIL,
used by both the verify stage and the trainer's data workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch


@dataclass
class Example:
    pixels: torch.Tensor  # [3, S, S] uint8 (compact to ship between data workers)
    boxes: np.ndarray  # [N, 4] float32 normalised xyxy
    box_labels: list[str]  # category of each box
    pairs: list[tuple[int, int]]  # (subject index, object index) into boxes
    predicates: list[str]
    targets: np.ndarray | None = None  # [P, Q]: 1 true, 0 false, -1 left out of the loss
    key: str = ""


def image_to_pixels(image: Any, size: int) -> torch.Tensor:
    """A PIL image -> [3, size, size] uint8 (squashed: boxes are normalised, so they follow)."""
    from PIL import Image

    image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def normalise_boxes(bboxes: Sequence[Sequence[float]], width: float, height: float) -> np.ndarray:
    """[x, y, w, h] pixel boxes -> [N, 4] xyxy in [0, 1]."""
    boxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
    xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)
    xyxy /= np.array([width, height, width, height], dtype=np.float32)
    return np.clip(xyxy, 0.0, 1.0)


def collate(examples: Sequence[Example]) -> dict[str, Any]:
    """Pad to the batch's largest pair and predicate counts (at least 1, so attention never sees
    an all-masked row)."""
    b = len(examples)
    p = max(1, max(len(e.pairs) for e in examples))
    q = max(1, max(len(e.predicates) for e in examples))
    subj = torch.zeros(b, p, 4)
    obj = torch.zeros(b, p, 4)
    subj_label = torch.zeros(b, p, dtype=torch.long)
    obj_label = torch.zeros(b, p, dtype=torch.long)
    pair_mask = torch.zeros(b, p, dtype=torch.bool)
    pred_index = torch.zeros(b, q, dtype=torch.long)
    pred_mask = torch.zeros(b, q, dtype=torch.bool)
    targets = torch.zeros(b, p, q)
    labels: list[list[str]] = []
    for i, e in enumerate(examples):
        names = list(
            dict.fromkeys([e.box_labels[s] for s, _ in e.pairs] + [e.box_labels[o] for _, o in e.pairs])
        )
        names += [x for x in dict.fromkeys(e.predicates) if x not in names]
        index = {name: j for j, name in enumerate(names)}
        labels.append(names or ["[pad]"])
        if e.pairs:
            boxes = torch.from_numpy(e.boxes)
            s_idx = torch.tensor([s for s, _ in e.pairs])
            o_idx = torch.tensor([o for _, o in e.pairs])
            n = len(e.pairs)
            subj[i, :n], obj[i, :n] = boxes[s_idx], boxes[o_idx]
            subj_label[i, :n] = torch.tensor([index[e.box_labels[s]] for s, _ in e.pairs])
            obj_label[i, :n] = torch.tensor([index[e.box_labels[o]] for _, o in e.pairs])
            pair_mask[i, :n] = True
        pair_mask[i, 0] = True  # an image without pairs still needs one valid key
        pred_index[i, : len(e.predicates)] = torch.tensor([index[x] for x in e.predicates], dtype=torch.long)
        pred_mask[i, : len(e.predicates)] = True
        if e.targets is not None and e.targets.size:
            targets[i, : e.targets.shape[0], : e.targets.shape[1]] = torch.from_numpy(e.targets)
    valid = pair_mask[:, :, None] & pred_mask[:, None, :] & (targets >= 0)  # negative target: left out
    targets = targets.clamp(min=0)
    for i, e in enumerate(examples):
        if not e.pairs:
            valid[i] = False
    return {
        "pixels": torch.stack([e.pixels for e in examples]),
        "labels": labels,
        "subj_boxes": subj,
        "obj_boxes": obj,
        "subj_label": subj_label,
        "obj_label": obj_label,
        "pair_mask": pair_mask,
        "pred_index": pred_index,
        "pred_mask": pred_mask,
        "targets": targets,
        "valid": valid,
        "keys": [e.key for e in examples],
    }
