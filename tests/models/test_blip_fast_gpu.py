"""The fast caption engine on CUDA (off by default: run with `-m gpu` on a machine with a GPU)."""

import pytest
import torch

from sgpipe.models.blip_fast import DecodeState, FastBlipCaptioner, encode_images
from sgpipe.models.captioner import Captioner, Decoding
from tests.models.test_blip_fast import RLIPV2, random_blip, random_inputs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def on_cuda(inputs):
    return {name: value.cuda() for name, value in inputs.items()}


@pytest.fixture(scope="module")
def model():
    return random_blip("large-small").cuda()


def test_fp32_engines_agree_on_cuda(model):
    inputs = on_cuda(random_inputs(model, "large-small", 6))
    for decoding in (RLIPV2, Decoding(max_length=20, min_length=20)):
        out = []
        for engine in ("transformers", "fast"):
            captioner = Captioner("random", decoding, "cuda", dtype="float32", engine=engine)
            captioner.model = model
            out.append(captioner.generate_from_inputs(inputs, list(range(6))))
        assert torch.equal(out[0], out[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_graph_replays_give_the_eager_captions(dtype):
    model = random_blip("large-small").cuda().to(dtype)
    inputs = on_cuda(random_inputs(model, "large-small", 20))
    pixels, ids = inputs["pixel_values"].to(dtype), inputs["input_ids"]
    eager = FastBlipCaptioner(model, RLIPV2)
    graphs = FastBlipCaptioner(model, RLIPV2, cuda_graphs=True)
    seeds = list(range(50, 70))
    for count in (8, 8, 5, 12):  # captured at 8; replayed; 5 padded to 8; 12 captured anew at 16
        expected = eager.generate(pixels[:count], ids[:count], seeds[:count])
        assert torch.equal(graphs.generate(pixels[:count], ids[:count], seeds[:count]), expected), count
        assert graphs._graph.images == (8 if count <= 8 else 16)
    # a batch under half the graph's size runs eagerly, with the same result
    expected = eager.generate(pixels[:3], ids[:3], seeds[:3])
    assert torch.equal(graphs.generate(pixels[:3], ids[:3], seeds[:3]), expected)


def test_decode_step_never_waits_for_the_device(model):
    engine = FastBlipCaptioner(model, RLIPV2)
    inputs = on_cuda(random_inputs(model, "large-small", 4))
    with torch.inference_mode():
        images = encode_images(model.vision_model, inputs["pixel_values"])
        cross = engine.decoder.cross_keys_values(images)
        state = DecodeState.allocate(40, 20, cross)
        state.ids.fill_(engine.start_token)
        state.position.fill_(3)
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(5):
                engine.step(state)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert int(state.position) == 8


def test_bf16_default_on_cuda_and_reruns_match(tiny_blip):
    from PIL import Image

    pictures = [Image.new("RGB", (40 + 4 * i, 36), (50 * i % 256, 120, 30)) for i in range(4)]
    captioner = Captioner(tiny_blip, Decoding(num_return_sequences=6), image_size=32).load()
    assert captioner.dtype == torch.bfloat16 and captioner.engine_in_use() == "fast"
    first = captioner.generate(pictures, [3, 4, 5, 6])
    assert first == captioner.generate(pictures, [3, 4, 5, 6]) and all(len(c) == 6 for c in first)
