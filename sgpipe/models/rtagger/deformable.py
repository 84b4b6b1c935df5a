"""Multi-scale deformable attention (Deformable DETR) through `grid_sample`, for padded batches of images.

Images of different sizes share a batch by zero-padding every level's map. Sampling locations are computed
from each image's valid ratios exactly as Deformable DETR does, which puts every sample at the same pixel
coordinate as for the image alone; padded values are zeroed, so a sample past an image's edge reads zero as
`grid_sample`'s own zero padding would. A padded batch therefore gives each image its unbatched result up to
float rounding.

Under autocast the sampling stays in fp32: the offsets, attention weights, locations and the bilinear
interpolation (a location in bf16 is off by up to 1/256 of its value: a pixel and more on a 200-wide map).
Only the value and output projections run in the lower precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .precision import full_precision


def deformable_sample(
    value: torch.Tensor,  # [N, S, heads, head_dim]
    shapes: list[tuple[int, int]],
    locations: torch.Tensor,  # [N, Q, heads, levels, points, 2] in [0, 1]
    weights: torch.Tensor,  # [N, Q, heads, levels, points]
) -> torch.Tensor:
    n, _, heads, head_dim = value.shape
    _, queries, _, levels, points, _ = locations.shape
    grids = 2 * locations - 1
    sampled = []
    start = 0
    for level, (height, width) in enumerate(shapes):
        level_value = value[:, start : start + height * width]
        start += height * width
        level_value = level_value.flatten(2).transpose(1, 2).reshape(n * heads, head_dim, height, width)
        grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # [N*heads, Q, points, 2]
        sampled.append(F.grid_sample(level_value, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    weights = weights.transpose(1, 2).reshape(n * heads, 1, queries, levels * points)
    stacked = torch.stack(sampled, dim=-2).flatten(-2)  # [N*heads, head_dim, Q, levels*points]
    out = (stacked * weights).sum(-1).view(n, heads * head_dim, queries)
    return out.transpose(1, 2)


class MSDeformAttn(nn.Module):
    def __init__(self, d_model: int, n_levels: int, n_heads: int, n_points: int):
        super().__init__()
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)

    def forward(
        self,
        query: torch.Tensor,  # [N, Q, C]
        reference_points: torch.Tensor,  # [N, Q, levels, 2 or 4]
        source: torch.Tensor,  # [N, S, C]
        shapes: list[tuple[int, int]],
        shapes_tensor: torch.Tensor,  # [levels, 2] (H, W)
        padding_mask: torch.Tensor,  # [N, S], True on padding
    ) -> torch.Tensor:
        n, queries, _ = query.shape
        value = self.value_proj(source).masked_fill(padding_mask[..., None], 0.0)
        value = value.view(n, source.shape[1], self.n_heads, self.d_model // self.n_heads)
        with full_precision(query):
            query, value, reference_points = query.float(), value.float(), reference_points.float()
            offsets = self.sampling_offsets(query).view(n, queries, self.n_heads, self.n_levels, self.n_points, 2)
            weights = self.attention_weights(query).view(n, queries, self.n_heads, self.n_levels * self.n_points)
            weights = F.softmax(weights, -1).view(n, queries, self.n_heads, self.n_levels, self.n_points)
            if reference_points.shape[-1] == 2:
                normalizer = torch.stack([shapes_tensor[..., 1], shapes_tensor[..., 0]], -1)
                locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
            else:
                locations = (
                    reference_points[:, :, None, :, None, :2]
                    + offsets / self.n_points * reference_points[:, :, None, :, None, 2:] * 0.5
                )
            sampled = deformable_sample(value, shapes, locations, weights)
        return self.output_proj(sampled)
