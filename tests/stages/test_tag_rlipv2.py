"""RLIPv2's matching (`tag.matching: rlipv2`): its category tables, its substring paraphrases, its pairs.

The whole flow is proven against RLIPv2's own code in tests/rlipv2_flow; these are the rules one by one,
with expected values written by hand from RLIPv2's helpers."""

from __future__ import annotations

import json

import pytest

from sgpipe import errors
from sgpipe.config import ConfigError, TagConfig, build_config
from sgpipe.records import Box, Triplet
from sgpipe.run.identity import config_hash
from sgpipe.run.preflight import vocabulary_problems
from sgpipe.stages.tag_rlipv2 import RLIPv2TagStage
from sgpipe.vocab.rlipv2 import rlipv2_categories
from tests.helpers.samples import build_sample


def test_category_tables_name_boxes_by_id():
    coco, o365 = rlipv2_categories("coco"), rlipv2_categories("objects365")
    assert (coco.name_of(18), coco.name_of(90), coco.index_of(18), len(coco.names)) == ("dog", "toothbrush", 16, 80)
    assert (o365.name_of(1), o365.name_of(38), o365.index_of(38), len(o365.names)) == ("person", "monitor/tv", 37, 365)
    with pytest.raises(ValueError, match="category id 12 is not in RLIPv2's coco table"):
        coco.name_of(12)  # COCO has no id 12
    with pytest.raises(ValueError, match="RLIPv2 has no 'lvis' category table"):
        rlipv2_categories("lvis")


def test_the_last_matching_name_of_the_image_wins():
    coco = rlipv2_categories("coco")
    assert coco.match("A Chair", ["person", "chair"]) == "chair"  # "hair" is a paraphrase of person
    assert coco.match("A Chair", ["chair", "person"]) == "person"
    assert coco.match("a hot dog", ["hot dog", "dog"]) == "dog"
    assert coco.match("a woman", ["dog"]) is None


def _stage(vocabulary="coco") -> RLIPv2TagStage:
    stage = RLIPv2TagStage(TagConfig(matching="rlipv2", vocabulary=vocabulary))
    stage.setup()
    return stage


def test_every_ordered_pair_of_matching_boxes_once_per_triplet():
    sample = build_sample(1, "coco", objects=[
        Box(11, "person", 1, [0, 0, 10, 10]), Box(12, "horse", 19, [5, 5, 10, 10]),
        Box(13, "person", 1, [0, 0, 50, 50], iscrowd=1), Box(14, "horse", 19, [20, 5, 10, 10]),
    ])
    sample.triplets = [
        Triplet("man", "ride", "horse", "a man", "riding", "a horse", id=0),
        Triplet("woman", "next to", "horse", "a woman", "next to", "a horse", id=1),
        Triplet("person", "ride", "horse", "a person", "riding", "the horse", id=2),  # the same names and text
        Triplet("horse", "in", "field", "a horse", "in", "a field", id=3),  # "a field" names no box
    ]
    _stage()([sample])
    assert [(r.subject_id, r.object_id, r.predicate_text, r.predicate, r.triplet_id) for r in sample.relations] == [
        (11, 12, "riding", "ride", 0), (11, 12, "next to", "next to", 1),
        (11, 14, "riding", "ride", 0), (11, 14, "next to", "next to", 1),
    ]  # the crowd person is in no pair; boxes in file order, subject first
    assert [r.id for r in sample.relations] == [0, 1, 2, 3] and all(r.tag_score == 0.0 for r in sample.relations)
    assert sample.counters["tag_triplets_unmatched"] == 1 and sample.counters["tag_boxes_excluded"] == 1


def test_a_category_outside_rlipv2s_table_fails_the_image_alone():
    good = build_sample(1, "coco", objects=[Box(1, "person", 1, [0, 0, 5, 5]), Box(2, "person", 1, [5, 5, 5, 5])])
    bad = build_sample(2, "coco", objects=[Box(3, "thing", 12, [0, 0, 5, 5])])
    for sample in (good, bad):
        sample.triplets = [Triplet("man", "next to", "man", "a man", "next to", "a man")]
    _stage()([good, bad])
    assert good.ok and len(good.relations) == 2
    assert bad.status == errors.FAILED_TAG and "category id 12" in bad.error_message


