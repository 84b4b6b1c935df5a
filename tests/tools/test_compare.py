"""`sgpipe compare`: hand-built corpora whose counts and correlations are computed by hand here.

Side A is an sgpipe corpus (coco, three images); side B a label JSON as RLIPv2's tagger writes it:
running object ids (one of which collides with an unrelated annotation id of A), boxes written back
through float32, a repeated relation, an extra box, a box moved by 0.6 px, an image A does not have.
"""

import json
import math

import pytest
from typer.testing import CliRunner

from sgpipe.cli import app
from sgpipe.errors import SgpipeError
from sgpipe.output.finalize import finalize_outputs
from sgpipe.output.writer import write_shard
from sgpipe.records import Box, Relation, Triplet
from sgpipe.tools import rlipv2_format as rf
from sgpipe.tools.compare import compare_corpora
from sgpipe.tools.export import export
from sgpipe.tools.report import build_report
from tests.helpers.samples import build_sample
from tests.helpers.schemas import validate
from tests.helpers.tiny_shards import PROVENANCE

runner = CliRunner()
def _sample(image_id, boxes, relations, surface=None):
    """boxes: (id, category, bbox); relations: (subject id, object id, lemma, confidence, kept). The
    triplets' surface text is the lemma itself unless `surface` maps it: the hand counts then hold
    whichever form the export writes."""
    sample = build_sample(image_id, "coco", width=200, height=150)
    sample.objects = [Box(i, category, 1, list(bbox)) for i, category, bbox in boxes]
    for n, (subject, obj, lemma, confidence, kept) in enumerate(relations):
        text = (surface or {}).get(lemma, lemma)
        sample.triplets.append(Triplet("s", lemma, "o", "s", text, "o", n, 1, [0]))
        sample.relations.append(Relation(n, subject, obj, lemma, n, 1.0, confidence, kept))
    return sample


def write_corpus(out, samples):
    write_shard(out, 0, samples, PROVENANCE, write_images=False)
    finalize_outputs(out, "coco")
    return out


@pytest.fixture
def corpus_a(tmp_path):
    return write_corpus(
        tmp_path / "a",
        [
            _sample(
                1,
                [
                    (11, "person", (10, 10, 40, 80)),
                    (12, "horse", (40, 30, 100, 90)),
                    (13, "hat", (15, 5, 12, 10)),
                ],
                [
                    (11, 12, "ride", 0.9, True),
                    (11, 13, "wear", 0.6, True),
                    (12, 11, "near", 0.3, True),
                    (13, 12, "on", 0.1, False),  # stored, not kept
                ],
            ),
            _sample(
                2,
                [(21, "dog", (5, 5, 20, 20)), (22, "frisbee", (30, 5, 10, 10))],
                [(21, 22, "catch", 0.8, True)],
            ),
            _sample(
                3, [(31, "cat", (0, 0, 10, 10)), (32, "mat", (0, 10, 30, 5))], [(31, 32, "on", 0.7, True)]
            ),
        ],
    )


def _f32_roundtrip(x, y, w, h, width=200, height=150):
    """A box as RLIPv2 writes it back: from normalised float32 cx, cy, w, h times the image size."""
    import numpy as np

    cx, cy = np.float32((x + w / 2) / width), np.float32((y + h / 2) / height)
    nw, nh = np.float32(w / width), np.float32(h / height)
    return [
        float((cx - nw / 2) * width),
        float((cy - nh / 2) * height),
        float(nw * width),
        float(nh * height),
    ]


def _obj(object_id, name, bbox):
    x, y, w, h = bbox
    return {"object_id": object_id, "x": x, "y": y, "w": w, "h": h, "names": name}


def _rel(subject, obj, predicate, confidence):
    return {
        "relationship_id": 0,
        "predicate": predicate,
        "subject_id": subject,
        "object_id": obj,
        "confidence": confidence,
    }


def _item(image_id, objects, relationships):
    return {
        "image_id": image_id,
        "dataset": "coco2017",
        "data_split": "train2017",
        "objects": objects,
        "relationships": relationships,
    }


