"""The recipes benchmark's quick mode: sgpipe's recipe and RLIPv2's flow on one tiny synthetic world with one
verifier, every figure reported and consistent with the shards the runs wrote."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from sgpipe.shards import iter_shard_samples
from sgpipe.synth.shapes import CATEGORIES

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("local_ray")  # the benchmark's pipeline runs share one Ray


def _benchmark():
    path = ROOT / "benchmarks" / "bench_recipes_synth.py"
    spec = importlib.util.spec_from_file_location("bench_recipes_synth", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _kept(shards: Path) -> set[tuple]:
    return {
        (s.record["image_id"], r["subject_id"], r["object_id"], r["predicate_text"])
        for s in iter_shard_samples(str(shards))
        for r in s.record["relations"]
        if r["kept"]
    }


def test_quick_mode_measures_both_recipes_on_one_world(tmp_path, tiny_verifier, capsys):
    work, out = tmp_path / "work", tmp_path / "results.json"
    args = ["--quick", "--work", str(work), "--checkpoint", str(tiny_verifier), "--output", str(out)]
    results = _benchmark().main(args)
    assert json.loads(out.read_text()) == results and results["validation_images"] == 4
    a, b = results["recipes"]
    assert (a["recipe"], a["parser"], a["matching"], a["assignment"]) == ("sgpipe", "rules", "lexicon", "candidates")
    assert (b["recipe"], b["parser"], b["matching"], b["assignment"]) == ("rlipv2", "sng", "rlipv2", "all_pairs")
    for row in (a, b):
        for stage in ("candidates", "kept"):
            m = row[stage]
            assert m["true_positives"] <= m["predicted"] and m["stated_found"] <= m["stated_relations"]
            assert m["precision"] == (round(m["true_positives"] / m["predicted"], 4) if m["predicted"] else None)
            assert m["recall"] == round(m["true_positives"] / m["true_relations"], 4)
    # one world, one truth; RLIPv2's matching grounds it through the world's own table
    assert a["candidates"]["true_relations"] == b["candidates"]["true_relations"] > 0
    assert a["candidates"]["stated_found"] > 0 and b["candidates"]["predicted"] > 0
    table = json.loads((work / "world_paraphrases.json").read_text())
    assert list(table.items()) == [(name, [name]) for name in CATEGORIES]  # ids 1..8 in order
    # only RLIPv2's assignment keeps cells no triplet proposed (the tiny verifier keeps most cells)
    assert a["kept_assigned_by_verifier"] == 0 < b["kept_assigned_by_verifier"]
    kept_a, kept_b = _kept(work / "verified-sgpipe"), _kept(work / "verified-rlipv2")
    relations = results["a_against_b"]["compare_relations"]
    assert (relations["both"], relations["only_a"], relations["only_b"]) == (
        len(kept_a & kept_b), len(kept_a - kept_b), len(kept_b - kept_a))
    assert results["a_against_b"]["claims"]["images"] == 4
    printed = capsys.readouterr().out
    assert "sgpipe candidates" in printed and "rlipv2 candidates" in printed and "claim by claim" in printed


@pytest.mark.parametrize("caption,form", [
    ("a red circle above a blue star", "phrase"),
    ("There are a red circle and a green square under a blue diamond.", "phrase"),
    ("a picture of a star sitting on a ring", "phrase"),
    ("a star partly hidden by a heart", "phrase"),
    ("the green cross is to the left of the black ring", "clause"),
    ("a red circle and a green square are under a blue diamond", "clause"),
    ("a blue star that is inside a yellow ring", "clause"),
    ("a star rests on a square", "clause"),
    ("A circle above a star. A ring is beside a heart.", "clause"),  # one clause makes the caption one
])
def test_caption_forms(caption, form):
    assert _benchmark().caption_form(caption) == form


def test_true_statements_kept_by_caption_form(tmp_path):
    ann = tmp_path / "annotations"
    ann.mkdir()
    captions = [{"id": 10, "image_id": 1, "caption": "a circle above a star"},
                {"id": 11, "image_id": 1, "caption": "the star is below the circle"},
                {"id": 12, "image_id": 1, "caption": "a ring that covers a heart"}]
    statements = [
        {"image_id": 1, "caption_id": 10, "subject_id": 1, "object_id": 2, "predicate": "above", "holds": True},
        {"image_id": 1, "caption_id": 11, "subject_id": 2, "object_id": 1, "predicate": "below", "holds": True},
        {"image_id": 1, "caption_id": 12, "subject_id": 3, "object_id": 4, "predicate": "in front of", "holds": True},
        {"image_id": 1, "caption_id": 12, "subject_id": 4, "object_id": 3, "predicate": "inside", "holds": False},
    ]
    (ann / "captions.json").write_text(json.dumps({"annotations": captions}))
    (ann / "statements.json").write_text(json.dumps(statements))
    kept = [{"image_id": 1, "relations": [
        {"subject_id": 1, "object_id": 2, "predicate": "over", "kept": True},  # states both 10 and (converse) 11
        {"subject_id": 4, "object_id": 3, "predicate": "in", "kept": True},  # the false one: not counted
        {"subject_id": 3, "object_id": 4, "predicate": "cover", "kept": False},
    ]}]
    assert _benchmark().stated_by_form(tmp_path, kept) == {
        "phrase": {"found": 1, "stated": 1, "recall": 1.0},
        "clause": {"found": 1, "stated": 2, "recall": 0.5},
    }
