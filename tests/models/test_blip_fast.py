"""The fast caption engine gives the transformers engine's captions, token for token, in float32."""

import logging
import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from PIL import Image  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from sgpipe.models.blip_fast import CHECK_EVERY, FastBlipCaptioner, encode_images  # noqa: E402
from sgpipe.models.blip_shapes import blip_config, prompt_ids  # noqa: E402
from sgpipe.models.captioner import Captioner, Decoding  # noqa: E402

RLIPV2 = Decoding()  # 10 captions, max_length 20, min_length 5, top-p 0.9, top-k 50, penalty 1.1


def images(n):
    return [Image.new("RGB", (40 + 6 * i, 36 + 3 * i), (37 * i % 256, 200 - 20 * i, 90)) for i in range(n)]


def both_engines(path, decoding, pictures, seeds):
    out = []
    for engine in ("transformers", "fast"):
        captioner = Captioner(path, decoding, "cpu", image_size=32, engine=engine).load()
        assert captioner.engine_in_use() == engine
        out.append(captioner.generate_ids(pictures, seeds))
    return out


@pytest.mark.parametrize(
    "decoding",
    [
        RLIPV2,
        Decoding(num_return_sequences=3, max_length=12, min_length=12),  # every caption at full length
        Decoding(num_return_sequences=1, max_length=9, min_length=0, repetition_penalty=1.0, top_p=0.5),
        Decoding(num_return_sequences=4, max_length=6, repetition_penalty=1.5, prompt="a dog"),
    ],
)
def test_tiny_blip_same_tokens(tiny_blip, decoding):
    reference, fast = both_engines(tiny_blip, decoding, images(5), [3, 1, 4, 1 << 40, 5])
    assert fast.shape == reference.shape and torch.equal(fast, reference)


@pytest.fixture(scope="module")
def ending_blip(tiny_blip, tmp_path_factory):
    """The tiny BLIP made to end its captions early: [SEP] favoured by the output bias."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model = BlipForConditionalGeneration.from_pretrained(tiny_blip)
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[model.config.text_config.sep_token_id] += 2.5
    path = tmp_path_factory.mktemp("ending_blip")
    model.save_pretrained(path)
    BlipProcessor.from_pretrained(tiny_blip).save_pretrained(path)
    return str(path)


def test_captions_of_different_lengths_end_and_pad_as_transformers(ending_blip):
    pictures = images(4)
    for max_length in (20, 9):
        decoding = Decoding(num_return_sequences=6, max_length=max_length, min_length=6)
        reference, fast = both_engines(ending_blip, decoding, pictures, [7, 8, 9, 10])
        assert torch.equal(fast, reference)
        sep = 3  # tests/helpers/tiny_models: [SEP]
        lengths = {row.index(sep) + 1 if sep in row else len(row) for row in reference.tolist()}
        assert len(lengths) > 2 and min(lengths) >= 6  # the check is not vacuous; min_length held
    # everything ends well before max_length: the output stops where the longest caption does
    decoding = Decoding(num_return_sequences=6, max_length=20, min_length=5)
    reference, fast = both_engines(ending_blip, decoding, pictures, [1, 2, 3, 4])
    assert torch.equal(fast, reference) and reference.shape[1] < 20


def random_blip(size):
    from transformers import BlipForConditionalGeneration

    torch.manual_seed(0)
    return BlipForConditionalGeneration(blip_config(size)).eval()


def random_inputs(model, size, n_images):
    side = model.config.vision_config.image_size
    pixels = torch.rand(n_images, 3, side, side, generator=torch.Generator().manual_seed(2)) * 4 - 2
    ids = torch.tensor([prompt_ids(size)] * n_images)
    return {"pixel_values": pixels, "input_ids": ids, "attention_mask": torch.ones_like(ids)}


def compare_on_random_blip(size, n_images, decodings):
    model = random_blip(size)
    inputs = random_inputs(model, size, n_images)
    for decoding in decodings:
        out = []
        for engine in ("transformers", "fast"):
            captioner = Captioner(f"random-{size}", decoding, "cpu", engine=engine)
            captioner.model = model
            out.append(captioner.generate_from_inputs(inputs, list(range(100, 100 + n_images))))
        assert torch.equal(out[1], out[0]), f"{size}: {(out[1] != out[0]).any(1).sum()} captions differ"


def test_blip_large_structure_same_tokens():
    # vision wider than text (cross-attention keys from 64-wide features), BERT's 30524-token
    # vocabulary (so top-k 50 cuts), 10 captions per image as RLIPv2
    compare_on_random_blip("large-small", 3, [RLIPV2, Decoding(max_length=20, min_length=20)])


@pytest.mark.slow
def test_blip_large_shape_same_tokens():
    compare_on_random_blip("large", 2, [Decoding(max_length=20, min_length=20)])


def test_vision_encoder_matches_transformers():
    model = random_blip("large-small")
    pixels = random_inputs(model, "large-small", 3)["pixel_values"]
    with torch.inference_mode():
        expected = model.vision_model(pixel_values=pixels).last_hidden_state
        assert torch.allclose(encode_images(model.vision_model, pixels), expected, atol=1e-5, rtol=1e-5)


class OpLog(TorchDispatchMode):
    """Records every aten op run, with the shapes of its tensor arguments."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
        self.ops.append((str(func.overloadpacket.__name__), shapes))
        return func(*args, **(kwargs or {}))

    def count(self, *names):
        return sum(op in names for op, _ in self.ops)