def test_objects365_names_by_id_whatever_the_file_calls_them():
    sample = build_sample(1, "o365", objects=[Box(1, "Person", 1, [0, 0, 5, 5]), Box(2, "Moniter/TV", 38, [5, 5, 5, 5])])
    sample.triplets = [Triplet("man", "watch", "tv", "a man", "watching", "a tv")]
    _stage("objects365")([sample])
    assert [(r.subject_id, r.object_id, r.predicate_text) for r in sample.relations] == [(1, 2, "watching")]


@pytest.mark.parametrize("vocabulary", ["auto", "none"])
def test_rlipv2_matching_needs_one_of_its_tables(vocabulary):
    raw = {"source": {"name": "coco", "instances": "i", "images": "x", "captions": "c"},
           "tag": {"matching": "rlipv2", "vocabulary": vocabulary}}
    with pytest.raises(ConfigError, match="RLIPv2 matched against its COCO or Objects365 category table"):
        build_config(raw)


def _table(tmp_path, table, name="shapes.json"):
    path = tmp_path / name
    path.write_text(json.dumps(table))
    return str(path)


def test_a_paraphrase_file_of_ones_own_names_ids_by_its_order(tmp_path):
    path = _table(tmp_path, {"circle": ["circle", "Disc"], "ring": ["ring"], "square": ["square", "box"]})
    table = rlipv2_categories(path)
    assert (table.names, table.ids) == (("circle", "ring", "square"), (1, 2, 3))
    assert table.match("A red DISC", ["circle", "square"]) == "circle"  # paraphrases lower-cased
    assert table.match("a string", ["ring"]) == "ring"  # RLIPv2's substring rule, unchanged
    sample = build_sample(1, "synth", objects=[
        Box(1, "circle", 1, [0, 0, 10, 10]), Box(2, "square", 3, [20, 0, 10, 10]),
        Box(3, "square", 3, [40, 0, 9, 9]),
    ])
    sample.triplets = [Triplet("disc", "left of", "box", "a red disc", "left of", "a blue box")]
    _stage(path)([sample])
    assert [(r.subject_id, r.object_id, r.predicate_text) for r in sample.relations] == [
        (1, 2, "left of"), (1, 3, "left of")]


def test_a_box_the_file_names_otherwise_fails_its_image_alone(tmp_path):
    path = _table(tmp_path, {"circle": ["circle"], "square": ["square"]})
    good = build_sample(1, "synth", objects=[Box(1, "circle", 1, [0, 0, 5, 5]), Box(2, "Square", 2, [9, 0, 5, 5])])
    bad = build_sample(2, "synth", objects=[Box(3, "square", 1, [0, 0, 5, 5]), Box(4, "circle", 2, [9, 0, 5, 5])])
    for sample in (good, bad):
        sample.triplets = [Triplet("circle", "left of", "square", "a circle", "left of", "a square")]
    _stage(path)([good, bad])
    assert good.ok and [(r.subject_id, r.object_id) for r in good.relations] == [(1, 2)]
    assert bad.status == errors.FAILED_TAG
    assert "names category id 1 'circle', the dataset calls it 'square'" in bad.error_message


def test_paraphrase_files_are_checked_with_the_recipe_and_hashed_by_their_bytes(tmp_path):
    raw = {"source": {"name": "synth", "instances": "i", "images": "x", "captions": "c"},
           "tag": {"matching": "rlipv2"}}
    one = _table(tmp_path, {"circle": ["circle"]})
    same = _table(tmp_path, {"circle": ["circle"]}, "copy.json")
    other = _table(tmp_path, {"circle": ["circle", "disc"]}, "other.json")
    hashes = [config_hash(build_config(raw, [f"tag.vocabulary={path}"])) for path in (one, same, other)]
    assert hashes[0] == hashes[1] != hashes[2]
    with pytest.raises(ConfigError, match="is a paraphrase file, the table of tag.matching rlipv2"):
        build_config(raw, ["tag.matching=lexicon", f"tag.vocabulary={one}"])
    broken = _table(tmp_path, {"circle": "circle"}, "broken.json")
    # what the files hold is the preflight's question (the config reads nothing)
    broken_problems = vocabulary_problems(build_config(raw, [f"tag.vocabulary={broken}"]))
    assert any("'circle' needs a list of non-empty paraphrases" in p for p in broken_problems)
    missing = vocabulary_problems(build_config(raw, [f"tag.vocabulary={tmp_path / 'missing.json'}"]))
    assert any("not a readable JSON paraphrase file" in p for p in missing)
