"""Swin Transformer backbones of RLIPv2's Swin-T and Swin-L R-Taggers (RLIPv2's `models/swin`, which is
Swin's detection variant), under RLIPv2's key names.

The arithmetic follows that code step for step, since the weights were trained on it: an image is padded on
the right and bottom to a multiple of the patch size; each block pads its normalised map to whole windows with
zeros (those zeros take part in the unshifted windows' attention, as they do there); shifted windows mask
pairs from different regions with -100; patch merging pads odd maps. Stages 2-4 are returned, each through
its own layer norm. The relative position index is derived from the window size, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SwinSpec:
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int = 7

    @property
    def num_channels(self) -> tuple[int, int, int]:
        """Channels of stages 2-4, the three maps the R-Tagger reads."""
        return tuple(self.embed_dim * 2**i for i in (1, 2, 3))  # type: ignore[return-value]


# RLIPv2's `models/swin/backbone.py` for the names its Swin R-Tagger scripts pass (`--backbone swin_tiny`,
# `--backbone swin_large`).
SWIN_VARIANTS = {
    "swin_tiny": SwinSpec(96, (2, 2, 6, 2), (3, 6, 12, 24)),
    "swin_large": SwinSpec(192, (2, 2, 18, 2), (6, 12, 24, 48)),
}


def relative_position_index(window: int, device: torch.device | None = None) -> torch.Tensor:
    """[window², window²]: the row of the bias table for each pair of positions in a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return (relative[..., 0] * (2 * window - 1) + relative[..., 1]).to(device)


def _windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * windows, window², C] (H and W multiples of `window`)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def _unwindow(x: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    b = x.shape[0] // ((h // window) * (w // window))
    x = x.view(b, h // window, w // window, window, window, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, -1)


def shift_mask(height: int, width: int, window: int, device: torch.device) -> torch.Tensor:
    """[windows, window², window²]: 0 within a region of the shifted map, -100 across regions."""
    shift = window // 2
    regions = torch.zeros((1, height, width, 1), device=device)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for label, (rows, cols) in enumerate((r, c) for r in bands for c in bands):
        regions[:, rows, cols, :] = label
    labels = _windows(regions, window).squeeze(-1)
    differ = labels[:, None, :] != labels[:, :, None]
    return torch.zeros(differ.shape, device=device).masked_fill(differ, -100.0)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        windows, tokens, channels = x.shape
        q, k, v = self.qkv(x).view(windows, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        index = relative_position_index(self.window, x.device).view(-1)
        bias = self.relative_position_bias_table[index].view(tokens, tokens, -1).permute(2, 0, 1)
        bias = bias.unsqueeze(0).to(q.dtype)  # [1, heads, tokens, tokens]
        if mask is not None:  # windows of one image repeat every len(mask)
            bias = (bias.unsqueeze(0) + mask[None, :, None].to(q.dtype)).flatten(0, 1)
            bias = bias.repeat(windows // mask.shape[0], 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(windows, tokens, channels))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shifted: bool):
        super().__init__()
        self.window, self.shift = window, (window // 2 if shifted else 0)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor, height: int, width: int, mask: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        w = self.window
        y = self.norm1(x).view(b, height, width, c)
        y = F.pad(y, (0, 0, 0, (w - width % w) % w, 0, (w - height % w) % w))
        padded_h, padded_w = y.shape[1:3]
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(_windows(y, w), mask if self.shift else None)
        y = _unwindow(y, w, padded_h, padded_w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y[:, :height, :width].reshape(b, height * width, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        b, _, c = x.shape
        x = F.pad(x.view(b, height, width, c), (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, window: int, downsample: bool):
        super().__init__()
        self.window = window
        self.blocks = nn.ModuleList(SwinBlock(dim, heads, window, shifted=i % 2 == 1) for i in range(depth))
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (this stage's map [B, H*W, C], the merged map for the next stage or None)."""
        w = self.window
        mask = shift_mask(-(-height // w) * w, -(-width // w) * w, w, x.device)
        for block in self.blocks:
            x = block(x, height, width, mask)
        return x, (self.downsample(x, height, width) if self.downsample is not None else None)


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int = 4):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch
        x = F.pad(x, (0, (p - x.shape[-1] % p) % p, 0, (p - x.shape[-2] % p) % p))
        x = self.proj(x)
        return self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(x.shape)


class SwinBody(nn.Module):
    """Returns the outputs of stages 2, 3 and 4 (strides 8, 16, 32) as [B, C, H, W] maps."""

    def __init__(self, spec: SwinSpec):
        super().__init__()
        self.num_channels = spec.num_channels
        self.patch_embed = _PatchEmbed(spec.embed_dim)
        self.layers = nn.ModuleList(
            SwinStage(spec.embed_dim * 2**i, depth, heads, spec.window_size, downsample=i < len(spec.depths) - 1)
            for i, (depth, heads) in enumerate(zip(spec.depths, spec.num_heads))
        )
        for i in (1, 2, 3):
            setattr(self, f"norm{i}", nn.LayerNorm(spec.embed_dim * 2**i))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        height, width = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        outputs = []
        for index, stage in enumerate(self.layers):
            out, merged = stage(x, height, width)
            if index > 0:
                out = getattr(self, f"norm{index}")(out)
                outputs.append(out.view(-1, height, width, out.shape[-1]).permute(0, 3, 1, 2).contiguous())
            if merged is not None:
                x, height, width = merged, (height + 1) // 2, (width + 1) // 2
        return outputs
