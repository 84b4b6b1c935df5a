"""Seeded nucleus sampling and the other per-token rules of RLIPv2's decoding, as tensor operations.

Both caption engines draw through `nucleus_draw`: the same keys, the same noise, the same token for
the same scores. The transformers engine calls it from a logits processor (`SeededNucleusSampler`);
the fast engine calls it inside its decode step, where `length` is a device tensor so that the step
can be captured in a CUDA graph.

Sampling is Gumbel-max over the top-k/top-p set, with noise from a counter-based hash of (image
seed, return index, step, token id) instead of a global RNG: an image's captions depend only on its
seed and its own logits, whatever else is in the batch and on any device.
"""

from __future__ import annotations

import torch

TOP_K = 50  # transformers' default, in force when RLIPv2 sampled with top_p 0.9
_MASK32 = 0xFFFFFFFF


def _fmix32(x: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's 32-bit finalizer on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & _MASK32  # low 32 bits are right even when the int64 product wraps
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & _MASK32
    return x ^ (x >> 16)


def row_keys(seeds: list[int], per_image: int) -> torch.Tensor:
    """One 32-bit key per generated sequence: image seed (63 bits) and return index mixed."""
    keys = []
    for seed in seeds:
        low, high = seed & _MASK32, (seed >> 32) & _MASK32
        for index in range(per_image):
            keys.append([low, high, index])
    parts = torch.tensor(keys, dtype=torch.int64).view(-1, 3)
    key = _fmix32(parts[:, 0] ^ _fmix32(parts[:, 1] ^ 0x9E3779B9))
    return _fmix32(key ^ _fmix32(parts[:, 2] + 0x7F4A7C15))


def nucleus_draw(
    keys: torch.Tensor, length: int | torch.Tensor, scores: torch.Tensor, top_p: float, top_k: int
) -> torch.Tensor:
    """One token id per row, drawn from the top-k/top-p set of `scores` ([rows, vocab]).

    `length` is the sequence length before the draw (prompt included), an int or a 0-d tensor.
    """
    k = min(top_k, scores.shape[-1]) if top_k > 0 else scores.shape[-1]
    values, tokens = scores.float().topk(k, dim=-1)  # sorted, highest first
    probs = values.softmax(dim=-1)
    keep = (probs.cumsum(dim=-1) - probs) < top_p  # the nucleus; the top token always stays
    step = _fmix32(keys ^ _fmix32(torch.zeros_like(keys) + length))
    bits = _fmix32(_fmix32((step[:, None] ^ tokens) & _MASK32) ^ step[:, None])
    # 23 bits: (b + 0.5) / 2**23 is exact in float32 and strictly inside (0, 1)
    uniform = ((bits >> 9).float() + 0.5) / float(1 << 23)
    gumbel = -torch.log(-torch.log(uniform))
    choice = torch.where(keep, values + gumbel, torch.full_like(values, float("-inf"))).argmax(dim=-1)
    return tokens.gather(1, choice[:, None]).squeeze(1)


def penalise_repeats(scores: torch.Tensor, ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty as transformers applies it: every token already in `ids` has its
    score divided by `penalty` when positive, multiplied when negative (once, however often it occurs)."""
    seen = scores.gather(1, ids)
    return scores.scatter(1, ids, torch.where(seen < 0, seen * penalty, seen / penalty))


class SeededNucleusSampler:
    """A logits processor that draws the next token by top-k/top-p sampling, seeded per row.

    It returns scores that are -inf everywhere but the drawn token, so transformers' own
    multinomial step (run with do_sample=True, top_k=0, top_p=1.0) can only pick that token.
    """

    def __init__(self, keys: torch.Tensor, top_p: float, top_k: int = TOP_K):
        self.keys = keys
        self.top_p = top_p
        self.top_k = top_k

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.keys.device != scores.device:
            self.keys = self.keys.to(scores.device)  # once, not a host copy per step
        if self.keys.shape[0] != scores.shape[0]:
            raise ValueError(f"sampler has {self.keys.shape[0]} row keys for {scores.shape[0]} rows")
        chosen = nucleus_draw(self.keys, input_ids.shape[1], scores, self.top_p, self.top_k)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen[:, None], 0.0)
