import json
import os
from importlib import resources

import pytest

from sgpipe import errors
from sgpipe.config import TagConfig
from sgpipe.records import Box, Sample, Triplet
from sgpipe.stages.base import reraise
from sgpipe.stages.tag import TagStage
from tests.helpers.samples import build_sample

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COCO = list(json.loads(resources.files("sgpipe.vocab").joinpath("coco.json").read_text()))


def box(box_id: int, category: str, x: float, y: float, w: float = 20, h: float = 20, crowd: int = 0) -> Box:
    return Box(
        id=box_id,
        category=category,
        category_id=COCO.index(category) + 1 if category in COCO else 0,
        bbox=[x, y, w, h],
        iscrowd=crowd,
    )


def triplet(tid: int, subject: str, predicate: str, object_: str) -> Triplet:
    return Triplet(
        subject=subject,
        predicate=predicate,
        object=object_,
        subject_text=subject,
        predicate_text=predicate,
        object_text=object_,
        id=tid,
    )


def sample(objects: list[Box], triplets: list[Triplet], image_id: int = 1) -> Sample:
    return build_sample(image_id, "coco", width=640, height=480, objects=objects, triplets=triplets)


def run(samples, categories=COCO, **overrides) -> list[Sample]:
    config = TagConfig(**{"embedding_model": "none", **overrides})
    stage = TagStage(config, categories)
    stage.handler = reraise
    stage.setup()
    return stage(samples)


def test_grounds_hyponyms_on_the_right_boxes():
    s = sample(
        [box(11, "person", 100, 100, 40, 80), box(12, "skis", 100, 180, 40, 5), box(13, "dog", 400, 400)],
        [triplet(0, "skier", "stand on", "skis"), triplet(1, "woman", "walk", "dog")],
    )
    run([s])
    got = {(r.subject_id, r.object_id, r.predicate, r.triplet_id) for r in s.relations}
    assert got == {(11, 12, "stand on", 0), (11, 13, "walk", 1)}
    assert [r.id for r in s.relations] == [0, 1]
    assert all(0.0 <= r.tag_score <= 1.0 and r.confidence is None and r.kept is None for r in s.relations)
    assert s.counters["tag_entity_matched_lexicon"] == 4
    assert s.counters["tag_candidates"] == 2


def test_body_parts_never_ground_on_person_and_hot_dog_is_no_dog():
    s = sample(
        [box(1, "person", 0, 0, 50, 100), box(2, "dog", 60, 0), box(3, "chair", 0, 100, 50, 50)],
        [
            triplet(0, "hair", "on", "person"),
            triplet(1, "man", "eat", "hot dog"),
            triplet(2, "man", "sit on", "chair"),
        ],
    )
    run([s])
    assert [(r.subject_id, r.object_id, r.triplet_id) for r in s.relations] == [(1, 3, 2)]
    assert s.counters["tag_entity_unmatched_body_part"] == 1
    assert s.counters["tag_entity_unmatched_no_category_in_image"] == 1  # hot dog: none in the image
    assert s.counters["tag_triplets_without_pair"] == 2


def test_plural_lemmas_and_unknown_words():
    s = sample(
        [box(1, "person", 0, 0), box(2, "horse", 30, 0), box(3, "horse", 60, 0)],
        [triplet(0, "people", "ride", "horse"), triplet(1, "blorp", "near", "horse")],
    )
    run([s])
    assert {(r.subject_id, r.object_id) for r in s.relations} == {(1, 2), (1, 3)}
    assert s.counters["tag_entity_unmatched_unknown_word"] == 1