@pytest.fixture
def labels_b(tmp_path):
    items = [
        _item(
            1,
            [
                _obj(1000, "person", _f32_roundtrip(10, 10, 40, 80)),
                _obj(1001, "horse", _f32_roundtrip(40, 30, 100, 90)),
                _obj(1002, "hat", (15.6, 5, 12, 10)),  # 0.6 px off A's hat: another box
                _obj(1003, "dog", (120, 100, 20, 20)),  # a box A does not have
            ],
            [
                _rel(1000, 1001, "ride", 0.7),
                _rel(1000, 1001, "ride", 0.5),  # repeated: the higher confidence stays
                _rel(1000, 1002, "wear", 0.65),
                _rel(1001, 1000, "near", 0.2),
                _rel(1000, 1003, "pet", 0.4),
                _rel(1000, 1001, "on", 0.03),  # below any --min-confidence used here
            ],
        ),
        # ids 22 and 21 name the dog and the frisbee the other way round from A: ids are not trusted alone
        _item(
            2,
            [_obj(22, "dog", (5, 5, 20, 20)), _obj(21, "frisbee", (30, 5, 10, 10))],
            [_rel(22, 21, "catch", 0.85)],
        ),
        _item(
            4,
            [_obj(1, "bird", (0, 0, 5, 5)), _obj(2, "tree", (0, 0, 50, 90))],
            [_rel(1, 2, "in", 0.5), _rel(1, 9999, "on", 0.9)],
        ),
    ]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(items))
    return path


def _counts(result):
    r = result["relations"]
    return r["both"], r["only_a"], r["only_b"]


def test_kept_sets_counted_matched_and_correlated_by_hand(corpus_a, labels_b):
    result = compare_corpora(str(corpus_a), str(labels_b))
    validate(result, "compare")
    assert result["images"] == {
        "both": 2,
        "only_a": 1,
        "only_b": 1,
        "relations_in_only_a": 1,
        "relations_in_only_b": 1,
    }
    # image 1: person and horse by coordinates (float32 noise ~1e-5 px), A's hat and B's moved hat and
    # dog alone; image 2: both boxes by coordinates, none by their colliding ids
    assert result["boxes"] == {"by_id": 0, "by_coordinates": 4, "only_a": 1, "only_b": 2}
    # both: ride, near (image 1), catch (image 2); only A: wear on A's hat; only B: wear on B's hat, pet, on
    relations = result["relations"]
    assert _counts(result) == (3, 1, 3) and (relations["a"], relations["b"]) == (4, 6)
    assert (relations["duplicates_a"], relations["duplicates_b"]) == (0, 1)
    assert relations["jaccard"] == pytest.approx(3 / 7)
    assert relations["precision"] == pytest.approx(3 / 6) and relations["recall"] == pytest.approx(3 / 4)
    assert relations["f1"] == pytest.approx(6 / 10)
    # shared confidences (A, B): (0.9, 0.7), (0.3, 0.2), (0.8, 0.85); in hundredths, deviations from the
    # means 200/3 and 175/3 are (70, -110, 40)/3 and (35, -115, 80)/3
    confidence = result["confidence"]
    assert confidence["pairs"] == 3
    assert confidence["pearson"] == pytest.approx(18300 / math.sqrt(18600 * 20850))
    assert confidence["spearman"] == pytest.approx(1 - 6 * 2 / (3 * (9 - 1)))  # ranks (3,1,2) vs (2,1,3)
    assert confidence["max_abs_diff"] == pytest.approx(0.2)
    assert confidence["mean_abs_diff"] == pytest.approx(0.35 / 3)
    assert (confidence["mean_a"], confidence["mean_b"]) == (pytest.approx(2.0 / 3), pytest.approx(1.75 / 3))
    cells = {
        (i, j): n for i, row in enumerate(confidence["histogram"]["counts"]) for j, n in enumerate(row) if n
    }
    assert cells == {(9, 7): 1, (3, 2): 1, (8, 8): 1}
    texts = {p["text"]: p for p in result["predicates"]}
    assert [p["text"] for p in result["predicates"]] == ["catch", "near", "ride", "wear", "on", "pet"]
    assert (texts["ride"]["both"], texts["ride"]["mean_abs_diff"]) == (1, pytest.approx(0.2))
    assert (texts["wear"]["only_a"], texts["wear"]["only_b"], texts["wear"]["jaccard"]) == (1, 1, 0.0)
    assert (texts["on"]["a"], texts["on"]["b"], texts["on"]["recall"]) == (0, 1, None)
    assert result["a"] == {
        "path": str(corpus_a),
        "kind": "sgpipe",
        "relation_text": rf.RELATION_TEXT_FORM,
        "selection": "kept, or unverified (as `sgpipe export` selects)",
        "images": 3,
        "relations": 5,
        "dropped": 0,
        "repeated_images": 0,
    }
    assert (result["b"]["kind"], result["b"]["relation_text"]) == ("rlipv2_json", "file")
    assert (result["b"]["images"], result["b"]["relations"], result["b"]["dropped"]) == (3, 8, 1)
    first = result["examples"][0]  # image 1 differs most: 1 only in A, 3 only in B
    assert (first["key"], first["both"], first["only_a"], first["only_b"]) == ("coco-000000000001", 2, 1, 3)
    assert [r["in"] for r in first["relations"]] == ["a", "b", "b", "b", "both", "both"]
    assert first["relations"][1]["object"] == {"id": 1002, "category": "hat", "bbox": [15.6, 5, 12, 10]}


