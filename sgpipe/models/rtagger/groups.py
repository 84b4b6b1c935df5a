"""Scoring RLIPv2's batches of candidate groups: one image, one merged text list, several groups of pairs.

RLIPv2's `verb_tagger_with_text` cuts an image's candidate pairs into groups of `num_queries // 2` and
runs up to `img_inference_batch` (16) groups at once: one text list for all of them (category names,
"no objects", the relation texts of those groups merged in order), the image encoded with that list, each
group decoded on its own queries, every pair scored against every text of the list. A `GroupedInput` is
one such batch; `score_groups` gives, per group, the sigmoid scores [len(group), len(texts)].

Several batches, of one image or of many, run in one forward: each is encoded with its own texts (padded
texts and pixels are masked) and its groups decoded on that encoding, so a batch's scores equal those of
the batch alone up to float rounding; the backbone runs once per distinct image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .inputs import TaggerInput, image_tensor
from .tagger import RTagger

MAX_ROWS_PER_FORWARD = 32  # groups decoded in one forward (RLIPv2 decodes at most 16 at once)


@dataclass
class GroupedInput:
    """One image, one text list, groups of (subject box index, object box index) pairs."""

    image: Image.Image
    boxes_xywh: Sequence[Sequence[float]]
    box_labels: Sequence[int]
    category_names: Sequence[str]
    texts: Sequence[str]
    groups: Sequence[Sequence[tuple[int, int]]]

    def group_inputs(self) -> list[TaggerInput]:
        return [TaggerInput(self.image, self.boxes_xywh, self.box_labels, list(group), self.texts, self.category_names)
                for group in self.groups]


def _forward_chunks(items: Sequence[GroupedInput]) -> list[list[int]]:
    """Indices of the items each forward takes: whole items, at most MAX_ROWS_PER_FORWARD groups (or one item)."""
    chunks: list[list[int]] = []
    rows = 0
    for index, item in enumerate(items):
        size = sum(1 for group in item.groups if group)
        if not chunks or rows + size > MAX_ROWS_PER_FORWARD:
            chunks.append([])
            rows = 0
        chunks[-1].append(index)
        rows += size
    return chunks


@torch.inference_mode()
def score_groups(tagger: RTagger, items: Sequence[GroupedInput]) -> list[list[np.ndarray]]:
    """Per item, per group: sigmoid scores [len(group), len(texts)] float32 (zero-sized for an empty group)."""
    limit = tagger.config.num_pairs
    for item in items:
        for group in item.group_inputs():
            group.check()
            if len(group.pairs) > limit:
                raise ValueError(f"a group holds {len(group.pairs)} pairs; the model decodes at most {limit} at once")
    results = [[np.zeros((len(g), len(item.texts)), dtype=np.float32) for g in item.groups] for item in items]
    active = [i for i, item in enumerate(items) if item.texts and any(item.groups)]
    for chunk in _forward_chunks([items[i] for i in active]):
        indices = [active[i] for i in chunk]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=tagger.bf16):
            scores = _forward(tagger, [items[i] for i in indices])
        for index, per_group in zip(indices, scores):
            results[index] = per_group
    return results


def _forward(tagger: RTagger, items: Sequence[GroupedInput]) -> list[list[np.ndarray]]:
    cfg, net = tagger.config, tagger.net
    images = list({id(item.image): item.image for item in items}.values())  # each distinct image encoded once
    slot = {id(image): i for i, image in enumerate(images)}
    pixels = [image_tensor(image, cfg.min_size, cfg.max_size).to(tagger.device) for image in images]
    levels = net.image_levels(pixels)
    lists = tagger._text_lists(items)
    lang, lang_valid = tagger._encode_texts(lists)
    encoded = net.encode([levels[slot[id(item.image)]] for item in items], lang, lang_valid)
    groups = [(i, g, group) for i, item in enumerate(items) for g, group in enumerate(item.group_inputs()) if group.pairs]
    sizes = [tuple(pixels[slot[id(items[i].image)]].shape[-2:]) for i, _, _ in groups]
    rows, _ = tagger._rows([group for _, _, group in groups], sizes)
    rows.image = torch.as_tensor([i for i, _, _ in groups], dtype=torch.long, device=tagger.device)
    probs = net.verb_logits(encoded, rows).float().sigmoid().cpu().numpy()
    out = [[np.zeros((len(g), len(item.texts)), dtype=np.float32) for g in item.groups] for item in items]
    for row, (i, g, group) in enumerate(groups):
        first = len(lists[i]) - len(items[i].texts)
        out[i][g] = probs[row, : len(group.pairs), first : len(lists[i])]
    return out