def test_crowd_and_tiny_boxes_are_excluded_unless_configured():
    objects = [
        box(1, "person", 0, 0),
        box(2, "person", 30, 0, crowd=1),
        box(3, "person", 60, 0, 3, 3),
        box(4, "bench", 0, 30, 60, 20),
    ]
    s = sample(objects, [triplet(0, "man", "sit on", "bench")])
    run([s])
    assert [r.subject_id for r in s.relations] == [1]
    assert s.counters["tag_boxes_excluded"] == 2

    s = sample(objects, [triplet(0, "man", "sit on", "bench")])
    run([s], include_crowd=True, min_box_area=0)
    assert sorted(r.subject_id for r in s.relations) == [1, 2, 3]

    only_crowd = sample(
        [box(2, "person", 30, 0, crowd=1), box(4, "bench", 0, 30)], [triplet(0, "man", "on", "bench")]
    )
    run([only_crowd])
    assert only_crowd.relations == []
    assert only_crowd.counters["tag_entity_unmatched_boxes_excluded"] == 1


def test_pairs_are_of_distinct_boxes():
    s = sample([box(1, "person", 0, 0), box(2, "person", 30, 0)], [triplet(0, "man", "talk to", "woman")])
    run([s])
    assert sorted((r.subject_id, r.object_id) for r in s.relations) == [(1, 2), (2, 1)]
    lone = sample([box(1, "person", 0, 0)], [triplet(0, "man", "talk to", "woman")])
    run([lone])
    assert lone.relations == [] and lone.counters["tag_triplets_without_pair"] == 1


