import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from PIL import Image, ImageFilter  # noqa: E402

from sgpipe.errors import SgpipeError  # noqa: E402
from sgpipe.models.captioner import Captioner, Decoding, device_pixel_recipe, strip_prompt  # noqa: E402


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
