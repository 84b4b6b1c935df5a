import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from PIL import Image, ImageFilter  # noqa: E402

from sgpipe.errors import SgpipeError  # noqa: E402
from sgpipe.models.captioner import (  # noqa: E402
    Captioner,
    Decoding,
    SeededNucleusSampler,
    device_pixel_recipe,
    row_keys,
    strip_prompt,
)


def test_sampler_follows_the_nucleus_distribution():
    # probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.9 keeps the first three, renormalised to 0.5/0.95 ...
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    rows = 20000
    scores = probs.log().repeat(rows, 1)
    sampler = SeededNucleusSampler(row_keys(list(range(rows)), 1), top_p=0.9)
    out = sampler(torch.zeros(rows, 4, dtype=torch.long), scores)
    assert torch.isfinite(out).sum(dim=1).eq(1).all()  # exactly one allowed token per row
    chosen = out.argmax(dim=1)
    freq = torch.bincount(chosen, minlength=4).float() / rows
    expected = torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95
    assert torch.allclose(freq, expected, atol=0.015), freq


def test_sampler_respects_top_k_and_masked_tokens():
    rows = 2000
    scores = torch.zeros(rows, 100)  # uniform: top_k 50 bounds the choice
    scores[:, 0] = float("-inf")  # e.g. EOS forbidden by min_length
    sampler = SeededNucleusSampler(row_keys(list(range(rows)), 1), top_p=1.0, top_k=50)
    chosen = sampler(torch.zeros(rows, 3, dtype=torch.long), scores).argmax(dim=1)
    assert chosen.ne(0).all()
    assert len(set(chosen.tolist())) == 50


def test_sampler_noise_depends_on_row_key_and_step_only():
    scores = torch.randn(6, 40)
    keys = row_keys([11, 22, 33], 2)
    full = SeededNucleusSampler(keys, 0.9)(torch.zeros(6, 5, dtype=torch.long), scores).argmax(1)
    part = SeededNucleusSampler(keys[2:4], 0.9)(torch.zeros(2, 5, dtype=torch.long), scores[2:4]).argmax(1)
    assert torch.equal(full[2:4], part)
    later = SeededNucleusSampler(keys, 1.0, 40)(torch.zeros(6, 6, dtype=torch.long), torch.zeros(6, 40))
    earlier = SeededNucleusSampler(keys, 1.0, 40)(torch.zeros(6, 5, dtype=torch.long), torch.zeros(6, 40))
    assert not torch.equal(later.argmax(1), earlier.argmax(1))


def test_row_keys_distinct_per_image_and_return_index():
    keys = row_keys([0, 1, 2**40, 2**62 + 5], 10)
    assert keys.shape == (40,) and len(set(keys.tolist())) == 40


def test_strip_prompt():
    assert strip_prompt("a picture of a dog on a bench", "a picture of ") == "a dog on a bench"
    assert strip_prompt("A Picture of cats", "a picture of ") == "cats"
    assert strip_prompt("two dogs", "a picture of ") == "two dogs"
    assert strip_prompt(" two dogs ", "") == "two dogs"




def test_lengths_count_the_prompt_as_blip_does(tiny_blip):
    image = Image.new("RGB", (40, 40), (10, 200, 30))
    # min_length == max_length: every sequence is exactly max_length, [DEC] + "a picture of" included
    fixed = Captioner(
        tiny_blip, Decoding(num_return_sequences=3, max_length=12, min_length=12), "cpu", image_size=32
    ).load()
    ids = fixed.generate_ids([image, image], [5, 6])
    tokenizer = fixed.processor.tokenizer
    prompt = [tokenizer.convert_tokens_to_ids("[DEC]")] + tokenizer("a picture of", add_special_tokens=False)[
        "input_ids"
    ]
    assert ids.shape == (6, 12)
    assert ids[:, :4].tolist() == [prompt] * 6
    assert not ids.eq(tokenizer.sep_token_id).any()
    # min_length 5 = the 4 prompt tokens + at least one word: [SEP] never comes first
    free = Captioner(
        tiny_blip, Decoding(num_return_sequences=50, max_length=8, min_length=5), "cpu", image_size=32
    ).load()
    ids = free.generate_ids([image], [1])
    assert ids.shape[1] <= 8
    assert not ids[:, 4].eq(tokenizer.sep_token_id).any()


