"""RTagger: RLIPv2's relation tagger on images, boxes, candidate pairs and relation texts.

`score` gives what RLIPv2's own loop gives for one image alone with one candidate group holding those pairs
and texts (texts = category names, "no objects", then the relation texts). `score_batch` runs several images
in one forward; each image sees only its own texts (padded texts and pixels are masked), so its scores equal
its unbatched scores up to float rounding. An image with more pairs than the model has pair queries (100
for the released model) is split into consecutive groups of that many pairs, as RLIPv2 would need to.

Precision: fp32 unless `bf16=True` on CUDA. bf16 autocast runs the backbone and the deformable encoder in
bf16 (the fusions, texts, sampling and decoders stay fp32) and still moves a full-size model's logits by up
to 0.10, a score near 0.5 by 0.026 (docs/BENCHMARKS.md): next to thresholds of 0.05 and 0.20, an opt-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from sgpipe.models.device import resolve_device

from .config import RTaggerConfig
from .inputs import TaggerInput, image_tensor, normalised_boxes
from .model import Rows, RTaggerNet

NO_OBJECT_TEXT = "no objects"


class RTagger:
    def __init__(self, net: RTaggerNet, tokenizer, device: str | torch.device = "cpu", bf16: bool = False):
        self.net = net.eval().to(device)
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.config = net.config
        self.bf16 = bf16 and self.device.type == "cuda"  # bf16 autocast only on CUDA, on request

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device | None = None, bf16: bool = False) -> RTagger:
        """A folder written by `sgpipe convert rtagger` (config.json, model.safetensors, tokenizer files)."""
        from safetensors.torch import load_file
        from transformers import RobertaTokenizerFast

        from .convert import tokenizer_mismatch

        folder = Path(folder)
        config = RTaggerConfig.load(folder)
        net = RTaggerNet.without_init(config)
        state = load_file(str(folder / "model.safetensors"))
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
        if missing or unexpected:
            raise ValueError(f"{folder}: weights do not fit the config (missing {missing[:5]}, unexpected {unexpected[:5]})")
        tokenizer = RobertaTokenizerFast.from_pretrained(str(folder))
        problem = tokenizer_mismatch(tokenizer, config.text["vocab_size"])
        if problem:
            raise ValueError(f"{folder}: the tokenizer does not fit the text encoder: {problem}")
        device = resolve_device(device or "auto")
        return cls(net, tokenizer, device, bf16)

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save(folder)
        state = {k: v.detach().float().cpu().contiguous() for k, v in self.net.state_dict().items()
                 if not k.endswith(("position_ids", "token_type_ids"))}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        self.tokenizer.save_pretrained(str(folder))

    def score(self, image, boxes_xywh, box_labels, pairs, texts, category_names) -> np.ndarray:
        """Sigmoid of the verb logit, [len(pairs), len(texts)] float32."""
        return self.score_batch([TaggerInput(image, boxes_xywh, box_labels, pairs, texts, category_names)])[0]

    @torch.inference_mode()
    def score_batch(self, items: Iterable[TaggerInput]) -> list[np.ndarray]:
        items = list(items)  # a tuple or a generator as well as a list
        for item in items:
            item.check()
        results = [np.zeros((len(item.pairs), len(item.texts)), dtype=np.float32) for item in items]
        active = [i for i, item in enumerate(items) if len(item.pairs) and len(item.texts)]
        if not active:
            return results
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16)
        with autocast:
            probs = self._forward([items[i] for i in active])
        for index, scores in zip(active, probs):
            results[index] = scores
        return results

    def _text_lists(self, items: Sequence[TaggerInput]) -> list[list[str]]:
        extra = [NO_OBJECT_TEXT] if self.config.use_no_obj_token else []
        return [list(item.category_names) + extra + list(item.texts) for item in items]

    def _encode_texts(self, lists: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooler outputs per image, padded -> ([N, T, 768], valid [N, T]); each distinct string encoded once."""
        distinct = list(dict.fromkeys(text for texts in lists for text in texts))
        tokens = self.tokenizer(distinct, padding="longest", return_tensors="pt").to(self.device)
        features = self.net.text_features(tokens["input_ids"], tokens["attention_mask"]).float()
        where = {text: i for i, text in enumerate(distinct)}
        longest = max(len(texts) for texts in lists)
        lang = features.new_zeros(len(lists), longest, features.shape[-1])
        valid = torch.zeros(len(lists), longest, dtype=torch.bool, device=self.device)
        for row, texts in enumerate(lists):
            lang[row, : len(texts)] = features[[where[t] for t in texts]]
            valid[row, : len(texts)] = True
        return lang, valid

    def _rows(self, items: Sequence[TaggerInput], sizes: list[tuple[int, int]]) -> tuple[Rows, list[tuple[int, int, int]]]:
        """Candidate groups: (image, first pair, pair count) per row, at most num_pairs pairs each."""
        limit = self.config.num_pairs
        spans = [(i, start, min(limit, len(item.pairs) - start))
                 for i, item in enumerate(items) for start in range(0, len(item.pairs), limit)]
        width = max(count for _, _, count in spans)
        r = len(spans)
        sub_boxes = torch.full((r, width, 4), 0.5)
        obj_boxes = torch.full((r, width, 4), 0.5)
        sub_labels = torch.zeros((r, width), dtype=torch.long)
        obj_labels = torch.zeros((r, width), dtype=torch.long)
        valid = torch.zeros((r, width), dtype=torch.bool)
        boxes = [normalised_boxes(item.boxes_xywh, item.image.size, size) for item, size in zip(items, sizes)]
        for row, (i, start, count) in enumerate(spans):
            pairs = torch.as_tensor([tuple(p) for p in items[i].pairs[start : start + count]], dtype=torch.long)
            labels = torch.as_tensor([int(x) for x in items[i].box_labels], dtype=torch.long)
            sub_boxes[row, :count] = boxes[i][pairs[:, 0]]
            obj_boxes[row, :count] = boxes[i][pairs[:, 1]]
            sub_labels[row, :count] = labels[pairs[:, 0]]
            obj_labels[row, :count] = labels[pairs[:, 1]]
            valid[row, :count] = True
        image = torch.as_tensor([i for i, _, _ in spans], dtype=torch.long)
        rows = Rows(*(x.to(self.device) for x in (image, sub_boxes, obj_boxes, sub_labels, obj_labels, valid)))
        return rows, spans

    def _forward(self, items: Sequence[TaggerInput]) -> list[np.ndarray]:
        cfg = self.config
        pixels = [image_tensor(item.image, cfg.min_size, cfg.max_size).to(self.device) for item in items]
        sizes = [tuple(p.shape[-2:]) for p in pixels]
        lists = self._text_lists(items)
        lang, lang_valid = self._encode_texts(lists)
        encoded = self.net.encode(self.net.image_levels(pixels), lang, lang_valid)
        rows, spans = self._rows(items, sizes)
        probs = self.net.verb_logits(encoded, rows).float().sigmoid().cpu().numpy()
        out = [np.zeros((len(item.pairs), len(item.texts)), dtype=np.float32) for item in items]
        for row, (i, start, count) in enumerate(spans):
            first = len(lists[i]) - len(items[i].texts)
            out[i][start : start + count] = probs[row, :count, first : len(lists[i])]
        return out
