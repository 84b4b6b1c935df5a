"""The RLIPv2-style relational verifier: scores (image, subject box, object box, predicate text).

One image encoding per image; every candidate pair x candidate predicate of an image is scored in
one pass, images batched together; label vectors cached per string; bf16 autocast on CUDA.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sgpipe.models.checkpoint import WEIGHTS_NAME
from sgpipe.models.device import resolve_dtype
from sgpipe.models.verifier.config import VerifierConfig
from sgpipe.models.verifier.decoder import PairDecoder
from sgpipe.models.verifier.fusion import FusionEncoder
from sgpipe.models.verifier.inputs import Example, collate
from sgpipe.models.verifier.text import LabelEncoder, char_tokenizer, load_pretrained
from sgpipe.models.verifier.vision import OUT_FEATURES, VisionEncoder

TENSOR_KEYS = (
    "subj_boxes",
    "obj_boxes",
    "subj_label",
    "obj_label",
    "pair_mask",
    "pred_index",
    "pred_mask",
    "targets",
    "valid",
)


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """Sigmoid focal loss summed over valid (pair, predicate) cells, normalised by the positives."""
    logits, targets = logits.float(), targets.float()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if gamma > 0:
        p = torch.sigmoid(logits)
        p_t = p * targets + (1 - p) * (1 - targets)
        ce = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        ce = ce * (alpha * targets + (1 - alpha) * (1 - targets))
    mask = valid.float()
    return (ce * mask).sum() / (targets * mask).sum().clamp(min=1.0)


class Verifier(nn.Module):
    def __init__(self, config: VerifierConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.vision = VisionEncoder(config.vision_config, d)
        self.labels = LabelEncoder(config.text_config, d, config.max_label_tokens, config.train_text)
        self.labels.tokenizer = char_tokenizer()
        self.fusion = FusionEncoder(
            d,
            config.num_heads,
            config.ffn_dim,
            config.fusion_layers,
            config.num_feature_levels,
            config.dropout,
        )
        self.decoder = PairDecoder(
            d, config.num_heads, config.ffn_dim, config.decoder_layers, config.roi_size, config.dropout
        )
        self.relation_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.predicate_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.logit_bias = nn.Parameter(torch.tensor(-math.log((1 - config.prior_prob) / config.prior_prob)))

    # -- construction and checkpoints -------------------------------------------------------------

    @classmethod
    def build(cls, config: VerifierConfig, pretrained: bool = True) -> "Verifier":
        """A fresh model; with `pretrained`, backbone/text weights come from `vision_model`/`text_model`."""
        config = dataclasses.replace(config)
        vision = text = tokenizer = None
        if pretrained and config.vision_model:
            vision = load_pretrained(
                "AutoBackbone", config.vision_model, "verifier vision backbone", out_features=OUT_FEATURES
            )
            config.vision_config = vision.config.to_diff_dict()
        if pretrained and config.text_model:
            text = load_pretrained("AutoModel", config.text_model, "verifier text encoder")
            tokenizer = load_pretrained("AutoTokenizer", config.text_model, "verifier text encoder")
            config.text_config = text.config.to_diff_dict()
        for settings in (config.vision_config, config.text_config):
            for key in (
                "architectures",
                "transformers_version",
                "_name_or_path",
                "out_features",
                "out_indices",
                "dtype",
                "torch_dtype",
            ):  # weights load as float32 whatever they were saved as
                settings.pop(key, None)
        model = cls(config)
        if vision is not None:
            model.vision.backbone.load_state_dict(vision.state_dict())
        if text is not None:
            model.labels.text.load_state_dict(text.state_dict(), strict=False)
            model.labels.tokenizer = tokenizer
        return model

    def save_pretrained(self, folder: str | Path) -> Path:
        from safetensors.torch import save_model

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save(folder)
        save_model(self, str(folder / WEIGHTS_NAME))
        self.labels.save_tokenizer(folder)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> "Verifier":
        """Rebuild from `config.json` (no hub access) and load `model.safetensors` (no unpickling)."""
        from safetensors.torch import load_model

        folder = Path(folder)
        model = cls(VerifierConfig.load(folder))
        load_model(model, str(folder / WEIGHTS_NAME), strict=True, device=str(device))
        model.labels.load_tokenizer(folder)
        return model.to(device).eval()

    # -- forward ----------------------------------------------------------------------------------

    def _label_vectors(
        self, labels: list[list[str]], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        unique = sorted({x for names in labels for x in names})
        position = {x: i for i, x in enumerate(unique)}
        vectors = self.labels(unique)
        width = max(len(names) for names in labels)
        index = torch.zeros(len(labels), width, dtype=torch.long)
        mask = torch.zeros(len(labels), width, dtype=torch.bool)
        for i, names in enumerate(labels):
            index[i, : len(names)] = torch.tensor([position[x] for x in names])
            mask[i, : len(names)] = True
        return vectors[index.to(device)], mask.to(device)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """A `collate` batch -> logits [B, P, Q] (pair x predicate)."""
        device = self.logit_bias.device
        t = {k: batch[k].to(device, non_blocking=True) for k in TENSOR_KEYS}
        pixels = batch["pixels"].to(device, non_blocking=True).float() / 255.0
        tokens, pos, shapes = self.vision(pixels)
        labels, label_mask = self._label_vectors(batch["labels"], device)
        coarse_len = shapes[-1][0] * shapes[-1][1]
        tokens, labels = self.fusion(tokens, pos, coarse_len, labels.to(tokens.dtype), label_mask)
        h, w = shapes[0]
        fine = tokens[:, : h * w].transpose(1, 2).reshape(tokens.shape[0], -1, h, w)
        relations = self.decoder(
            tokens,
            pos,
            fine,
            t["subj_boxes"],
            t["obj_boxes"],
            _take(labels, t["subj_label"]),
            _take(labels, t["obj_label"]),
            t["pair_mask"],
        )
        predicates = _take(labels, t["pred_index"])
        rel = self.relation_head(relations)
        pred = self.predicate_head(predicates)
        logits = torch.einsum("bpd,bqd->bpq", rel, pred) / math.sqrt(rel.shape[-1])
        return logits.float() + self.logit_bias

    def loss(self, logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        device = logits.device
        return focal_loss(
            logits,
            batch["targets"].to(device),
            batch["valid"].to(device),
            self.config.focal_alpha,
            self.config.focal_gamma,
        )

    @torch.no_grad()
    def score(self, examples: Sequence[Example], dtype: str = "auto") -> list[np.ndarray]:
        """Sigmoid confidences, one [P_i, Q_i] array per example (pairs x predicates)."""
        if not examples:
            return []
        device = self.logit_bias.device
        use = resolve_dtype(dtype, device.type)
        batch = collate(examples)
        with torch.autocast(device.type, dtype=use, enabled=use != torch.float32):
            probs = torch.sigmoid(self(batch)).float().cpu().numpy()
        return [probs[i, : len(e.pairs), : len(e.predicates)] for i, e in enumerate(examples)]


def _take(vectors: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """vectors [B, L, d], index [B, K] -> [B, K, d]."""
    return torch.gather(vectors, 1, index[..., None].expand(-1, -1, vectors.shape[-1]))