def test_image_size_follows_a_fixed_size_model(tiny_blip, tmp_path):
    # the tiny model's grid is 32 px: asking 384 keeps 32 rather than failing every batch
    captioner = Captioner(tiny_blip, Decoding(num_return_sequences=1), "cpu", image_size=384).load()
    assert captioner.image_size == 32 and captioner.describe()["image_size"] == 32
    assert captioner.preprocess([Image.new("RGB", (50, 70))])["pixel_values"].shape[-2:] == (32, 32)
    # a processor saved with another size is resized to the one asked for
    captioner.processor.image_processor.size = {"height": 48, "width": 48}
    captioner.processor.save_pretrained(tmp_path)
    captioner.model.save_pretrained(tmp_path)
    resized = Captioner(str(tmp_path), Decoding(num_return_sequences=1), "cpu", image_size=32).load()
    assert resized.preprocess([Image.new("RGB", (50, 70))])["pixel_values"].shape[-2:] == (32, 32)


def test_broken_local_folder_is_not_called_missing(tmp_path):
    with pytest.raises(SgpipeError, match="cannot be loaded"):
        Captioner(str(tmp_path), Decoding(), device="cpu").load()


def _photo(width: int, height: int, seed: int) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy()).filter(ImageFilter.GaussianBlur(2))


def test_blip_pixels_prepared_on_the_device_match_the_processor(tiny_blip):
    captioner = Captioner(tiny_blip, Decoding(num_return_sequences=1), "cpu", image_size=32).load()
    assert device_pixel_recipe(captioner.processor) is not None
    images = [_photo(64, 48, 0), _photo(37, 90, 1), _photo(20, 20, 2).convert("L")]
    images.append(_photo(40, 30, 3).convert("RGBA"))
    ours = captioner.preprocess(images)
    theirs = captioner.processor(images=images, text=["a picture of "] * len(images), return_tensors="pt")
    assert sorted(ours) == sorted(theirs)
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    # one grey level of rounding, divided by the smallest std: 1 / 255 / 0.261
    difference = (ours["pixel_values"] - theirs["pixel_values"]).abs()
    assert difference.max() <= 0.016 and difference.mean() < 0.002


def test_processors_that_crop_or_pad_keep_their_own_path(tiny_blip):
    captioner = Captioner(tiny_blip, Decoding(num_return_sequences=1), "cpu", image_size=32).load()
    captioner.processor.image_processor.do_center_crop = True
    captioner.processor.image_processor.crop_size = {"height": 32, "width": 32}
    assert device_pixel_recipe(captioner.processor) is None
    assert captioner.preprocess([Image.new("RGB", (50, 70))])["pixel_values"].shape[-2:] == (32, 32)
    assert device_pixel_recipe(object()) is None


def test_resample_given_as_a_named_enum_is_understood(tiny_blip):
    import enum

    class Interpolation(enum.Enum):  # how torchvision names its filters
        BICUBIC = "bicubic"
        NEAREST = "nearest"

    captioner = Captioner(tiny_blip, Decoding(num_return_sequences=1), "cpu", image_size=32).load()
    captioner.processor.image_processor.resample = Interpolation.BICUBIC
    assert device_pixel_recipe(captioner.processor).mode == "bicubic"
    captioner.processor.image_processor.resample = Interpolation.NEAREST
    assert device_pixel_recipe(captioner.processor) is None
    captioner.processor.image_processor.resample = None
    assert device_pixel_recipe(captioner.processor) is None
