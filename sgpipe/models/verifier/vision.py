"""Vision path: a transformers backbone -> multi-scale feature maps (strides 8, 16, 32) projected
to d_model, flattened into one token sequence with sine positions and level embeddings."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

OUT_FEATURES = ["stage2", "stage3", "stage4"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_backbone(vision_config: dict[str, Any]) -> nn.Module:
    from transformers import AutoBackbone, AutoConfig

    settings = dict(vision_config)
    settings["out_features"] = OUT_FEATURES
    settings.pop("out_indices", None)
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    return AutoBackbone.from_config(config)


def sine_positions(height: int, width: int, dim: int, device: torch.device) -> torch.Tensor:
    """[H*W, dim] DETR-style 2D sine embedding (half the channels for y, half for x)."""
    quarter = dim // 4
    freqs = 1.0 / (10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2 * math.pi
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 * math.pi
    y = ys[:, None] * freqs[None]
    x = xs[:, None] * freqs[None]
    y = torch.cat([y.sin(), y.cos()], -1)[:, None, :].expand(height, width, -1)
    x = torch.cat([x.sin(), x.cos()], -1)[None, :, :].expand(height, width, -1)
    pos = torch.cat([y, x], -1).reshape(height * width, -1)
    return nn.functional.pad(pos, (0, dim - pos.shape[-1]))


class VisionEncoder(nn.Module):
    def __init__(self, vision_config: dict[str, Any], d_model: int):
        super().__init__()
        self.backbone = build_backbone(vision_config)
        channels = list(self.backbone.channels)
        groups = math.gcd(32, d_model)
        self.proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, d_model, 1), nn.GroupNorm(groups, d_model)) for c in channels
        )
        self.level_embed = nn.Parameter(torch.zeros(len(channels), d_model))
        nn.init.normal_(self.level_embed, std=0.02)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """pixels [B, 3, H, W] in [0, 1] -> tokens [B, T, d], positions [T, d], per-level (h, w)."""
        maps = self.backbone((pixels - self.mean) / self.std).feature_maps
        tokens, positions, shapes = [], [], []
        for level, (feature, proj) in enumerate(zip(maps, self.proj)):
            feature = proj(feature)
            h, w = feature.shape[-2:]
            shapes.append((h, w))
            tokens.append(feature.flatten(2).transpose(1, 2))
            positions.append(sine_positions(h, w, feature.shape[1], feature.device) + self.level_embed[level])
        return torch.cat(tokens, 1), torch.cat(positions, 0), shapes
