"""The image-text encoder: deformable encoder layers, with GLIP-style bi-attention fusion and a RoBERTa layer
on the texts before every `fusion_interval`-th layer (RLIPv2's `RLIPv2_DeformableTransformerEncoder`).

Texts of one image form one sequence (each text is one token, its RoBERTa pooler output). In a batch,
padded texts and padded pixels are masked for real; RLIPv2's own masks there are no-ops (it never pads).
Under autocast only the deformable layers leave fp32: the fusions and text layers (a few hundred tokens
against tens of thousands of pixels) stay in it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .deformable import MSDeformAttn
from .precision import full_precision


def masked_logits(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """`scores` [..., K] with `valid` broadcastable to it: invalid keys get -inf before a softmax."""
    return scores.masked_fill(~valid, float("-inf"))


class DeformableEncoderLayer(nn.Module):
    def __init__(self, d_model: int, d_ffn: int, n_levels: int, n_heads: int, n_points: int):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src, pos, reference_points, shapes, shapes_tensor, padding_mask):
        src = self.norm1(src + self.self_attn(src + pos, reference_points, src, shapes, shapes_tensor, padding_mask))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        n, length, width = hidden.shape
        head_dim = width // self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(n, length, self.heads, head_dim).transpose(1, 2)

        q, k, v = split(self.query(hidden)), split(self.key(hidden)), split(self.value(hidden))
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
        probs = masked_logits(scores, valid[:, None, None, :]).softmax(-1)
        return (probs @ v).transpose(1, 2).reshape(n, length, width)


class _DenseNorm(nn.Module):
    def __init__(self, d_in: int, d_out: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float):
        super().__init__()
        self.self = _SelfAttention(hidden, heads)
        self.output = _DenseNorm(hidden, hidden, eps)


class _Dense(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)


class TextLayer(nn.Module):
    """One BERT/RoBERTa layer (post-norm, GELU), key names as transformers' `RobertaLayer`."""

    def __init__(self, text: dict):
        super().__init__()
        hidden, eps = text["hidden_size"], text["layer_norm_eps"]
        self.attention = _Attention(hidden, text["num_attention_heads"], eps)
        self.intermediate = _Dense(hidden, text["intermediate_size"])
        self.output = _DenseNorm(text["intermediate_size"], hidden, eps)

    def forward(self, hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        attended = self.attention.output(self.attention.self(hidden, valid), hidden)
        return self.output(F.gelu(self.intermediate.dense(attended)), attended)


class BiMultiHeadAttention(nn.Module):
    """Vision tokens attend to texts and texts to vision tokens, with one shared score matrix (GLIP)."""

    def __init__(self, v_dim: int, l_dim: int, embed_dim: int, heads: int, flags: dict):
        super().__init__()
        self.heads, self.head_dim = heads, embed_dim // heads
        self.v_proj = nn.Linear(v_dim, embed_dim)
        self.l_proj = nn.Linear(l_dim, embed_dim)
        self.values_v_proj = nn.Linear(v_dim, embed_dim)
        self.values_l_proj = nn.Linear(l_dim, embed_dim)
        self.out_v_proj = nn.Linear(embed_dim, v_dim)
        self.out_l_proj = nn.Linear(embed_dim, l_dim)
        self.flags = flags

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        return x.view(n, length, self.heads, self.head_dim).transpose(1, 2)  # [N, heads, L, head_dim]

    def _clamp(self, x: torch.Tensor) -> torch.Tensor:
        if self.flags["clamp_min_for_underflow"]:
            x = x.clamp(min=-50000)
        if self.flags["clamp_max_for_overflow"]:
            x = x.clamp(max=50000)
        return x

    def forward(self, v, l, v_pos, l_valid, v_valid):
        query = self._split(self.v_proj(v + v_pos) * self.head_dim**-0.5)
        key = self._split(self.l_proj(l))
        value_v = self._split(self.values_v_proj(v))
        value_l = self._split(self.values_l_proj(l))
        scores = query @ key.transpose(-1, -2)  # [N, heads, Lv, T]
        if self.flags["stable_softmax_2d"]:  # one shift per image (RLIPv2 shifts by the batch's maximum)
            scores = scores - masked_logits(scores, l_valid[:, None, None, :]).amax(dim=(1, 2, 3), keepdim=True)
        scores = self._clamp(scores)
        scores_t = scores.transpose(-1, -2)  # [N, heads, T, Lv]
        scores_t = scores_t - masked_logits(scores_t, v_valid[:, None, None, :]).amax(-1, keepdim=True)
        probs_l = masked_logits(self._clamp(scores_t), v_valid[:, None, None, :]).softmax(-1)
        probs_v = masked_logits(scores, l_valid[:, None, None, :]).softmax(-1)
        out_v = (probs_v @ value_l).transpose(1, 2).flatten(2)
        out_l = (probs_l @ value_v).transpose(1, 2).flatten(2)
        return self.out_v_proj(out_v), self.out_l_proj(out_l)


class BiAttentionBlock(nn.Module):
    def __init__(self, v_dim: int, l_dim: int, flags: dict, layer_scale: float):
        super().__init__()
        self.scalar_gate = flags["gating_mechanism"] == "VXAc"  # RLIPv2's VXAc: gamma[0] scales every channel
        self.layer_norm_v = nn.LayerNorm(v_dim)
        self.layer_norm_l = nn.LayerNorm(l_dim)
        self.attn = BiMultiHeadAttention(v_dim, l_dim, embed_dim=2048, heads=8, flags=flags)
        self.gamma_v = nn.Parameter(torch.full((v_dim,), layer_scale))
        self.gamma_l = nn.Parameter(torch.full((l_dim,), layer_scale))

    def forward(self, v, l, v_pos, l_valid, v_valid):
        v, l = self.layer_norm_v(v), self.layer_norm_l(l)
        delta_v, delta_l = self.attn(v, l, v_pos, l_valid, v_valid)
        gamma_v, gamma_l = (self.gamma_v[:1], self.gamma_l[:1]) if self.scalar_gate else (self.gamma_v, self.gamma_l)
        return v + gamma_v * delta_v, l + gamma_l * delta_l


class VLFuse(nn.Module):
    def __init__(self, v_dim: int, l_dim: int, flags: dict, layer_scale: float):
        super().__init__()
        self.b_attn = BiAttentionBlock(v_dim, l_dim, flags, layer_scale)


def encoder_reference_points(shapes, valid_ratios: torch.Tensor) -> torch.Tensor:
    points = []
    for level, (height, width) in enumerate(shapes):
        ref_y, ref_x = torch.meshgrid(
            torch.linspace(0.5, height - 0.5, height, dtype=torch.float32, device=valid_ratios.device),
            torch.linspace(0.5, width - 0.5, width, dtype=torch.float32, device=valid_ratios.device),
            indexing="ij",
        )
        ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, level, 1] * height)
        ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, level, 0] * width)
        points.append(torch.stack((ref_x, ref_y), -1))
    return torch.cat(points, 1)[:, :, None] * valid_ratios[:, None]


class FusionEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        d, text = config.hidden_dim, config.text
        flags = {k: getattr(config, k) for k in ("stable_softmax_2d", "clamp_min_for_underflow", "clamp_max_for_overflow",
                                                 "gating_mechanism")}
        self.interval = config.fusion_interval
        self.layers = nn.ModuleList(
            DeformableEncoderLayer(d, config.dim_feedforward, config.num_feature_levels, config.nheads, config.enc_n_points)
            for _ in range(config.enc_layers)
        )
        self.roberta_layers = nn.ModuleList(TextLayer(text) for _ in range(config.num_fusions))
        scale = 1.0 / config.num_feature_levels
        self.VLFuse_layers = nn.ModuleList(
            VLFuse(d, text["hidden_size"], flags, scale) for _ in range(config.num_fusions)
        )

    def forward(self, src, pos, padding_mask, shapes, shapes_tensor, last_start, valid_ratios, lang, lang_valid):
        """-> (image memory [N, S, C], fused texts of every fusion [fusions, N, T, 768])."""
        reference_points = encoder_reference_points(shapes, valid_ratios)
        last_valid = ~padding_mask[:, last_start:]
        texts = []
        for index, layer in enumerate(self.layers):
            if index % self.interval == 0:
                fusion = index // self.interval
                with full_precision(src):  # the fusion and the texts: small, and their scores feed every logit
                    fused, lang = self.VLFuse_layers[fusion].b_attn(
                        src[:, last_start:].float(), lang.float(), pos[:, last_start:].float(), lang_valid, last_valid
                    )
                    lang = self.roberta_layers[fusion](lang, lang_valid)
                src = torch.cat([src[:, :last_start], fused.to(src.dtype)], dim=1)
                texts.append(lang)
            src = layer(src, pos, reference_points, shapes, shapes_tensor, padding_mask)
        return src, torch.stack(texts)
