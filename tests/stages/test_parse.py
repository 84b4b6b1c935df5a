"""The parse stage: merge across an image's captions, bad captions, failed samples left alone."""

from __future__ import annotations

from typing import Iterator

import pytest

from sgpipe import errors
from sgpipe.config import ParseConfig
from sgpipe.records import Caption, Sample
from sgpipe.stages.base import reraise
from sgpipe.stages.parse import ParseStage
from tests.helpers.samples import build_sample


@pytest.fixture(scope="module")
def stage() -> Iterator[ParseStage]:
    stage = ParseStage(ParseConfig(batch_size=4))
    stage.handler = reraise
    stage.setup()
    yield stage
    stage.teardown()


def make_sample(image_id: int, texts: list[str]) -> Sample:
    captions = [Caption(id=i, text=t, source="model") for i, t in enumerate(texts)]
    return build_sample(image_id, "coco", width=10, height=10, captions=captions)


def test_stage_identity(stage: ParseStage) -> None:
    assert stage.name == "parse" and stage.failure_status == errors.FAILED_PARSE


def test_captions_merge_with_support(stage: ParseStage) -> None:
    sample = make_sample(
        1,
        [
            "a man riding a horse on a beach",
            "a man is riding a horse",
            "a man riding a horse on a beach",  # identical text: a second caption stating it
            "a dog next to a horse",
        ],
    )
    stage([sample])
    assert sample.ok
    got = [(t.id, t.lemma_key, t.support, t.caption_ids) for t in sample.triplets]
    assert got == [
        (0, ("man", "ride", "horse"), 3, [0, 1, 2]),
        (1, ("man", "on", "beach"), 2, [0, 2]),
        (2, ("dog", "next to", "horse"), 1, [3]),
    ]


def test_deterministic_across_batch_compositions(stage: ParseStage) -> None:
    texts = [["a cat on a mat", "a cat sitting on a mat"], ["two dogs in a car", "a cat on a mat"], ["a man"]]
    together = [make_sample(i, t) for i, t in enumerate(texts)]
    stage(together)
    alone = [make_sample(i, t) for i, t in enumerate(texts)]
    for sample in alone:
        stage([sample])
    assert [[x.to_json() for x in s.triplets] for s in together] == [
        [x.to_json() for x in s.triplets] for s in alone
    ]
    assert together[2].triplets == [] and together[2].ok


def test_bad_captions_give_no_triplets_and_no_failure(stage: ParseStage) -> None:
    long_caption = ("a cat on a mat and " * 300)[:5000]
    bad = ["", "   ", "🐱🐶🐴😀", "!!! ... ???", "un chat noir assis sur le tapis", "一只猫坐在垫子上"]
    samples = [make_sample(i, [t]) for i, t in enumerate(bad)] + [make_sample(99, [long_caption])]
    stage(samples)
    assert all(s.ok for s in samples)
    assert all(s.triplets == [] for s in samples[:-1])
    assert [s.counters.get("parse_captions_skipped") for s in samples[:-1]] == [1] * len(bad)
    assert samples[-1].counters["parse_captions_truncated"] == 1
    assert {t.lemma_key for t in samples[-1].triplets} == {("cat", "on", "mat")}


def test_failed_samples_are_left_alone(stage: ParseStage) -> None:
    sample = make_sample(5, ["a cat on a mat"])
    sample.fail(errors.FAILED_DECODE, "broken")
    stage([sample])
    assert sample.triplets == [] and sample.status == errors.FAILED_DECODE


def test_describe_names_the_spacy_model(stage: ParseStage) -> None:
    assert stage.describe()["spacy_model"].startswith("en_core_web_sm")