@pytest.mark.parametrize(
    "settings, counts, agreement",
    [
        # A's stored hat -on-> horse (0.1) joins; B's on (0.03) leaves
        ({"min_confidence": 0.05}, (3, 2, 2), (3 / 7, 3 / 5, 3 / 5)),
        # B's near (0.2) and on leave; A's near (0.3) stays
        ({"min_confidence": 0.25}, (2, 2, 2), (2 / 6, 2 / 4, 2 / 4)),
        # the one-sided images' relations count: A's cat -on-> mat, B's bird -in-> tree
        ({"all_images": True}, (3, 2, 4), (3 / 9, 3 / 7, 3 / 5)),
        # B's hat 0.6 px off now is A's hat: wear is shared
        ({"box_tolerance": 0.7}, (4, 0, 2), (4 / 6, 4 / 6, 4 / 4)),
    ],
)
def test_options_change_the_sets_as_computed_by_hand(corpus_a, labels_b, settings, counts, agreement):
    result = compare_corpora(str(corpus_a), str(labels_b), **settings)
    validate(result, "compare")
    assert _counts(result) == counts
    relations = result["relations"]
    assert (relations["jaccard"], relations["precision"], relations["recall"]) == pytest.approx(agreement)


def test_two_shared_relations_ranked_the_other_way_correlate_at_minus_one(corpus_a, labels_b):
    confidence = compare_corpora(str(corpus_a), str(labels_b), min_confidence=0.25)["confidence"]
    assert confidence["pairs"] == 2  # ride (0.9, 0.7) and catch (0.8, 0.85)
    assert confidence["pearson"] == pytest.approx(-1.0) and confidence["spearman"] == pytest.approx(-1.0)


def test_a_corpus_equals_its_rlipv2_export_and_duplicate_boxes_are_told_apart_by_id(tmp_path):
    same = (50, 50, 20, 20)
    corpus = write_corpus(
        tmp_path / "a",
        [
            _sample(
                7,
                [(5, "cup", same), (6, "cup", same), (8, "hand", (40, 40, 30, 30))],
                [(8, 5, "hold", 0.9, True), (8, 6, "near", 0.4, True)],
            )
        ],
    )
    export(corpus, "rlipv2", tmp_path / "x.json", min_confidence=0.05)
    result = compare_corpora(str(corpus), str(tmp_path / "x.json"), min_confidence=0.05)
    assert result["boxes"] == {"by_id": 3, "by_coordinates": 0, "only_a": 0, "only_b": 0}
    assert _counts(result) == (2, 0, 0) and result["confidence"]["max_abs_diff"] == 0.0
    # the same labels with the two identical cups listed the other way round: ids keep them apart
    items = json.loads((tmp_path / "x.json").read_text())
    items[0]["objects"] = items[0]["objects"][1::-1] + items[0]["objects"][2:]
    (tmp_path / "swapped.json").write_text(json.dumps(items))
    assert _counts(compare_corpora(str(corpus), str(tmp_path / "swapped.json"))) == (2, 0, 0)