def crowd_of_people(n: int = 40) -> list[Box]:
    return [box(100 + i, "person", 30 * (i % 10), 40 * (i // 10)) for i in range(n)]


def test_forty_people_are_capped_per_triplet_best_first():
    s = sample(
        crowd_of_people(),
        [triplet(0, "man", "stand next to", "man"), triplet(1, "person", "left of", "woman")],
    )
    run([s], max_pairs_per_triplet=8)
    assert len(s.relations) == 16  # not 2 x 1,560
    assert s.counters["tag_pairs_truncated"] == 2 * (40 * 39 - 8)
    for tid in (0, 1):
        scores = [r.tag_score for r in s.relations if r.triplet_id == tid]
        assert len(scores) == 8 and scores == sorted(scores, reverse=True)
    # "left of": the subject is left of the object in every kept pair
    centre = {b.id: b.bbox[0] for b in s.objects}
    assert all(centre[r.subject_id] < centre[r.object_id] for r in s.relations if r.triplet_id == 1)


def test_deterministic_regardless_of_box_order():
    people = crowd_of_people(12)
    a = sample(people, [triplet(0, "man", "near", "man")])
    b = sample(list(reversed(people)), [triplet(0, "man", "near", "man")])
    run([a]), run([b])
    assert [r.to_json() for r in a.relations] == [r.to_json() for r in b.relations]
    # equal scores are broken by box ids
    ties = [(r.tag_score, r.subject_id, r.object_id) for r in a.relations]
    assert ties == sorted(ties, key=lambda t: (-t[0], t[1], t[2]))


def test_same_pair_and_predicate_from_two_triplets_is_one_relation():
    s = sample(
        [box(1, "person", 0, 0), box(2, "horse", 10, 10)],
        [triplet(0, "man", "ride", "horse"), triplet(1, "person", "ride", "pony")],
    )
    run([s])
    assert [(r.subject_id, r.object_id, r.triplet_id) for r in s.relations] == [(1, 2, 0)]
    assert s.counters["tag_pairs_duplicate"] == 1


def test_synthetic_categories_without_a_vocabulary():
    shapes = ["circle", "square", "triangle", "star", "ring", "cross", "diamond", "heart"]
    objects = [
        Box(1, "circle", 1, [0, 0, 20, 20]),
        Box(2, "square", 2, [0, 30, 20, 20]),
        Box(3, "ring", 5, [40, 0, 20, 20]),
    ]
    s = sample(objects, [triplet(0, "circle", "above", "square"), triplet(1, "ring", "right of", "circle")])
    run([s], categories=shapes)
    assert [(r.subject_id, r.object_id) for r in s.relations] == [(1, 2), (3, 1)]


def _detected(box_id, phrase, x, y, w=20, h=20):
    return Box(box_id, phrase, -1, [x, y, w, h], source="detector", score=0.9)


def test_a_phrase_grounds_on_the_boxes_it_found_first():
    # annotated person 1; the detector found "man" 10, "horse" 11 and, for the vocabulary, "dog" 12
    s = sample(
        [box(1, "person", 0, 0), _detected(10, "man", 100, 100), _detected(11, "horse", 200, 100),
         _detected(12, "dog", 300, 300)],
        [triplet(0, "man", "ride", "horse"), triplet(1, "woman", "walk", "dog"),
         triplet(2, "cat", "on", "horse")],
    )
    run([s])
    got = [(r.subject_id, r.object_id, r.triplet_id) for r in s.relations]
    # "man" takes its own box only (not the annotated person); "woman" found nothing of its own and goes
    # through the lexicon: the annotated person; "dog" the box its phrase found; "cat": nothing
    assert got == [(10, 11, 0), (1, 12, 1)]
    assert s.counters["tag_entity_matched_detector"] == 4  # man, horse; dog; horse (of the cat)
    assert s.counters["tag_entity_matched_lexicon"] == 1  # woman
    assert s.counters["tag_triplets_without_pair"] == 1


def test_phrases_of_words_the_lexicon_does_not_know_ground_on_their_own_boxes():
    boxes = [_detected(0, "teapot", 10, 10), _detected(1, "saucer", 10, 40), _detected(2, "teapot", 200, 10)]
    s = sample(boxes, [triplet(0, "teapot", "on", "saucer")])
    run([s], categories=[])
    assert sorted((r.subject_id, r.object_id) for r in s.relations) == [(0, 1), (2, 1)]


def test_stage_contract():
    stage = TagStage(TagConfig(embedding_model="none"), COCO)
    assert stage.name == "tag" and stage.failure_status == errors.FAILED_TAG
    assert stage.matcher is None  # nothing loaded before setup()
    stage.setup()
    failed = sample([box(1, "person", 0, 0)], [triplet(0, "man", "hold", "dog")])
    failed.fail(errors.FAILED_PARSE, "parse failed")
    stage([failed])
    assert failed.relations == [] and failed.status == errors.FAILED_PARSE
    stage.teardown()
    assert stage.matcher is None and stage.describe()["vocabulary"] == "coco"


@pytest.fixture(scope="module")
def minilm_stage():
    stage = TagStage(TagConfig(embedding_model="minilm", embedding_threshold=0.55), COCO)
    stage.handler = reraise
    stage.setup()
    yield stage
    stage.teardown()


def test_embedding_fallback_with_real_minilm(minilm_stage):
    s = sample(
        [box(1, "cat", 0, 0), box(2, "couch", 0, 20, 60, 30), box(3, "person", 100, 0)],
        [
            triplet(0, "kitty cat", "sleep on", "couch"),
            triplet(1, "pooch", "near", "person"),
            triplet(2, "hair", "of", "person"),
            triplet(3, "kitten", "on", "settee"),
        ],
    )
    minilm_stage([s])
    assert minilm_stage.matcher.match("pooch").source == "embedding"
    assert minilm_stage.matcher.match("pooch").categories[0] == "dog"
    assert s.counters["tag_entity_unmatched_no_category_in_image"] == 1  # a dog, but no dog box
    assert s.counters["tag_entity_unmatched_body_part"] == 1  # hair never reaches the embedder
    assert {(r.subject_id, r.object_id, r.triplet_id) for r in s.relations} == {(1, 2, 0), (1, 2, 3)}


def test_embedding_fallback_picks_the_category_present(minilm_stage):
    matcher = minilm_stage.matcher
    assert matcher.match("pooch").categories[0] == "dog"
    assert matcher.match("sports car").source == "lexicon"
    assert matcher.match("water").source == "stuff"
    unknown = matcher.match("qwzx")
    assert unknown.source == "unknown_word" and unknown.categories == ()
    s = sample(
        [box(1, "person", 0, 0), box(2, "dog", 5, 5, 5, 5), box(3, "horse", 30, 0)],
        [triplet(0, "man", "walk", "pooch")],
    )
    minilm_stage([s])
    assert [(r.subject_id, r.object_id) for r in s.relations] == [(1, 2)]
    assert s.counters["tag_entity_matched_embedding"] == 1
