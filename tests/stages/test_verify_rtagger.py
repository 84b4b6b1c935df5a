"""The verify stage with an R-Tagger folder: candidate relations scored by RLIPv2's tagger, and RLIPv2's
assignment (every candidate pair x every predicate of the image) as an option."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sgpipe.config import VerifyConfig, build_config
from sgpipe.errors import ConfigError
from sgpipe.models.device import one_thread
from sgpipe.models.rtagger import RTagger
from sgpipe.models.rtagger.reference import cached_fixture_tagger
from sgpipe.records import Box, Relation, Sample
from sgpipe.stages.base import reraise
from sgpipe.stages.verify import ASSIGNED_BY_VERIFIER, VerifyStage

FIXTURE = Path(__file__).parents[1] / "models" / "rtagger_fixtures" / "reference_scores.json"
# (subject box, object box, lemma, surface text): the R-Tagger reads the surface text
RELATIONS = [(1, 2, "ride", "riding"), (2, 1, "under", "under"), (1, 2, "next to", "next to"),
             (3, 1, "hold", "holding"), (1, 3, "ride", "riding")]
BOXES_XYWH = [[5, 5, 50, 60], [40, 20, 70, 65], [0, 50, 20, 20]]  # boxes 1, 2, 3
COCO_NAMES = [  # COCO's 80 categories in COCO's order, the category texts RLIPv2's COCO run read
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():  # the port's small forwards run faster on one thread; the reference was made on one
    with one_thread():
        yield


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("rtagger") / "model"
    cached_fixture_tagger(str(FIXTURE))[1].save_pretrained(path)
    return path


def _sample(image_id: int, categories=("person", "horse", "cup")) -> Sample:
    rng = np.random.default_rng(image_id)
    sample = Sample(key=f"t-{image_id:012d}", dataset="t", image_id=image_id, file_name="x.jpg", width=120, height=90,
                    objects=[Box(i + 1, name, i + 1, box) for i, (name, box) in enumerate(zip(categories, BOXES_XYWH))])
    sample.relations = [Relation(i, s, o, p, 0, 0.5, predicate_text=t) for i, (s, o, p, t) in enumerate(RELATIONS)]
    sample.image = Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))
    return sample


def _stage(folder, **kw) -> VerifyStage:
    stage = VerifyStage(VerifyConfig(enabled=True, checkpoint=str(folder), **kw), device="cpu")
    stage.handler = reraise
    stage.setup()
    return stage


def test_candidates_get_the_taggers_scores(folder):
    """Expected scores from the R-Tagger called by hand: boxes, labels, pairs and texts written here. (The
    order of the category texts moves no score, attention over texts being order-free; which texts there
    are, and which one a box's label names, do.)"""
    samples = [_sample(1), _sample(2, ("dog", "bicycle", "giraffe thing"))]  # COCO names / an own list
    tagger = RTagger.from_pretrained(folder, device="cpu")
    # box 1 -> 0, 2 -> 1, 3 -> 2; the distinct pairs in the relations' order (pairs of one group interact)
    pairs = [(0, 1), (1, 0), (2, 0), (0, 2)]
    texts = ["riding", "under", "next to", "holding"]
    cell = [(0, 0), (1, 1), (0, 2), (2, 3), (3, 0)]  # (pair, text) of each relation above
    first = tagger.score(samples[0].image, BOXES_XYWH, [COCO_NAMES.index(n) for n in ("person", "horse", "cup")],
                         pairs, texts, COCO_NAMES)  # every box a COCO category: COCO's 80 names
    second = tagger.score(samples[1].image, BOXES_XYWH, [0, 1, 2], pairs, texts, ["dog", "bicycle", "giraffe thing"])
    expected = [[scores[p, t] for p, t in cell] for scores in (first, second)]
    stage = _stage(folder, store_threshold=0.0, keep_threshold=0.3)
    stage(samples)
    assert stage.describe()["assignment"] == "candidates" and stage.describe()["relation_text"] == "surface"
    for sample, want in zip(samples, expected):
        assert sample.ok and len(sample.relations) == len(RELATIONS)
        got = [r.confidence for r in sample.relations]
        assert np.abs(np.asarray(got) - np.asarray(want)).max() < 2e-5  # batched with the other image
        assert [r.kept for r in sample.relations] == [c >= 0.3 for c in got]
        assert all(r.triplet_id == 0 for r in sample.relations)
    # the scores tell the cells apart: a swapped pair or another text would not pass
    assert min(abs(first[0, 0] - first[1, 0]), abs(first[0, 0] - first[0, 2])) > 1e-3


def test_all_pairs_adds_the_predicates_grounding_did_not_propose(folder):
    sample = _sample(3)
    _stage(folder, store_threshold=0.0, keep_threshold=0.5, assignment="all_pairs")([sample])
    pairs = {(r.subject_id, r.object_id) for r in sample.relations}
    forms = {(p, t) for _, _, p, t in RELATIONS}
    assert len(sample.relations) == 4 * 4  # 4 distinct candidate pairs x 4 distinct relation texts
    assert len(pairs) == 4
    added = [r for r in sample.relations if r.triplet_id == ASSIGNED_BY_VERIFIER]
    assert len(added) == 16 - len(RELATIONS) and sample.counters["verify_assigned"] == len(added)
    # an added relation carries both forms of its text, and no tag score
    assert {(r.predicate, r.predicate_text) for r in added} <= forms and all(r.tag_score == 0.0 for r in added)
    assert len({r.id for r in sample.relations}) == 16
    assert len({(r.subject_id, r.object_id, r.predicate) for r in sample.relations}) == 16
    strict = _sample(3)
    _stage(folder, store_threshold=0.3, keep_threshold=0.5, assignment="all_pairs")([strict])
    assert all(r.confidence >= 0.3 for r in strict.relations)
    assert len(strict.relations) == sum(1 for r in sample.relations if r.confidence >= 0.3)


def test_assignment_is_validated():
    with pytest.raises(ConfigError, match="verify.assignment"):
        build_config({"source": {"name": "coco"}, "verify": {"assignment": "everything"}})


def test_reverify_accepts_an_rtagger_folder(folder, tmp_path):
    import json
    import random

    from sgpipe.run.reverify import reverify
    from sgpipe.shards import iter_shard_samples
    from sgpipe.output.finalize import finalize_outputs
    from sgpipe.output.writer import write_shard
    from tests.helpers.train_shards import squares_sample

    rng = random.Random(0)
    write_shard(tmp_path / "old", 0, [squares_sample(i, rng) for i in range(2)], {"sgpipe": "0", "models": {}})
    finalize_outputs(tmp_path / "old", "synth")
    (tmp_path / "old" / "run.json").write_text(json.dumps({"config": {"verify": {}}, "models": {}}))
    summary = reverify(tmp_path / "old", folder, tmp_path / "new",
                       ["verify.store_threshold=0.0", "verify.keep_threshold=0.5", "verify.assignment=all_pairs"])
    assert "re-scored 1 shards" in summary
    new = list(iter_shard_samples(str(tmp_path / "new")))
    assert new and all(r["confidence"] is not None for s in new for r in s.record["relations"])
    assert new[0].record["provenance"]["models"]["verify"]["assignment"] == "all_pairs"


def test_with_detected_boxes_the_taggers_category_texts_are_the_images_phrases():
    from sgpipe.stages.verify import rtagger_categories

    coco_only = _sample(1, ("person", "horse", "cup"))
    assert len(rtagger_categories(coco_only)) == 80  # RLIPv2's COCO run: COCO's 80 names
    detected = _sample(2, ("person", "horse", "cup"))
    detected.objects.append(Box(4, "man", -1, [1, 1, 5, 5], source="detector", score=0.5))
    assert rtagger_categories(detected) == ["person", "horse", "cup", "man"]
    phrases_only = _sample(3, ("person", "horse", "cup"))
    for b in phrases_only.objects:
        b.source = "detector"
    assert rtagger_categories(phrases_only) == ["person", "horse", "cup"]  # COCO words, found by phrases