def test_host_waits_only_every_few_steps_and_keys_are_shared_not_copied():
    model = random_blip("large-small")
    n_images, decoding = 3, Decoding(max_length=20, min_length=20)
    inputs = random_inputs(model, "large-small", n_images)
    engine = FastBlipCaptioner(model, decoding)
    with OpLog() as log:
        ids = engine.generate(inputs["pixel_values"], inputs["input_ids"], [1, 2, 3])
    assert ids.shape == (30, 20)
    # a host sync reads a device value: `.item()`, `bool(t)`, `int(t)` go through one of these ops
    syncs = log.count("_local_scalar_dense", "is_nonzero", "item")
    checks = (20 - 4 - 1) // CHECK_EVERY  # 16 tokens: the first from the prompt, then 15 steps
    assert syncs == checks + 1  # + the final cut to the longest caption
    assert log.count("nonzero") == 0 and log.count("masked_select") == 0  # no data-dependent shapes
    # cross-attention reads one copy of each image's keys: [images, heads, 17 tokens, d], never rows
    image_tokens = 1 + (64 // 16) ** 2
    attention = [s for op, s in log.ops if "scaled_dot_product" in op and s[1][2] == image_tokens]
    assert attention and all(shapes[1][0] == n_images for shapes in attention)


def test_fast_engine_alone_is_batch_independent():
    model = random_blip("large-small")
    inputs = random_inputs(model, "large-small", 4)
    engine = FastBlipCaptioner(model, RLIPV2)
    together = engine.generate(inputs["pixel_values"], inputs["input_ids"], [11, 12, 13, 14])
    alone = engine.generate(inputs["pixel_values"][2:3], inputs["input_ids"][2:3], [13])
    assert torch.equal(alone, together[20:30, : alone.shape[1]])


def test_static_padded_batches_give_the_eager_captions():
    # the CUDA-graph path without the capture: one state for 8 images, smaller batches padded
    model = random_blip("large-small")
    inputs = random_inputs(model, "large-small", 12)
    pixels, ids, seeds = inputs["pixel_values"], inputs["input_ids"], list(range(40, 52))
    decoding = Decoding(num_return_sequences=3)
    eager, static = FastBlipCaptioner(model, decoding), FastBlipCaptioner(model, decoding, cuda_graphs=True)
    for count, size in ((8, 8), (5, 8), (8, 8), (12, 16), (3, 16)):  # 3: under half of 16, eager
        expected = eager.generate(pixels[:count], ids[:count], seeds[:count])
        assert torch.equal(static.generate(pixels[:count], ids[:count], seeds[:count]), expected), count
        assert static._graph.images == size


def test_other_models_and_beam_search_fall_back_with_one_line(tiny_blip, caplog):
    beam = Decoding(strategy="beam", num_return_sequences=2, max_length=10, num_beams=2)
    captioner = Captioner(tiny_blip, beam, "cpu", image_size=32, engine="fast").load()
    with caplog.at_level(logging.WARNING, logger="sgpipe.models.captioner"):
        first = captioner.generate_ids(images(2), [1, 2])
        captioner.generate_ids(images(2), [1, 2])
    assert captioner.engine_in_use() == "transformers" and captioner.describe()["engine"] == "transformers"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "beam" in lines[0] and "transformers" in lines[0]
    reference = Captioner(tiny_blip, beam, "cpu", image_size=32, engine="transformers").load()
    assert torch.equal(first, reference.generate_ids(images(2), [1, 2]))


def test_generation_options_the_fast_engine_lacks_fall_back(tiny_blip, caplog):
    captioner = Captioner(tiny_blip, Decoding(num_return_sequences=2), "cpu", image_size=32).load()
    assert captioner.engine_in_use() == "fast"
    captioner.model.text_decoder.generation_config.no_repeat_ngram_size = 2
    captioner.model = captioner.model  # the same model object: the choice is kept
    assert captioner.engine_in_use() == "fast"
    captioner._fast = None  # as if loaded afresh
    with caplog.at_level(logging.WARNING, logger="sgpipe.models.captioner"):
        assert captioner.engine_in_use() == "transformers"
    assert "no_repeat_ngram_size" in caplog.text
    captioner.model.text_decoder.generation_config.no_repeat_ngram_size = None
    captioner.model.text_decoder.generation_config.num_beams = 3  # beam sampling: not the fast engine's
    captioner._fast = None
    assert captioner.engine_in_use() == "transformers"


def test_non_blip_model_falls_back():
    from sgpipe.models.blip_fast import fast_engine_problem

    assert "not a BLIP captioning model" in fast_engine_problem(torch.nn.Linear(2, 2), RLIPV2)


def test_prompt_longer_than_max_length_is_an_error_in_both_engines(tiny_blip):
    decoding = Decoding(num_return_sequences=2, max_length=4, min_length=0)  # [DEC] a picture of: 4 tokens
    for engine in ("transformers", "fast"):
        captioner = Captioner(tiny_blip, decoding, "cpu", image_size=32, engine=engine).load()
        with pytest.raises(ValueError, match="max_length"):
            captioner.generate_ids(images(1), [1])


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="fast, transformers"):
        Captioner("x", RLIPV2, "cpu", engine="vllm")
