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
from sgpipe.stages.verify import ASSIGNED_BY_VERIFIER, VerifyStage, candidate_example, rtagger_input

FIXTURE = Path(__file__).parents[1] / "models" / "rtagger_fixtures" / "reference_scores.json"
RELATIONS = [(1, 2, "ride"), (2, 1, "under"), (1, 2, "next to"), (3, 1, "hold"), (1, 3, "ride")]


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
                    objects=[Box(1, categories[0], 1, [5, 5, 50, 60]), Box(2, categories[1], 2, [40, 20, 70, 65]),
                             Box(3, categories[2], 3, [0, 50, 20, 20])])
    sample.relations = [Relation(i, s, o, p, 0, 0.5) for i, (s, o, p) in enumerate(RELATIONS)]
    sample.image = Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))
    return sample


def _stage(folder, **kw) -> VerifyStage:
    stage = VerifyStage(VerifyConfig(enabled=True, checkpoint=str(folder), **kw), device="cpu")
    stage.handler = reraise
    stage.setup()
    return stage


def test_candidates_get_the_taggers_scores(folder):
    samples = [_sample(1), _sample(2, ("dog", "bicycle", "giraffe thing"))]  # COCO names / an own list
    expected = []
    tagger = RTagger.from_pretrained(folder, device="cpu")
    for sample in samples:
        example, index = candidate_example(sample, object())
        scores = tagger.score_batch([rtagger_input(sample, example)])[0]
        pair = {p: i for i, p in enumerate(example.pairs)}
        text = {t: j for j, t in enumerate(example.predicates)}
        expected.append([scores[pair[(index[r.subject_id], index[r.object_id])], text[r.predicate]] for r in sample.relations])
    assert len(rtagger_input(samples[0], candidate_example(samples[0], object())[0]).category_names) == 80
    assert rtagger_input(samples[1], candidate_example(samples[1], object())[0]).category_names == [
        "dog", "bicycle", "giraffe thing"]
    stage = _stage(folder, store_threshold=0.0, keep_threshold=0.3)
    stage(samples)
    assert stage.describe()["assignment"] == "candidates"
    for sample, want in zip(samples, expected):
        assert sample.ok and len(sample.relations) == len(RELATIONS)
        got = [r.confidence for r in sample.relations]
        assert np.abs(np.asarray(got) - np.asarray(want)).max() < 2e-5  # batched with the other image
        assert [r.kept for r in sample.relations] == [c >= 0.3 for c in got]
        assert all(r.triplet_id == 0 for r in sample.relations)


def test_all_pairs_adds_the_predicates_grounding_did_not_propose(folder):
    sample = _sample(3)
    _stage(folder, store_threshold=0.0, keep_threshold=0.5, assignment="all_pairs")([sample])
    pairs = {(r.subject_id, r.object_id) for r in sample.relations}
    predicates = {p for _, _, p in RELATIONS}
    assert len(sample.relations) == 4 * 4  # 4 distinct candidate pairs x 4 distinct predicates
    assert len(pairs) == 4
    added = [r for r in sample.relations if r.triplet_id == ASSIGNED_BY_VERIFIER]
    assert len(added) == 16 - len(RELATIONS) and sample.counters["verify_assigned"] == len(added)
    assert {r.predicate for r in added} <= predicates and all(r.tag_score == 0.0 for r in added)
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
