"""The parse stage: merge across an image's captions, bad captions, and the `sgpipe parse` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from typer.testing import CliRunner

from sgpipe import errors
from sgpipe.cli import app
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


def test_command_with_one_caption() -> None:
    result = CliRunner().invoke(app, ["parse", "a man and a woman sitting on a bench"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(x["subject"], x["predicate"], x["object"]) for x in lines] == [
        ("man", "sit on", "bench"),
        ("woman", "sit on", "bench"),
    ]
    assert lines[0]["predicate_text"] == "sitting on" and lines[1]["id"] == 1


def test_command_with_files(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    rows = [
        {"id": "a", "text": "a pizza being cut by a man"},
        {"id": 2, "text": ""},
        {"id": 3, "text": "a cat"},
    ]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    target = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["parse", "--input", str(source), "--output", str(target)])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in target.read_text().splitlines()]
    assert [o["id"] for o in out] == ["a", 2, 3]
    assert [(t["subject"], t["predicate"], t["object"]) for t in out[0]["triplets"]] == [
        ("man", "cut", "pizza")
    ]
    assert out[1]["triplets"] == [] and out[2]["triplets"] == []
    assert set(out[0]["triplets"][0]) == {
        "id",
        "subject",
        "predicate",
        "object",
        "subject_text",
        "predicate_text",
        "object_text",
        "support",
        "caption_ids",
    }


def test_command_reports_bad_input(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "a cat on a mat"}\nnot json\n')
    target = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["parse", "--input", str(source), "--output", str(target)])
    assert result.exit_code == 2 and "in.jsonl:2" in result.output
    assert not target.exists() and not (tmp_path / "out.jsonl.tmp").exists()
    assert CliRunner().invoke(app, ["parse"]).exit_code == 2
    missing = CliRunner().invoke(app, ["parse", "--input", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    no_model = CliRunner().invoke(app, ["parse", "a cat", "--spacy-model", "xx_no_such_pipeline"])
    assert no_model.exit_code == 2 and "no spaCy pipeline could be loaded" in no_model.output
