import hashlib

import numpy as np
import pytest
from PIL import Image

from sgpipe import errors
from sgpipe.config import VerifyConfig, build_config
from sgpipe.run.preflight import preflight_problems
from sgpipe.errors import SgpipeError
from sgpipe.models.verifier import Verifier
from sgpipe.records import Box, Relation, Sample
from sgpipe.stages.base import reraise
from sgpipe.stages.verify import VerifyStage
from tests.helpers.samples import build_sample
from tests.helpers.stages import run_stage


@pytest.fixture(scope="module")
def checkpoint(tiny_verifier):
    return tiny_verifier


def _sample(image_id: int, relations: list[tuple[int, int, str]], with_image: bool = True) -> Sample:
    rng = np.random.default_rng(image_id)
    sample = build_sample(
        image_id,
        file_name="x.jpg",
        width=80,
        height=60,
        objects=[
            Box(1, "cat", 1, [5, 5, 30, 20]),
            Box(2, "dog", 2, [30, 20, 40, 35]),
            Box(3, "cup", 3, [0, 40, 10, 10]),
        ],
    )
    sample.relations = [Relation(i, s, o, p, 0, 0.5) for i, (s, o, p) in enumerate(relations)]
    if with_image:
        sample.image = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    return sample


RELATIONS = [(1, 2, "on"), (2, 1, "under"), (1, 2, "next to"), (3, 1, "left of"), (1, 3, "on")]


def _stage(checkpoint, **kw) -> VerifyStage:
    stage = VerifyStage(VerifyConfig(enabled=True, checkpoint=str(checkpoint), **kw), device="cpu")
    stage.handler = reraise
    return stage


def test_every_candidate_is_scored_with_the_models_confidence(checkpoint):
    sample = _sample(1, RELATIONS)
    run_stage(_stage(checkpoint, store_threshold=0.0, keep_threshold=0.0), [sample])
    assert sample.ok and len(sample.relations) == len(RELATIONS)
    model = Verifier.from_pretrained(checkpoint)
    from sgpipe.models.pixels import resize_batch, to_tensor
    from sgpipe.models.verifier import Example, image_to_pixels, normalise_boxes

    def scores_with(pixels):
        example = Example(
            pixels,
            normalise_boxes([b.bbox for b in sample.objects], 80, 60),
            ["cat", "dog", "cup"],
            [(0, 1), (1, 0), (2, 0), (0, 2)],
            ["on", "under", "next to", "left of"],
        )
        scores = model.score([example])[0]
        return [scores[0, 0], scores[1, 1], scores[0, 2], scores[2, 3], scores[3, 0]]

    confidences = [r.confidence for r in sample.relations]
    # the stage resizes on the model's device ...
    resized = resize_batch([to_tensor(sample.image)], (64, 64), "bilinear", "cpu")[0]
    np.testing.assert_allclose(confidences, scores_with(resized), atol=1e-6)
    # ... within a grey level of the trainer's PIL resize, so scores barely move
    np.testing.assert_allclose(confidences, scores_with(image_to_pixels(sample.image, 64)), atol=1e-3)
    assert all(r.kept for r in sample.relations)


def test_sgpipes_verifier_reads_the_lemma_it_was_trained_on(checkpoint):
    """Its checkpoint says `relation_text: lemma`: a relation's surface text does not change its score."""
    plain, surfaced = _sample(5, RELATIONS), _sample(5, RELATIONS)
    for relation in surfaced.relations:
        relation.predicate_text = f"{relation.predicate}ing around"
    stage = _stage(checkpoint, store_threshold=0.0, keep_threshold=0.0)
    run_stage(stage, [plain, surfaced])
    assert [r.confidence for r in plain.relations] == [r.confidence for r in surfaced.relations]
    assert stage.describe()["relation_text"] == "lemma"


def test_thresholds_split_stored_and_kept(checkpoint):
    probe = _sample(2, RELATIONS)
    run_stage(_stage(checkpoint, store_threshold=0.0, keep_threshold=0.0), [probe])
    confidences = sorted(r.confidence for r in probe.relations)
    store, keep = confidences[1], confidences[3]  # drop the lowest, keep the top two
    sample = _sample(2, RELATIONS)
    stage = _stage(checkpoint, store_threshold=store, keep_threshold=keep)
    run_stage(stage, [sample])
    assert len(sample.relations) == 4 and all(r.confidence >= store for r in sample.relations)
    assert [r.kept for r in sample.relations] == [r.confidence >= keep for r in sample.relations]
    assert sum(r.kept for r in sample.relations) == 2
    assert sample.counters == {"verify_scored": 5, "verify_below_store_threshold": 1, "verify_kept": 2}


def test_bad_samples_fail_alone(checkpoint):
    good, unknown_box, no_image, empty = (
        _sample(3, RELATIONS),
        _sample(4, [(1, 99, "on")]),
        _sample(5, RELATIONS, with_image=False),
        _sample(6, []),
    )
    stage = _stage(checkpoint, store_threshold=0.0)
    stage.handler = lambda error, sample: None
    run_stage(stage, [good, unknown_box, no_image, empty])
    assert good.ok and all(r.confidence is not None for r in good.relations)
    assert unknown_box.status == errors.FAILED_VERIFY and "unknown box ids [99]" in unknown_box.error_message
    assert no_image.status == errors.FAILED_VERIFY and "no decoded image" in no_image.error_message
    assert empty.ok


def test_describe_names_checkpoint_and_weights_sha(checkpoint):
    stage = _stage(checkpoint)
    stage.setup()
    described = stage.describe()
    assert described["checkpoint"] == str(checkpoint)
    assert (
        described["model_sha256"]
        == hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
    )


def test_refuses_without_a_checkpoint(tmp_path):
    with pytest.raises(SgpipeError, match="sgpipe train"):
        VerifyStage(VerifyConfig(enabled=True, checkpoint=str(tmp_path)), device="cpu").setup()
    raw = {
        "source": {"instances": str(tmp_path / "i.json"), "images": str(tmp_path), "captions": "c.json"},
        "verify": {"enabled": True, "checkpoint": ""},
    }
    problems = preflight_problems(build_config(raw))  # before any work: the folder is preflight's
    assert any("Train one: `sgpipe convert vg" in problem for problem in problems)
