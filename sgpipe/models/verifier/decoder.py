"""Pair decoder: one query per candidate (subject box, object box) pair, built from box geometry,
the two boxes' label vectors and RoI features (subject, object, union, intersection) sampled from
the finest fused map with `grid_sample` (plain-torch RoI pooling); a few layers of pair
self-attention + cross-attention to all fused vision tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sgpipe.models.verifier.fusion import Attention, FeedForward

GEOMETRY_DIMS = 15
ROI_BOXES = 4  # subject, object, union, intersection


def pair_geometry(subj: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
    """[..., 4] normalised xyxy boxes -> [..., 15] translation/scale-aware pair features."""
    eps = 1e-4
    sw, sh = (subj[..., 2] - subj[..., 0]).clamp(min=eps), (subj[..., 3] - subj[..., 1]).clamp(min=eps)
    ow, oh = (obj[..., 2] - obj[..., 0]).clamp(min=eps), (obj[..., 3] - obj[..., 1]).clamp(min=eps)
    scx, scy = (subj[..., 0] + subj[..., 2]) / 2, (subj[..., 1] + subj[..., 3]) / 2
    ocx, ocy = (obj[..., 0] + obj[..., 2]) / 2, (obj[..., 1] + obj[..., 3]) / 2
    iw = (torch.minimum(subj[..., 2], obj[..., 2]) - torch.maximum(subj[..., 0], obj[..., 0])).clamp(min=0)
    ih = (torch.minimum(subj[..., 3], obj[..., 3]) - torch.maximum(subj[..., 1], obj[..., 1])).clamp(min=0)
    inter = iw * ih
    union = sw * sh + ow * oh - inter
    return torch.stack(
        [
            scx,
            scy,
            sw,
            sh,
            ocx,
            ocy,
            ow,
            oh,
            (ocx - scx) / sw,
            (ocy - scy) / sh,
            torch.log(ow / sw),
            torch.log(oh / sh),
            inter / union,
            inter / (sw * sh),
            inter / (ow * oh),
        ],
        -1,
    )


def roi_boxes(subj: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
    """[B, P, 4] x2 -> [B, P, 4 boxes, 4]: subject, object, union, intersection (a point if empty)."""
    union = torch.cat(
        [torch.minimum(subj[..., :2], obj[..., :2]), torch.maximum(subj[..., 2:], obj[..., 2:])], -1
    )
    lo = torch.maximum(subj[..., :2], obj[..., :2])
    hi = torch.maximum(torch.minimum(subj[..., 2:], obj[..., 2:]), lo)
    return torch.stack([subj, obj, union, torch.cat([lo, hi], -1)], 2)


def roi_sample(feature: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """feature [B, C, H, W], boxes [B, K, 4] normalised xyxy -> [B, K, size*size, C] (bilinear)."""
    steps = (torch.arange(size, device=boxes.device, dtype=boxes.dtype) + 0.5) / size
    xs = boxes[..., 0:1] + (boxes[..., 2:3] - boxes[..., 0:1]) * steps  # [B, K, S]
    ys = boxes[..., 1:2] + (boxes[..., 3:4] - boxes[..., 1:2]) * steps
    grid = torch.stack(
        [xs[..., None, :].expand(-1, -1, size, -1), ys[..., :, None].expand(-1, -1, -1, size)], -1
    )
    grid = grid.flatten(2, 3) * 2 - 1  # [B, K, S*S, 2] in grid_sample's [-1, 1]
    sampled = F.grid_sample(feature, grid.to(feature.dtype), mode="bilinear", align_corners=False)
    return sampled.permute(0, 2, 3, 1)


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        self.self_norm = nn.LayerNorm(d_model)
        self.self_attn = Attention(d_model, num_heads, dropout)
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_attn = Attention(d_model, num_heads, dropout)
        self.ffn = FeedForward(d_model, ffn_dim, dropout)

    def forward(self, queries, query_mask, memory, memory_pos):
        h = self.self_norm(queries)
        queries = queries + self.self_attn(h, h, h, query_mask)
        h = self.cross_norm(queries)
        queries = queries + self.cross_attn(h, memory + memory_pos, memory)
        return self.ffn(queries)


class PairDecoder(nn.Module):
    def __init__(
        self, d_model: int, num_heads: int, ffn_dim: int, num_layers: int, roi_size: int, dropout: float = 0.0
    ):
        super().__init__()
        self.roi_size = roi_size
        self.geometry = nn.Sequential(
            nn.Linear(GEOMETRY_DIMS, d_model), nn.GELU(), nn.Linear(d_model, d_model)
        )
        self.roi = nn.Sequential(nn.Linear(ROI_BOXES * roi_size * roi_size * d_model, d_model), nn.GELU())
        self.query = nn.Sequential(
            nn.Linear(4 * d_model, d_model), nn.GELU(), nn.Linear(d_model, d_model), nn.LayerNorm(d_model)
        )
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, num_heads, ffn_dim, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        fine_map: torch.Tensor,
        subj_boxes: torch.Tensor,
        obj_boxes: torch.Tensor,
        subj_labels: torch.Tensor,
        obj_labels: torch.Tensor,
        pair_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Boxes [B, P, 4] normalised xyxy, label vectors [B, P, d] -> relation features [B, P, d]."""
        b, p = subj_boxes.shape[:2]
        rois = roi_sample(fine_map, roi_boxes(subj_boxes, obj_boxes).flatten(1, 2), self.roi_size)
        rois = self.roi(rois.reshape(b, p, -1))
        geometry = self.geometry(pair_geometry(subj_boxes, obj_boxes).to(rois.dtype))
        queries = self.query(torch.cat([geometry, rois, subj_labels, obj_labels], -1))
        for layer in self.layers:
            queries = layer(queries, pair_mask, memory, memory_pos)
        return self.norm(queries)
