"""Zero-shot object detector: any transformers model behind `AutoModelForZeroShotObjectDetection`
(Grounding DINO, OWLv2, OWL-ViT), asked per image about that image's phrases.

Needs only torch, numpy, transformers and PIL (the GPU benchmark imports it without the rest).

One model row is one image with a list of phrases. Grounding DINO reads them as one prompt
("man. horse. fire hydrant."), which holds at most `max_text_len` tokens (256), so an image with
more phrases (a large vocabulary) gets several rows, each re-encoding the image; a phrase's score on
a proposal is the highest probability among its own tokens. OWL-ViT and OWLv2 encode each phrase as
its own query, all of an image's phrases in one row. Rows are batched `batch_size` at a time; scores
and boxes then go through `detections.select` (thresholds, per-phrase NMS, the cap).

Inputs are made by the model's own processor; with transformers' torchvision backend (installed beside
torchvision) its resizing and normalising run on the GPU.

Box frames: Grounding DINO and OWL-ViT predict boxes relative to the image itself (Grounding DINO's
padding to the batch's largest image is masked; OWL-ViT squashes every image to a square); OWLv2
pads an image to a square (bottom and right) before resizing, so its boxes are relative to that
square, whose side is the image's longer side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from sgpipe.models.detections import Candidate, Detection, Thresholds, candidates, corners, select
from sgpipe.models.device import resolve_device, resolve_dtype
from sgpipe.models.loading import load_pretrained

if TYPE_CHECKING:
    import torch
    from PIL import Image

PADS_TO_SQUARE = ("owlv2",)  # model types whose boxes are relative to the image padded to a square
PROMPT_SEPARATOR = "."


@dataclass(frozen=True)
class Row:
    """One forward's worth of one image: its index in the batch and the phrases asked (with their
    ranks among the image's phrases)."""

    image: int
    phrases: tuple[str, ...]
    ranks: tuple[int, ...]


