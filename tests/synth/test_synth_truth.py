import json

import pytest

from sgpipe.synth.captions import PHRASES, VERBS
from sgpipe.synth.truth import (
    canonical_predicate,
    claims_agreement,
    evaluate_relations,
    load_truth,
)
from sgpipe.synth.world import generate_world


@pytest.mark.parametrize(
    "text,expected",
    [
        ("sit on", "on"),
        ("rest on", "on"),
        ("on top of", "on"),
        ("sitting on top of", "on"),
        ("be on", "on"),
        ("in", "inside"),
        ("be inside", "inside"),
        ("within", "inside"),
        ("under", "below"),
        ("beneath", "below"),
        ("is below", "below"),
        ("over", "above"),
        ("to the left of", "left of"),
        ("to left of", "left of"),
        ("left of", "left of"),
        ("to right of", "right of"),
        ("beside", "next to"),
        ("next to", "next to"),
        ("in front of", "in front of"),
        ("in front", "in front of"),
        ("cover", "in front of"),
        ("partly covering", "in front of"),
        ("hide", "in front of"),
        ("be cover by", "behind"),
        ("covered by", "behind"),
        ("is partly hidden by", "behind"),
        ("behind", "behind"),
        ("ride", None),
        ("have", None),
        ("of", None),
        ("", None),
        ("to", None),
    ],
)
def test_canonical_predicate(text, expected):
    assert canonical_predicate(text) == expected


def test_every_caption_phrasing_maps_back():
    for predicate, phrases in PHRASES.items():
        for phrase in phrases:
            assert canonical_predicate(phrase) == predicate
            assert canonical_predicate("is " + phrase) == predicate
    for predicate, forms in VERBS.items():
        for participle, finite in forms:
            assert canonical_predicate(participle) == predicate
            assert canonical_predicate(finite) == predicate


def _write_world(tmp_path):
    ann = tmp_path / "annotations"
    ann.mkdir()
    relations = [
        {
            "image_id": 1,
            "relations": [
                {"subject_id": 11, "object_id": 12, "predicate": "above"},
                {"subject_id": 12, "object_id": 11, "predicate": "below"},
                {"subject_id": 13, "object_id": 12, "predicate": "in front of"},
                {"subject_id": 12, "object_id": 13, "predicate": "behind"},
            ],
        },
        {
            "image_id": 2,
            "relations": [
                {"subject_id": 21, "object_id": 22, "predicate": "inside"},
            ],
        },
    ]

    def statement(image_id, caption_id, s, o, predicate):
        return {
            "image_id": image_id,
            "caption_id": caption_id,
            "subject_id": s,
            "object_id": o,
            "predicate": predicate,
        }

    hallucinations = [statement(1, 10, 13, 12, "behind")]
    statements = [
        {**statement(1, 10, 13, 12, "behind"), "holds": False},
        {**statement(1, 11, 11, 12, "above"), "holds": True},
        {**statement(2, 20, 21, 22, "inside"), "holds": True},
    ]
    (ann / "relations.json").write_text(json.dumps(relations))
    (ann / "hallucinations.json").write_text(json.dumps(hallucinations))
    (ann / "statements.json").write_text(json.dumps(statements))
    return load_truth(tmp_path)


def _rel(s, o, predicate, kept):
    return {
        "id": 0,
        "subject_id": s,
        "object_id": o,
        "predicate": predicate,
        "triplet_id": 0,
        "tag_score": 1.0,
        "confidence": 0.5,
        "kept": kept,
    }


RECORDS = [
    {
        "image_id": 1,
        "relations": [
            _rel(11, 12, "over", True),  # true (above)
            _rel(11, 12, "be above", True),  # same relation again: counted once
            _rel(13, 12, "be cover by", False),  # the hallucination, not kept
            _rel(12, 13, "cover", False),  # its converse wording, not kept
            _rel(11, 13, "ride", True),  # not a world predicate
        ],
    },
    {"image_id": 2, "relations": [_rel(22, 21, "in", True)]},  # containment reversed: false
    {"image_id": 99, "relations": [_rel(1, 2, "on", True)]},  # not in the world
]


