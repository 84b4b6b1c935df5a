"""The zero-shot detector wrapper: phrase bookkeeping over prompts and batches on known logits (a stub
model behind the real tiny processors), box frames, and the real tiny Grounding DINO and OWLv2."""

import numpy as np
import pytest
import torch

from sgpipe.models.detections import Thresholds
from sgpipe.models.detector import ZeroShotDetector, phrase_tokens, prompt_spans
from tests.helpers.images import pattern_image
from tests.helpers.tiny_detectors import (
    WORD_LOGITS,
    StubDino,
    StubOwl,
    build_tiny_grounding_dino,
    build_tiny_owlv2,
)

P = {word: 1 / (1 + np.exp(-logit)) for word, (_, logit) in WORD_LOGITS.items()}

@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory):
    return str(build_tiny_grounding_dino(tmp_path_factory.mktemp("dino") / "gd"))


@pytest.fixture(scope="module")
def tiny_owl(tmp_path_factory):
    return str(build_tiny_owlv2(tmp_path_factory.mktemp("owl") / "owl"))


def _stubbed(folder, stub, **kw):
    detector = ZeroShotDetector(folder, Thresholds(box=0.5, text=0.5, nms_iou=0.5, max_boxes=10), **kw).load()
    detector.model = stub(detector.processor.tokenizer)
    return detector


def _plain(results):
    return [[(d.phrase, round(d.score, 6), tuple(round(v, 4) for v in d.box)) for d in r] for r in results]


def test_prompt_spans_and_phrase_tokens(tiny_dino):
    prompt, spans = prompt_spans(["man", "fire hydrant"])
    assert prompt == "man. fire hydrant." and spans == [(0, 3), (5, 17)]
    detector = ZeroShotDetector(tiny_dino).load()
    offsets = detector.processor.tokenizer(prompt, return_offsets_mapping=True)["offset_mapping"]
    # [CLS] man . fire hydrant . [SEP]
    assert phrase_tokens(offsets, spans) == [[1], [3, 4]]


def test_grounding_dino_scores_a_phrase_by_its_best_token_in_the_images_frame(tiny_dino):
    detector = _stubbed(tiny_dino, StubDino)
    image = pattern_image(100, 50, 1)
    (found,), _ = detector.detect([image], [["man", "horse", "fire hydrant"]])
    assert _plain([found]) == [[
        ("horse", round(P["horse"], 6), (40.0, 15.0, 60.0, 35.0)),
        ("fire hydrant", round(P["hydrant"], 6), (20.0, 10.0, 30.0, 15.0)),  # max(P fire, P hydrant)
    ]]


def test_prompts_longer_than_the_model_reads_are_split_and_phrases_keep_their_names(tiny_dino):
    phrases = ["man", "horse", "a dog", "fire hydrant", "kite"]
    one_prompt = _stubbed(tiny_dino, lambda tok: StubDino(tok, max_text_len=32))
    split = _stubbed(tiny_dino, lambda tok: StubDino(tok, max_text_len=8))  # 6 tokens besides [CLS], [SEP]
    assert [row.phrases for row in split.rows([phrases])] == [
        ("man", "horse"), ("a dog", "fire hydrant"), ("kite",)  # "a dog." is 3 tokens, "fire hydrant." 3
    ]
    image = pattern_image(100, 50, 1)
    expected, _ = one_prompt.detect([image], [phrases])
    assert [d.phrase for d in expected[0]] == ["horse", "fire hydrant", "kite"]
    assert _plain(split.detect([image], [phrases])[0]) == _plain(expected)


def test_batches_give_each_image_its_own_detections(tiny_dino):
    images = [pattern_image(100, 50, 1), pattern_image(60, 80, 2), pattern_image(40, 40, 3)]
    phrases = [["horse"], ["kite", "man"], ["fire hydrant", "horse"]]
    alone = [_stubbed(tiny_dino, StubDino).detect([i], [p])[0][0] for i, p in zip(images, phrases)]
    for batch_size in (1, 2, 8):
        detector = _stubbed(tiny_dino, StubDino, batch_size=batch_size)
        assert _plain(detector.detect(images, phrases)[0]) == _plain(alone)
        expected = [min(batch_size, 3 - start) for start in range(0, 3, batch_size)]
        assert [shape[0] for shape in detector.model.calls] == expected  # rows per forward


def test_owlv2_boxes_are_relative_to_the_image_padded_to_a_square(tiny_owl):
    detector = _stubbed(tiny_owl, StubOwl)
    (found,), _ = detector.detect([pattern_image(100, 50, 1)], [["man", "kite", "horse"]])
    # kite's proposal (0.8, 0.5, 0.2, 0.2) in the 100 x 100 square: y 40-60, clipped to the image's 50
    assert _plain([found]) == [[
        ("horse", round(P["horse"], 6), (40.0, 30.0, 60.0, 50.0)),
        ("kite", round(P["kite"], 6), (70.0, 40.0, 90.0, 50.0)),
    ]]


@pytest.mark.parametrize("model", ["tiny_dino", "tiny_owl"])
def test_real_tiny_models_run_batched_as_they_run_alone(model, request):
    folder = request.getfixturevalue(model)
    thresholds = Thresholds(box=0.0, text=0.0, nms_iou=0.7, max_boxes=6)
    detector = ZeroShotDetector(folder, thresholds, batch_size=4).load()
    images = [pattern_image(48, 40, 1), pattern_image(48, 40, 2)]  # one size: no batch padding
    phrases = [["man", "horse"], ["dog", "fire hydrant", "kite"]]
    batched, counts = detector.detect(images, phrases)
    for found, names, image in zip(batched, phrases, images):
        assert 0 < len(found) <= 6 and {d.phrase for d in found} <= set(names)
        assert all(0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height for x0, y0, x1, y1 in
                   (d.box for d in found))
        assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    alone = [detector.detect([i], [p])[0][0] for i, p in zip(images, phrases)]
    for one, many in zip(alone, batched):
        assert [d.phrase for d in one] == [d.phrase for d in many]
        np.testing.assert_allclose([d.box for d in one], [d.box for d in many], atol=1e-3)
        np.testing.assert_allclose([d.score for d in one], [d.score for d in many], atol=1e-5)
    names = {"detect_boxes_degenerate", "detect_suppressed", "detect_over_max_boxes"}
    assert all(set(c) == names for c in counts)


def test_bf16_runs_and_stays_near_fp32(tiny_owl):
    images, phrases = [pattern_image(48, 40, 1)], [["man", "horse"]]
    thresholds = Thresholds(box=0.0, text=0.0, nms_iou=1.0, max_boxes=32)
    fp32 = ZeroShotDetector(tiny_owl, thresholds, dtype="float32").load().detect(images, phrases)[0][0]
    bf16_detector = ZeroShotDetector(tiny_owl, thresholds, dtype="bfloat16").load()
    assert bf16_detector.model.dtype == torch.bfloat16
    bf16 = bf16_detector.detect(images, phrases)[0][0]
    key = lambda d: (d.phrase, tuple(round(v) for v in d.box))  # noqa: E731 - boxes move by bf16's precision
    assert sorted(map(key, bf16)) == sorted(map(key, fp32))
    scores = {key(d): d.score for d in fp32}
    # bf16 keeps 8 bits of mantissa: 0.022 at most here, with random weights (the R-Tagger's: 0.035)
    assert all(abs(scores[key(d)] - d.score) < 0.035 for d in bf16)
