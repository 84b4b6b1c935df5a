"""Model inputs resized on the device stay within a grey level of PIL's resize."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from sgpipe.models.pixels import normalise, resize_batch, to_tensor


def _photo(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(1.5))


@pytest.mark.parametrize(
    "mode, pil", [("bilinear", Image.Resampling.BILINEAR), ("bicubic", Image.Resampling.BICUBIC)]
)
def test_resize_matches_pil_within_one_grey_level(mode, pil):
    images = [_photo(640, 480, 0), _photo(97, 211, 1), _photo(30, 20, 2)]  # down, mixed, up
    out = resize_batch([to_tensor(i) for i in images], (96, 128), mode, "cpu")
    assert out.shape == (3, 3, 96, 128) and out.dtype == torch.uint8
    for image, resized in zip(images, out):
        expected = np.asarray(image.resize((128, 96), pil)).astype(int)
        difference = np.abs(resized.permute(1, 2, 0).numpy().astype(int) - expected)
        assert difference.max() <= 1, difference.max()


def test_any_pil_mode_becomes_rgb():
    for mode in ("L", "RGBA", "P", "CMYK", "I;16"):
        image = _photo(20, 10, 3).convert(mode)
        tensor = to_tensor(image)
        assert tensor.shape == (3, 10, 20) and tensor.dtype == torch.uint8


def test_normalise_in_float32_then_cast():
    pixels = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    out = normalise(pixels, 1 / 255, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.bfloat16)
    assert out.dtype == torch.bfloat16
    assert out.float().flatten().tolist() == [-2.0, 2.0] * 3


def test_degenerate_sizes_resize_without_error():
    for size in [(1, 1), (1, 300), (3000, 1)]:
        image = Image.new("RGB", size, (10, 20, 30))
        for mode in ("bilinear", "bicubic"):
            out = resize_batch([to_tensor(image)], (16, 16), mode, "cpu")
            assert out.shape == (1, 3, 16, 16) and out[0, :, 5, 5].tolist() == [10, 20, 30]
