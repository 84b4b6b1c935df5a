"""Deterministic weights from key names, and a byte-level RoBERTa vocabulary: the proof of equality's inputs.

Both the port's test and the reference script (run with RLIPv2's own code in a separate environment) call
`deterministic_fill` on their model's state dict, so both models hold the same numbers without shipping a
weights file. Each tensor is drawn from a generator seeded by a stable hash of its canonical key name, so the
values do not depend on iteration order or on which alias of a shared tensor is filled last. Only torch and
the standard library are imported here (the reference script loads this file by path).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

try:  # loaded as part of the package
    from .keys import canonical_key
except ImportError:  # loaded by file path from the reference script
    from keys import canonical_key  # type: ignore[no-redef]


def _generator(name: str) -> torch.Generator:
    seed = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little") & ((1 << 63) - 1)
    return torch.Generator().manual_seed(seed)


# Spread the verb logits over several units, so that the scores compared are far from the constant prior.
_GAIN = {"projection_text.weight": 16.0}


def _value(name: str, shape: torch.Size) -> torch.Tensor:
    gen = _generator(name)
    normal = torch.randn(shape, generator=gen, dtype=torch.float64)
    if len(shape) >= 2:  # conv / linear / embedding: unit-variance outputs keep a deep random net finite
        fan_in = math.prod(shape[1:])
        return normal * _GAIN.get(name, 1.0) / math.sqrt(fan_in)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return 0.5 + torch.rand(shape, generator=gen, dtype=torch.float64)
    if leaf == "running_mean":
        return 0.1 * normal
    if leaf == "weight":  # norm layers (batch, group, layer): near one
        return 1.0 + 0.1 * normal
    if leaf in ("gamma_v", "gamma_l"):  # fusion layer scale, initialised to 1 / levels officially
        return 0.25 + 0.05 * normal
    return 0.05 * normal  # biases and other vectors


def deterministic_fill(state: dict[str, torch.Tensor], dec_layers: int) -> None:
    """Overwrite every floating tensor of `state` (a state dict of live tensors) in place."""
    with torch.no_grad():
        for name, tensor in state.items():
            if not tensor.is_floating_point():
                continue
            key = canonical_key(name, dec_layers)
            tensor.copy_(_value(key, tensor.shape).to(tensor.dtype))


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's reversible byte -> printable character table, as byte-level BPE vocabularies use.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def write_byte_tokenizer(folder: str | Path) -> int:
    """A RoBERTa tokenizer (vocab.json + merges.txt) with one token per byte; returns the vocabulary size."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for char in sorted(_bytes_to_unicode().values()):
        vocab[char] = len(vocab)
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "RobertaTokenizer"}), encoding="utf-8")
    return len(vocab)


def synthetic_image_array(seed: int, width: int, height: int) -> torch.Tensor:
    """A reproducible RGB image [height, width, 3] uint8: coarse random blocks plus noise."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((3, max(1, height // 16), max(1, width // 16)), generator=gen)
    smooth = torch.nn.functional.interpolate(coarse[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    noise = torch.rand((3, height, width), generator=gen)
    pixels = (0.8 * smooth + 0.2 * noise).clamp(0, 1) * 255
    return pixels.round().to(torch.uint8).permute(1, 2, 0).contiguous()
