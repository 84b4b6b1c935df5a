"""Captioner on CUDA (off by default: run with `-m gpu` on a machine with a GPU)."""

import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from PIL import Image  # noqa: E402

from sgpipe.models.captioner import Captioner, Decoding  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def images(n):
    return [Image.new("RGB", (40 + 4 * i, 36), (50 * i % 256, 120, 30)) for i in range(n)]


def captioner(path, device, dtype):
    return Captioner(path, Decoding(num_return_sequences=6), device=device, dtype=dtype, image_size=32).load()


def test_auto_dtype_is_bf16_on_cuda_and_reruns_match(tiny_blip):
    model = captioner(tiny_blip, "auto", "auto")
    assert model.device == "cuda" and model.dtype == torch.bfloat16
    seeds = [3, 4, 5, 6]
    first = model.generate(images(4), seeds)
    assert first == model.generate(images(4), seeds)
    assert all(len(c) == 6 for c in first)


def test_fp32_captions_independent_of_batch_and_device(tiny_blip):
    gpu = captioner(tiny_blip, "cuda", "float32")
    together = gpu.generate(images(5), [10, 11, 12, 13, 14])
    alone = gpu.generate(images(5)[3:4], [13])
    assert alone[0] == together[3]
    cpu = captioner(tiny_blip, "cpu", "float32")
    assert cpu.generate(images(5)[3:4], [13])[0] == together[3]
