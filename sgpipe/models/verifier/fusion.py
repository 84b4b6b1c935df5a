"""ALIF (asymmetric language-image fusion, RLIPv2): before each vision encoder layer, gated
bidirectional cross-attention between the coarsest vision tokens and the image's label vectors;
each direction has a learnable scalar gate initialised to 1/num_feature_levels. An extra
text-side layer then lets the label vectors exchange information."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """key_mask [B, Lk] True where the key is real (padding is False)."""
        q, k, v = self._heads(self.q(query)), self._heads(self.k(key)), self._heads(self.v(value))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(out.transpose(1, 2).reshape(query.shape))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, ffn_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ffn_dim, d_model),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class SelfAttentionLayer(nn.Module):
    """Pre-norm self-attention + FFN; `pos` is added to queries and keys only."""

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, num_heads, dropout)
        self.ffn = FeedForward(d_model, ffn_dim, dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        h = self.norm(x)
        qk = h if pos is None else h + pos
        return self.ffn(x + self.attn(qk, qk, h, mask))


class ALIFLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, num_levels: int, dropout: float = 0.0):
        super().__init__()
        self.vision_norm = nn.LayerNorm(d_model)
        self.text_norm = nn.LayerNorm(d_model)
        self.vision_from_text = Attention(d_model, num_heads, dropout)
        self.text_from_vision = Attention(d_model, num_heads, dropout)
        self.vision_gate = nn.Parameter(torch.tensor(1.0 / num_levels))
        self.text_gate = nn.Parameter(torch.tensor(1.0 / num_levels))

    def forward(
        self, coarse: torch.Tensor, coarse_pos: torch.Tensor, labels: torch.Tensor, label_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        v, t = self.vision_norm(coarse), self.text_norm(labels)
        new_coarse = coarse + self.vision_gate * self.vision_from_text(v + coarse_pos, t, t, label_mask)
        new_labels = labels + self.text_gate * self.text_from_vision(t, v + coarse_pos, v)
        return new_coarse, new_labels


class FusionEncoder(nn.Module):
    """ALIF + vision encoder layer, repeated; then the extra text-side layer."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        ffn_dim: int,
        num_layers: int,
        num_levels: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.alif = nn.ModuleList(
            ALIFLayer(d_model, num_heads, num_levels, dropout) for _ in range(num_layers)
        )
        self.vision = nn.ModuleList(
            SelfAttentionLayer(d_model, num_heads, ffn_dim, dropout) for _ in range(num_layers)
        )
        self.text = SelfAttentionLayer(d_model, num_heads, ffn_dim, dropout)

    def forward(
        self,
        tokens: torch.Tensor,
        pos: torch.Tensor,
        coarse_len: int,
        labels: torch.Tensor,
        label_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, T, d] whose last `coarse_len` are the coarsest level; labels [B, L, d]."""
        for alif, layer in zip(self.alif, self.vision):
            fine, coarse = tokens[:, :-coarse_len], tokens[:, -coarse_len:]
            coarse, labels = alif(coarse, pos[-coarse_len:], labels, label_mask)
            tokens = layer(torch.cat([fine, coarse], 1), pos)
        return tokens, self.text(labels, mask=label_mask)