def test_evaluate_all_candidates(tmp_path):
    truth = _write_world(tmp_path)
    assert truth.hallucinations == {1: {(13, 12, "behind")}}
    assert truth.stated == {1: {(11, 12, "above")}, 2: {(21, 22, "inside")}}
    result = evaluate_relations(RECORDS, truth, kept_only=False)
    assert result["images"] == 2 and result["unknown_images"] == 1
    assert result["unmapped_predicates"] == 1
    assert (result["true_positives"], result["false_positives"], result["true_relations"]) == (1, 3, 5)
    assert result["precision"] == 0.25
    assert result["recall"] == 0.2
    assert result["stated_relations"] == 2 and result["recall_stated"] == 0.5 and result["stated_found"] == 1
    assert result["hallucinations_predicted"] == 1.0 and result["hallucinations_found"] == 1
    assert result["per_predicate"]["above"] == {"tp": 1, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0}
    assert result["per_predicate"]["behind"]["fp"] == 1 and result["per_predicate"]["behind"]["fn"] == 1


def test_evaluate_kept_only(tmp_path):
    truth = _write_world(tmp_path)
    result = evaluate_relations(RECORDS, truth, kept_only=True)
    assert (result["true_positives"], result["false_positives"]) == (1, 1)
    assert result["precision"] == 0.5
    assert result["recall"] == 0.2
    assert result["hallucinations_predicted"] == 0.0
    converse = [{"image_id": 1, "relations": [_rel(12, 13, "partly cover", True)]}]
    assert evaluate_relations(converse, truth, kept_only=True)["hallucinations_predicted"] == 1.0
    unverified = [{"image_id": 1, "relations": [_rel(11, 12, "above", None)]}]
    assert evaluate_relations(unverified, truth, kept_only=True)["precision"] is None
    assert evaluate_relations(unverified, truth, kept_only=False)["precision"] == 1.0


def test_truth_of_a_generated_world_scores_perfectly(tmp_path):
    generate_world(tmp_path, n_images=5, seed=9)
    truth = load_truth(tmp_path)
    assert sorted(truth.relations) == [1, 2, 3, 4, 5]
    perfect = [
        {"image_id": i, "relations": [_rel(s, o, p, True) for s, o, p in sorted(rels)]}
        for i, rels in truth.relations.items()
    ]
    result = evaluate_relations(perfect, truth, kept_only=True)
    assert result["precision"] == result["recall"] == result["recall_stated"] == 1.0
    assert result["hallucinations_predicted"] == 0.0
    lies = [
        {"image_id": i, "relations": [_rel(s, o, p, True) for s, o, p in sorted(rels)]}
        for i, rels in truth.hallucinations.items()
    ]
    assert evaluate_relations(lies, truth, kept_only=True)["precision"] == 0.0


def _record(image_id, *relations):
    return {"image_id": image_id, "relations": [
        {"subject_id": s, "object_id": o, "predicate": p, "kept": kept} for s, o, p, kept in relations]}


def test_two_runs_agree_claim_by_claim_whatever_the_wording():
    a = [
        _record(1, (11, 12, "sit on", True), (12, 11, "be cover by", True), (13, 11, "ride", True),
                (11, 13, "above", False)),
        _record(2, (21, 22, "above", True)),  # an image B lacks: counted, not compared
    ]
    b = [
        _record(1, (11, 12, "on top", True), (11, 12, "cover", True), (13, 11, "next to", True)),
        _record(3),
    ]
    # image 1: "sit on" = "on top" (on); "12 covered by 11" = "11 covers 12" (in front of); "ride" maps to
    # nothing; B's "13 next to 11" is A's nothing; A's "above" is not kept
    assert claims_agreement(a, b) == {"images": 1, "images_only_a": 1, "images_only_b": 1,
                                      "both": 2, "only_a": 0, "only_b": 1, "jaccard": 0.6667}
    every = claims_agreement(a, b, kept_only=False)  # now A's "11 above 13" counts too
    assert (every["both"], every["only_a"], every["only_b"], every["jaccard"]) == (2, 1, 1, 0.5)