def prompt_spans(phrases: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Grounding DINO's prompt "a. b." and each phrase's character span in it."""
    spans, position = [], 0
    for phrase in phrases:
        spans.append((position, position + len(phrase)))
        position += len(phrase) + len(PROMPT_SEPARATOR) + 1
    return " ".join(f"{p}{PROMPT_SEPARATOR}" for p in phrases), spans


def phrase_tokens(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[list[int]]:
    """The token positions inside each phrase's span (special tokens have empty offsets)."""
    tokens: list[list[int]] = [[] for _ in spans]
    for position, (start, end) in enumerate(offsets):
        if end <= start:
            continue
        for index, (first, last) in enumerate(spans):
            if first <= start and end <= last:
                tokens[index].append(position)
                break
    return tokens


class ZeroShotDetector:
    """Processor and model loaded once; `detect` gives each image its detections."""

    role = "detect"

    def __init__(
        self,
        model: str,
        thresholds: Thresholds = Thresholds(),
        batch_size: int = 8,
        device: str = "auto",
        dtype: str = "auto",
    ):
        self.model_id = model
        self.thresholds = thresholds
        self.batch_size = max(1, batch_size)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.processor: Any = None
        self.model: Any = None
        self.revision: str | None = None

    def load(self) -> "ZeroShotDetector":
        load_pretrained(self.model_id, self.role, self._from_pretrained)
        self.model.to(self.device).eval()
        self.revision = getattr(self.model.config, "_commit_hash", None)
        return self

    def _from_pretrained(self, source: str, **options: Any) -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(source, **options)
        self.model = AutoModelForZeroShotObjectDetection.from_pretrained(source, dtype=self.dtype, **options)

    @property
    def kind(self) -> str:
        return str(self.model.config.model_type)

    @property
    def grounded(self) -> bool:
        """Phrases share one prompt (Grounding DINO), rather than one query each (OWL)."""
        return hasattr(self.model.config, "max_text_len")

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "revision": self.revision,
            "dtype": str(self.dtype).removeprefix("torch."),
            "box_threshold": self.thresholds.box,
            "text_threshold": self.thresholds.text,
            "nms_iou": self.thresholds.nms_iou,
            "max_boxes": self.thresholds.max_boxes,
        }

    def rows(self, phrases: Sequence[Sequence[str]]) -> list[Row]:
        """Each image's phrases cut into rows that fit the model's text length (Grounding DINO)."""
        rows = []
        for image, names in enumerate(phrases):
            chunks = self._chunks(list(names)) if self.grounded else [list(range(len(names)))]
            rows += [Row(image, tuple(names[i] for i in chunk), tuple(chunk)) for chunk in chunks if chunk]
        return rows

    def _chunks(self, names: list[str]) -> list[list[int]]:
        budget = int(self.model.config.max_text_len) - 2  # [CLS] and [SEP]
        tokenizer = self.processor.tokenizer
        lengths = [len(ids) + 1 for ids in tokenizer(names, add_special_tokens=False)["input_ids"]]  # + "."
        chunks: list[list[int]] = [[]]
        used = 0
        for index, length in enumerate(lengths):
            if length > budget:
                continue  # a phrase longer than the whole prompt: never asked
            if used + length > budget:
                chunks.append([])
                used = 0
            chunks[-1].append(index)
            used += length
        return chunks

    def detect(
        self, images: Sequence["Image.Image"], phrases: Sequence[Sequence[str]]
    ) -> tuple[list[list[Detection]], list[dict[str, int]]]:
        """Each image's detections (best first) for its phrases, and per image what was dropped."""
        if self.model is None:
            self.load()
        rows = self.rows(phrases)
        found: list[list[Candidate]] = [[] for _ in images]
        serials = [0] * len(images)
        dropped = [{"detect_boxes_degenerate": 0} for _ in images]
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            for row, (scores, boxes) in zip(batch, self.score_rows([images[r.image] for r in batch], batch)):
                size = images[row.image].size
                more, degenerate = candidates(
                    scores, boxes, list(row.ranks), self.thresholds, size, serials[row.image]
                )
                found[row.image] += more
                serials[row.image] += len(boxes)
                dropped[row.image]["detect_boxes_degenerate"] += degenerate
        results = []
        for image, names in enumerate(phrases):
            detections, counts = select(found[image], list(names), self.thresholds)
            results.append(detections)
            dropped[image].update(counts)
        return results, dropped

    def score_rows(self, images: list["Image.Image"], rows: list[Row]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per row: scores [proposals, phrases] and boxes [proposals, 4] as pixel corners."""
        import torch

        inputs, token_lists = self.prepare(images, rows)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        probs = outputs.logits.float().sigmoid().cpu().numpy()
        pred = outputs.pred_boxes.float().cpu().numpy()
        results = []
        for i, (image, row) in enumerate(zip(images, rows)):
            width, height = image.size
            if self.kind in PADS_TO_SQUARE:
                width = height = max(width, height)
            boxes = corners(pred[i], width, height)
            if token_lists is not None:
                scores = np.stack([probs[i][:, tokens].max(axis=1) for tokens in token_lists[i]], axis=1)
            else:
                scores = probs[i][:, : len(row.phrases)]
            results.append((scores, boxes))
        return results

    def _on_device(self) -> dict[str, str]:
        """Resize and normalise on the model's GPU where the image processor can (transformers'
        torchvision backend): the host then only turns each image into a tensor."""
        try:
            from transformers.image_processing_backends import TorchvisionBackend
        except ImportError:  # transformers before 5: processors work on the host
            return {}
        on_gpu = self.device != "cpu" and isinstance(self.processor.image_processor, TorchvisionBackend)
        return {"device": self.device} if on_gpu else {}

    def prepare(
        self, images: list["Image.Image"], rows: list[Row]
    ) -> tuple[dict[str, "torch.Tensor"], list | None]:
        """Model inputs on the device (pixels in the model's dtype) and, for Grounding DINO, each
        row's token positions per phrase."""
        token_lists = None
        if self.grounded:
            prompts = [prompt_spans(row.phrases) for row in rows]
            text = self.processor.tokenizer(
                [prompt for prompt, _ in prompts],
                padding="longest",
                return_offsets_mapping=True,
                return_token_type_ids=True,
                return_tensors="pt",
            )
            offsets = text.pop("offset_mapping").tolist()
            token_lists = [phrase_tokens(o, spans) for o, (_, spans) in zip(offsets, prompts)]
            pixels = self.processor.image_processor(images, return_tensors="pt", **self._on_device())
            inputs = {**text, **pixels}
        else:
            queries = [list(row.phrases) for row in rows]
            inputs = self.processor(
                text=queries, images=images, return_tensors="pt", truncation=True, **self._on_device()
            )
        inputs = {name: value.to(self.device) for name, value in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return inputs, token_lists
