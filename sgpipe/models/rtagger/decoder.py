"""The subject/object decoder and the verb decoder, with iterative box refinement (RLIPv2's
`TransformerDecoderHOI`, `ParSe=True` and `ParSe=False`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .deformable import MSDeformAttn


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class MLP(nn.Module):
    def __init__(self, d_in: int, hidden: int, d_out: int, num_layers: int):
        super().__init__()
        dims = [d_in] + [hidden] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:] + [d_out]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, layer in enumerate(self.layers):
            x = layer(x) if index == len(self.layers) - 1 else F.relu(layer(x))
        return x


class DeformableDecoderLayer(nn.Module):
    def __init__(self, d_model: int, d_ffn: int, n_levels: int, n_heads: int, n_points: int):
        super().__init__()
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, tgt, query_pos, reference_points, memory, shapes, shapes_tensor, memory_padding, query_padding):
        q = k = tgt + query_pos
        tgt = self.norm2(tgt + self.self_attn(q, k, tgt, key_padding_mask=query_padding, need_weights=False)[0])
        tgt = self.norm1(
            tgt + self.cross_attn(tgt + query_pos, reference_points, memory, shapes, shapes_tensor, memory_padding)
        )
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class MultiBranchFusion(nn.Module):
    """RLIPv2's verb query generator (`vanilla_MBF`): relu(sum over branches of fc_3(relu(fc_1(a) * fc_2(b))))."""

    def __init__(self, dim: int, cardinality: int):
        super().__init__()
        branch = dim // cardinality
        self.fc_1 = nn.ModuleList(nn.Linear(dim, branch) for _ in range(cardinality))
        self.fc_2 = nn.ModuleList(nn.Linear(dim, branch) for _ in range(cardinality))
        self.fc_3 = nn.ModuleList(nn.Linear(branch, dim) for _ in range(cardinality))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        branches = [fc_3(F.relu(fc_1(a) * fc_2(b))) for fc_1, fc_2, fc_3 in zip(self.fc_1, self.fc_2, self.fc_3)]
        return F.relu(torch.stack(branches).sum(0))


def _refine(head: MLP, output: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    delta = head(output)
    if ref.shape[-1] == 4:
        return (delta + inverse_sigmoid(ref)).sigmoid()
    # A 2-d reference point becomes a box: the head's first two outputs move the point, the rest are its size.
    return torch.cat([delta[..., :2] + inverse_sigmoid(ref), delta[..., 2:]], -1).sigmoid()


def _scale(ref: torch.Tensor, valid_ratios: torch.Tensor) -> torch.Tensor:
    ratios = valid_ratios if ref.shape[-1] == 2 else torch.cat([valid_ratios, valid_ratios], -1)
    return ref[:, :, None] * ratios[:, None]


class PairDecoder(nn.Module):
    """`ParSe=True`: subject queries then object queries, each refined by its own box head."""

    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList(
            DeformableDecoderLayer(
                config.hidden_dim, config.dim_feedforward, config.num_feature_levels, config.nheads, config.dec_n_points
            )
            for _ in range(config.dec_layers)
        )

    def forward(self, tgt, query_pos, sub_ref, obj_ref, memory, shapes, shapes_tensor, valid_ratios, memory_padding,
                query_padding, sub_heads, obj_heads):
        pairs = sub_ref.shape[1]
        output = tgt
        for lid, layer in enumerate(self.layers):
            ref_input = torch.cat((_scale(sub_ref, valid_ratios), _scale(obj_ref, valid_ratios)), dim=1)
            output = layer(output, query_pos, ref_input, memory, shapes, shapes_tensor, memory_padding, query_padding)
            sub_ref = _refine(sub_heads[lid], output[:, :pairs], sub_ref).detach()
            obj_ref = _refine(obj_heads[lid], output[:, pairs:], obj_ref).detach()
        return output, sub_ref, obj_ref


class VerbDecoder(PairDecoder):
    """`ParSe=False`: one query per pair, reference = mean of the subject and object references."""

    def forward(self, tgt, query_pos, sub_ref, obj_ref, memory, shapes, shapes_tensor, valid_ratios, memory_padding,
                query_padding, sub_heads, obj_heads):
        output = tgt
        for lid, layer in enumerate(self.layers):
            ref_input = _scale(0.5 * (sub_ref + obj_ref), valid_ratios)
            output = layer(output, query_pos, ref_input, memory, shapes, shapes_tensor, memory_padding, query_padding)
            sub_ref = _refine(sub_heads[lid], output, sub_ref).detach()
            obj_ref = _refine(obj_heads[lid], output, obj_ref).detach()
        return output
