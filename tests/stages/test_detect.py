"""The detect stage: phrases from the triplets, detections as objects, bookkeeping per image."""

import math

import pytest

from sgpipe import errors
from sgpipe.config import DetectConfig
from sgpipe.records import Box, Triplet
from sgpipe.stages.base import reraise
from sgpipe.stages.detect import DetectStage, image_phrases, query_vocabulary
from tests.helpers.images import pattern_image
from tests.helpers.samples import build_sample
from tests.helpers.tiny_detectors import StubDino, build_tiny_grounding_dino


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    """The stage around the tiny Grounding DINO's processor and the known-logits stub model."""
    folder = build_tiny_grounding_dino(tmp_path_factory.mktemp("dino") / "gd")
    stage = DetectStage(DetectConfig(enabled=True, model=str(folder), box_threshold=0.5, text_threshold=0.5))
    stage.handler = reraise
    stage.setup()
    stage.detector.model = StubDino(stage.detector.processor.tokenizer)
    yield stage
    stage.teardown()


def _triplet(subject, predicate, object_):
    return Triplet(subject, predicate, object_, subject, predicate, object_)


def _sample(image_id, triplets, objects=(), width=100, height=50):
    sample = build_sample(image_id, "web", width=width, height=height, triplets=list(triplets),
                          objects=list(objects))
    sample.image = pattern_image(width, height, image_id)
    return sample


def test_phrases_are_the_triplets_entities_then_the_vocabulary():
    sample = _sample(1, [_triplet("man", "ride", "horse"), _triplet("horse", "near", "Fire-Hydrant")])
    assert image_phrases(sample, ["person", "horse"]) == ["man", "horse", "fire hydrant", "person"]


def test_detections_become_objects_after_the_annotated_boxes(stage):
    annotated = Box(907, "person", 1, [1, 1, 10, 10])
    with_boxes = _sample(1, [_triplet("man", "ride", "horse"), _triplet("kite", "above", "man")], [annotated])
    plain = _sample(2, [_triplet("fire hydrant", "next to", "dog")])
    no_phrases = _sample(3, [])
    stage([with_boxes, plain, no_phrases])
    assert with_boxes.objects[0] is annotated
    p_horse, p_kite = (round(1 / (1 + math.exp(-logit)), 4) for logit in (4.0, 2.0))
    assert [b.to_json() for b in with_boxes.objects[1:]] == [  # the stub's proposals in the 100 x 50 image
        {"id": 908, "category": "horse", "category_id": -1, "bbox": [40.0, 15.0, 20.0, 20.0], "iscrowd": 0,
         "source": "detector", "score": p_horse},
        {"id": 909, "category": "kite", "category_id": -1, "bbox": [70.0, 20.0, 20.0, 10.0], "iscrowd": 0,
         "source": "detector", "score": p_kite},
    ]
    assert [(b.id, b.category) for b in plain.objects] == [(0, "fire hydrant")]
    assert no_phrases.objects == [] and no_phrases.counters == {"detect_images_without_phrases": 1}
    assert plain.counters["detect_phrases"] == 2 and plain.counters["detect_boxes"] == 1
    assert all(s.ok for s in (with_boxes, plain, no_phrases))


def test_a_sample_the_model_fails_on_alone_gets_failed_detect(stage):
    class Broken(StubDino):
        def __call__(self, input_ids, pixel_values, **inputs):
            if (input_ids == self.kite).any():  # any batch holding the image asked about a kite
                raise RuntimeError("CUDA out of memory")
            return super().__call__(input_ids, pixel_values, **inputs)

    good, bad = _sample(1, [_triplet("man", "ride", "horse")]), _sample(2, [_triplet("kite", "over", "dog")])
    tokenizer = stage.detector.processor.tokenizer
    broken = Broken(tokenizer)
    broken.kite = tokenizer.convert_tokens_to_ids("kite")
    stage.detector.model, stage.handler = broken, lambda e, s: None
    try:
        stage([good, bad])
    finally:
        stage.detector.model, stage.handler = StubDino(stage.detector.processor.tokenizer), reraise
    assert good.ok and [b.category for b in good.objects] == ["horse"]
    assert bad.status == errors.FAILED_DETECT and "CUDA out of memory" in bad.error_message


def test_vocabularies(tmp_path):
    assert query_vocabulary("none") == []
    coco = query_vocabulary("coco")
    assert len(coco) == 80 and coco[:3] == ["person", "bicycle", "car"]
    o365 = query_vocabulary("objects365")
    assert len(o365) == 365 and all("/" not in name for name in o365)
    names = tmp_path / "names.txt"
    names.write_text("Traffic Cone\n\n# a comment\nbird  # birds too\nbird\n")
    assert query_vocabulary(str(names)) == ["traffic cone", "bird"]
