"""Detect: open-vocabulary boxes for the phrases each image's triplets name, between parse and tag.

Each ok image is asked about the subject and object entities of its triplets (their head lemmas,
compounds kept: "fire hydrant"), in order of first appearance, then about `detect.vocabulary`'s
names (none, COCO's 80, Objects365's 365, or a file of one name per line). Every detection becomes
one of the image's objects: `source: "detector"`, the detector's `score`, the phrase that found it
as `category` (`category_id` -1), ids after the image's annotated boxes. On a COCO source the
detections join the annotated boxes. The tag stage grounds each phrase on the boxes it found first.
An image with no phrase to ask about is not sent to the model.
"""

from __future__ import annotations

from typing import Any

from sgpipe import errors
from sgpipe.config import DETECT_VOCABULARIES, DetectConfig
from sgpipe.records import DETECTOR, NO_CATEGORY_ID, Box, Sample
from sgpipe.stages.base import Resources, Stage
from sgpipe.storage import location
from sgpipe.vocab.lexicon import normalise


def query_vocabulary(vocabulary: str) -> list[str]:
    """The names always asked about: a bundled vocabulary's category names (the first of names
    like "handbag/satchel"), or a file's lines (blank ones and `#` comments skipped)."""
    if vocabulary == "none":
        return []
    if vocabulary in DETECT_VOCABULARIES:
        from sgpipe.vocab.lexicon import load_vocabulary

        names = [name.split("/")[0] for name in load_vocabulary(vocabulary)]
    else:
        text = location(vocabulary).read_bytes().decode("utf-8")
        names = [line.split("#")[0] for line in text.splitlines()]
    return list(dict.fromkeys(n for n in (normalise(name) for name in names) if n))


def image_phrases(sample: Sample, vocabulary: list[str]) -> list[str]:
    """The image's triplets' entities in order of first appearance, then the vocabulary's names."""
    entities = (normalise(e) for t in sample.triplets for e in (t.subject, t.object))
    return list(dict.fromkeys([*(e for e in entities if e), *vocabulary]))


class DetectStage(Stage):
    name = "detect"
    failure_status = errors.FAILED_DETECT

    def __init__(self, config: DetectConfig, device: str = "auto", gpus: float = 0.0):
        super().__init__(config.batch_size, Resources(cpus=1.0, gpus=gpus))
        self.config = config
        self.device = device
        self.detector: Any = None
        self.vocabulary: list[str] = []
        self._loaded_description: dict[str, Any] | None = None

    def setup(self) -> None:
        from sgpipe.models.detections import Thresholds
        from sgpipe.models.detector import ZeroShotDetector

        config = self.config
        thresholds = Thresholds(config.box_threshold, config.text_threshold, config.nms_iou, config.max_boxes)
        self.vocabulary = query_vocabulary(config.vocabulary)
        self.detector = ZeroShotDetector(
            config.model, thresholds, config.batch_size, device=self.device, dtype=config.dtype
        ).load()

    def teardown(self) -> None:
        if self.detector is not None:
            self._loaded_description = self.describe()
        self.detector = None

    def describe(self) -> dict[str, Any]:
        if self.detector is not None:
            return {**self.detector.describe(), "vocabulary": self.config.vocabulary}
        if self._loaded_description is not None:
            return self._loaded_description
        return {"model": self.config.model, "revision": None, "vocabulary": self.config.vocabulary}

    def process(self, samples: list[Sample]) -> None:
        assert self.detector is not None, "setup() loads the detector"
        todo, phrases = [], []
        for sample in samples:
            names = image_phrases(sample, self.vocabulary) if sample.image is not None else []
            if not names:
                sample.count("detect_images_without_phrases")
                continue
            todo.append(sample)
            phrases.append(names)
        if not todo:
            return
        found, dropped = self.detector.detect([s.image for s in todo], phrases)
        for sample, names, detections, counts in zip(todo, phrases, found, dropped):
            next_id = max((b.id for b in sample.objects), default=-1) + 1
            for offset, detection in enumerate(detections):
                x0, y0, x1, y1 = detection.box
                sample.objects.append(
                    Box(next_id + offset, detection.phrase, NO_CATEGORY_ID, [x0, y0, x1 - x0, y1 - y0],
                        source=DETECTOR, score=detection.score)
                )
            sample.count("detect_phrases", len(names))
            sample.count("detect_boxes", len(detections))
            for name, count in counts.items():
                if count:
                    sample.count(name, count)
