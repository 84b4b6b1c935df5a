import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from PIL import Image  # noqa: E402

from sgpipe import errors  # noqa: E402
from sgpipe.config import CaptionConfig  # noqa: E402
from sgpipe.records import Caption  # noqa: E402
from sgpipe.stages.base import reraise  # noqa: E402
from sgpipe.stages.caption import CaptionStage, image_seed  # noqa: E402
from tests.helpers.samples import build_sample  # noqa: E402
from tests.helpers.stages import run_stage  # noqa: E402


def make_samples(n, start=0):
    samples = []
    for i in range(start, start + n):
        image = Image.new("RGB", (48 + 8 * i, 40), (37 * i % 256, 90, 200 - 11 * i % 200))
        samples.append(build_sample(i, "coco", width=image.width, height=image.height, image=image))
    return samples


def make_stage(model, seed=0, **overrides):
    # short captions keep the tests fast; the RLIPv2 lengths are checked in the first test
    config = CaptionConfig(
        enabled=True, model=model, image_size=32, batch_size=4, captions_per_image=5, max_length=12
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    stage = CaptionStage(config, device="cpu", seed=seed)
    stage.handler = reraise
    return stage


def texts(samples):
    return [[c.text for c in s.captions] for s in samples]


def test_n_captions_recorded_with_model_and_decoding(tiny_blip):
    samples = make_samples(2)
    run_stage(make_stage(tiny_blip, max_length=20), samples)
    for sample in samples:
        assert sample.ok
        assert [c.id for c in sample.captions] == list(range(5))
        for caption in sample.captions:
            assert caption.source == "model" and caption.model == tiny_blip
            assert caption.decoding["strategy"] == "sample"
            assert caption.decoding["top_p"] == 0.9 and caption.decoding["top_k"] == 50
            assert caption.decoding["max_length"] == 20 and caption.decoding["min_length"] == 5
            assert caption.decoding["prompt"] == "a picture of "
            assert caption.text and not caption.text.startswith("a picture of")
            # BLIP counts the prompt ([DEC] a picture of = 4 tokens): at most 15 words before [SEP]
            assert len(caption.text.split()) <= 16
    # random weights: the 10 sampled captions are not all one string
    assert len(set(texts(samples)[0])) > 1


def test_same_seed_same_captions_other_seed_differs(tiny_blip):
    first, second, other = make_samples(3), make_samples(3), make_samples(3)
    run_stage(make_stage(tiny_blip, seed=7), first)
    run_stage(make_stage(tiny_blip, seed=7), second)
    run_stage(make_stage(tiny_blip, seed=8), other)
    assert texts(first) == texts(second)
    assert texts(first) != texts(other)


def test_captions_do_not_depend_on_batch_composition(tiny_blip):
    together = make_samples(5)
    run_stage(make_stage(tiny_blip, batch_size=5), together)
    alone = make_samples(1, start=3)
    run_stage(make_stage(tiny_blip, batch_size=1), alone)
    assert texts(alone)[0] == texts(together)[3]


def test_batch_of_several_images(tiny_blip):
    samples = make_samples(7)
    stage = make_stage(tiny_blip, batch_size=3)
    run_stage(stage, samples)
    assert all(len(s.captions) == 5 for s in samples)
    assert stage.stats()["samples"] == 7 and stage.stats()["retries"] == 0
    assert len({tuple(t) for t in texts(samples)}) == 7


def test_beam_option(tiny_blip):
    first, second = make_samples(2), make_samples(2)
    run_stage(make_stage(tiny_blip, decoding="beam", num_beams=3, captions_per_image=4, seed=1), first)
    run_stage(make_stage(tiny_blip, decoding="beam", num_beams=3, captions_per_image=4, seed=2), second)
    assert texts(first) == texts(second)  # beam search is deterministic, seeds play no part
    caption = first[0].captions[0]
    assert caption.decoding["strategy"] == "beam" and caption.decoding["num_beams"] == 4
    assert "top_p" not in caption.decoding
    assert all(len(s.captions) == 4 for s in first)
    assert len(set(texts(first)[0])) == 4  # distinct beams


def test_failed_or_imageless_samples_are_skipped(tiny_blip):
    samples = make_samples(3)
    samples[0].fail(errors.FAILED_DECODE, "not an image")
    samples[1].image = None
    run_stage(make_stage(tiny_blip), samples)
    assert samples[0].captions == [] and samples[0].status == errors.FAILED_DECODE
    assert samples[1].captions == [] and samples[1].ok
    assert len(samples[2].captions) == 5


def test_ids_continue_after_existing_captions(tiny_blip):
    samples = make_samples(1)
    samples[0].captions.append(Caption(id=0, text="a dog on a bench", source="annotation"))
    run_stage(make_stage(tiny_blip), samples)
    assert [c.id for c in samples[0].captions] == list(range(6))


def test_missing_model_fails_at_startup_naming_it():
    stage = make_stage("sgpipe-tests/no-such-captioner-model")
    with pytest.raises(errors.ModelNotAvailableError) as raised:
        stage.setup()
    assert "sgpipe-tests/no-such-captioner-model" in str(raised.value)
    assert "--local-dir" in str(raised.value)


def test_unreachable_hub_fails_fast_naming_model_and_endpoint(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    stage = make_stage("sgpipe-tests/no-such-captioner-model")
    with pytest.raises(errors.ModelNotAvailableError) as raised:
        stage.setup()
    assert "sgpipe-tests/no-such-captioner-model" in str(raised.value)
    assert "http://127.0.0.1:9 cannot be reached" in str(raised.value)


def test_describe_names_model_engine_and_decoding(tiny_blip):
    stage = make_stage(tiny_blip)
    assert stage.describe()["model"] == tiny_blip and stage.describe()["engine"] == "fast"
    stage.setup()
    described = stage.describe()
    assert described["model"] == tiny_blip and described["dtype"] == "float32"
    assert described["decoding"]["num_return_sequences"] == 5 and described["engine"] == "fast"


def test_both_engines_write_the_same_captions(tiny_blip):
    fast, reference = make_samples(4), make_samples(4)
    run_stage(make_stage(tiny_blip, seed=3, engine="fast"), fast)
    run_stage(make_stage(tiny_blip, seed=3, engine="transformers"), reference)
    assert texts(fast) == texts(reference)
    decodings = [[c.decoding for c in s.captions] for s in fast + reference]
    assert decodings[:4] == decodings[4:]


def test_image_seed_is_stable():
    assert image_seed(0, "coco-000000000009") == image_seed(0, "coco-000000000009")
    assert image_seed(0, "coco-000000000009") != image_seed(1, "coco-000000000009")
    assert 0 <= image_seed(3, "x") < 2**63
    # pinned: a change of derivation would silently change every caption of a resumed run
    assert image_seed(0, "coco-000000000009") == 0x1F2B9FEB78719D0
