"""Decoded images -> fixed-size model inputs, resized on the model's device.

Resizing on the host is the costliest per-image work of a GPU worker: transformers' BLIP processor
(PIL resize, then numpy float maths) and the verifier's PIL resize cost a host core about as long
per image as both models take on the GPU (docs/BENCHMARKS.md, from benchmarks/bench_inputs.py).
Here the host only turns each image into a uint8 tensor; resizing (antialiased, as PIL does: within
one grey level of PIL's result) and normalisation run where the model runs.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(image: Any) -> torch.Tensor:
    """A PIL image -> [3, H, W] uint8 RGB."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


def resize_batch(
    images: Sequence[torch.Tensor], size: tuple[int, int], mode: str, device: torch.device | str
) -> torch.Tensor:
    """[3, H_i, W_i] uint8 images -> [B, 3, h, w] uint8 on `device` (each squashed to `size`)."""
    device = torch.device(device)
    out = torch.empty(len(images), 3, *size, dtype=torch.uint8, device=device)
    for i, image in enumerate(images):
        image = image.to(device, non_blocking=True)[None]
        if device.type == "cpu":  # torch's antialiased uint8 kernels exist on the CPU only
            out[i] = F.interpolate(image, size=size, mode=mode, antialias=True)[0]
        else:
            resized = F.interpolate(image.float(), size=size, mode=mode, antialias=True)
            out[i] = resized[0].round_().clamp_(0, 255).to(torch.uint8)
    return out


def normalise(
    pixels: torch.Tensor, scale: float, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype
) -> torch.Tensor:
    """uint8 [B, 3, h, w] -> (pixels * scale - mean) / std in `dtype`, computed in float32."""
    shape = (1, -1, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=pixels.device).view(shape)
    std_t = torch.tensor(std, dtype=torch.float32, device=pixels.device).view(shape)
    return ((pixels.float() * scale - mean_t) / std_t).to(dtype)
