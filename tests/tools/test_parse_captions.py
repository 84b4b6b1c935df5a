"""`sgpipe parse`: captions to triplets from the command line, one caption or a JSONL file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sgpipe.cli import app


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # no output, no temporary file
    assert CliRunner().invoke(app, ["parse"]).exit_code == 2
    missing = CliRunner().invoke(app, ["parse", "--input", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    no_model = CliRunner().invoke(app, ["parse", "a cat", "--spacy-model", "xx_no_such_pipeline"])
    assert no_model.exit_code == 2 and "no spaCy pipeline could be loaded" in no_model.output