def test_relation_text_is_read_through_the_exports_function(tmp_path, monkeypatch):
    corpus = write_corpus(
        tmp_path / "a",
        [
            _sample(
                1,
                [(1, "man", (0, 0, 10, 10)), (2, "horse", (10, 0, 20, 20))],
                [(1, 2, "ride", 0.9, True)],
                surface={"ride": "riding"},
            )
        ],
    )

    def surface(record, relation):  # the surface text, as RLIPv2 writes relations
        return next(t["predicate_text"] for t in record["triplets"] if t["id"] == relation["triplet_id"])

    monkeypatch.setattr(rf, "relation_text", surface)
    monkeypatch.setattr(rf, "RELATION_TEXT_FORM", "surface")
    (tmp_path / "rlipv2.json").write_text(
        json.dumps(
            [
                _item(
                    1,
                    [_obj(7, "man", (0, 0, 10, 10)), _obj(8, "horse", (10, 0, 20, 20))],
                    [_rel(7, 8, "riding", 0.8)],
                )
            ]
        )
    )
    result = compare_corpora(str(corpus), str(tmp_path / "rlipv2.json"))
    assert _counts(result) == (1, 0, 0) and result["a"]["relation_text"] == "surface"
    export(corpus, "rlipv2", tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text())[0]["relationships"][0]["predicate"] == "riding"
    assert _counts(compare_corpora(str(corpus), str(tmp_path / "x.json"))) == (1, 0, 0)


def test_the_command_prints_a_summary_writes_the_json_and_the_report_shows_it(corpus_a, labels_b, tmp_path):
    result = runner.invoke(app, ["compare", str(corpus_a), str(labels_b), "--out", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    assert "relations: 3 in both, 1 only in A, 3 only in B" in result.output
    assert "Jaccard 0.429, precision of B against A 0.500, recall 0.750, F1 0.600" in result.output
    assert (
        "images: 2 in both, 1 only in A (1 relations), 1 only in B (1): their relations left out"
        in result.output
    )
    written = json.loads((tmp_path / "c.json").read_text())
    validate(written, "compare")
    page = build_report(corpus_a, n_samples=0, comparison=written)
    assert '<section class="comparison" id="comparison">' in page
    assert "<h4>coco-000000000001: 2 in both, 1 only in A, 3 only in B</h4>" in page
    assert f'<td class="number">{18300 / math.sqrt(18600 * 20850):.3f}</td>' in page  # Pearson
    result = runner.invoke(
        app,
        [
            "report",
            str(corpus_a),
            "--output",
            str(tmp_path / "r.html"),
            "--comparison",
            str(tmp_path / "c.json"),
        ],
    )
    assert result.exit_code == 0 and 'id="comparison"' in (tmp_path / "r.html").read_text()
    assert 'id="comparison"' not in build_report(corpus_a, n_samples=0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing-folder", "b.json"], "shard file(s) not found: missing-folder"),
        (["a", "missing.json"], "missing.json does not exist"),
        (["a", "not-a-list.json"], "not RLIPv2's format: a JSON list"),
        (["a", "b.json", "--min-confidence", "1.5"], "--min-confidence must be within [0, 1]"),
        (["a", "b.json", "--box-tolerance", "-1"], "--box-tolerance must be >= 0"),
    ],
)
def test_bad_inputs_are_one_clear_error(corpus_a, labels_b, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-list.json").write_text('{"images": []}')
    result = runner.invoke(app, ["compare", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_report_refuses_a_file_that_is_not_a_comparison(corpus_a, tmp_path):
    (tmp_path / "x.json").write_text('{"schema_version": 7}')
    with pytest.raises(SgpipeError, match="not a `sgpipe compare --out` file"):
        from sgpipe.tools.report import write_report

        write_report(corpus_a, tmp_path / "r.html", comparison=tmp_path / "x.json")


def test_spearman_gives_tied_values_their_mean_rank():
    from sgpipe.tools.compare_stats import ranks, spearman

    x, y = [0.1, 0.2, 0.2, 0.4], [0.3, 0.1, 0.2, 0.4]
    assert list(ranks(x)) == [1.0, 2.5, 2.5, 4.0]
    # rank deviations from 2.5: (-1.5, 0, 0, 1.5) and (0.5, -1.5, -0.5, 1.5)
    assert spearman(x, y) == pytest.approx(1.5 / math.sqrt(4.5 * 5.0))
    assert spearman([0.5], [0.5]) is None and spearman([0.2, 0.2], [0.1, 0.3]) is None  # undefined
