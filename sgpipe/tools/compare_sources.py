"""The two sides of `sgpipe compare`, read into one shape: per image, its boxes and the relations selected.

A side is an sgpipe corpus (an output folder, a `.tar` or a brace pattern; a path or a URL) or a label
JSON in RLIPv2's format (a file ending in `.json`: RLIPv2's released pseudo-labels, or what
`sgpipe export --format rlipv2` writes). Images are identified across sides as RLIPv2 identifies
them: (RLIPv2 dataset, image id), where an sgpipe record's dataset maps as the export maps it
(`coco*` -> coco2017, `o365*` -> o365, any other -> none).

Which relations (`--min-confidence X` or not):
- sgpipe corpus: those `sgpipe export --format rlipv2` would write (`select_relations`): the kept
  ones (or every unverified one) by default, those with confidence >= X under X. Their text is the
  one the export writes (`rlipv2_format.relation_text`), so a corpus and its export compare equal.
- label JSON: every relationship by default; under X, those with confidence >= X and those without
  a confidence, which RLIPv2's loader treats as ground truth and always keeps. Texts are compared as
  the file writes them (whitespace runs collapsed).
"""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass, field
from typing import Any, Iterator

from sgpipe.errors import SgpipeError
from sgpipe.tools import rlipv2_format as rf

CORPUS, LABELS = "sgpipe", "rlipv2_json"
ImageId = tuple[Any, int]  # (RLIPv2 dataset value or None, image id)


@dataclass(slots=True)
class LabelBox:
    id: int | None  # the annotation id (sgpipe: the source's; RLIPv2's own files: a running number)
    bbox: tuple[float, float, float, float]  # x, y, w, h in pixels
    category: str


@dataclass(slots=True)
class LabelRelation:
    subject: int  # index into the image's boxes
    object: int
    text: str
    confidence: float | None


@dataclass(slots=True)
class ImageLabels:
    image: ImageId
    key: str  # for people: `coco-000000000009`
    boxes: list[LabelBox] = field(default_factory=list)
    relations: list[LabelRelation] = field(default_factory=list)
    dropped: int = 0  # unusable relationships: naming no box of the image, no text, a bad confidence


@dataclass(slots=True)
class PackedImage:
    """An `ImageLabels` in flat arrays while it waits for the other side: peak memory per held
    relation 182 bytes instead of 395 as objects (benchmarks/bench_compare.py; RLIPv2's COCO labels
    hold 5.8M relations)."""

    key: str
    ids: tuple[int | None, ...]
    categories: tuple[str, ...]
    bboxes: array  # 4 per box
    ends: array  # subject and object box index per relation
    texts: tuple[str, ...]
    confidences: array  # NaN for none
    dropped: int

    @classmethod
    def pack(cls, labels: ImageLabels) -> "PackedImage":
        return cls(
            labels.key,
            tuple(b.id for b in labels.boxes),
            tuple(sys.intern(b.category) for b in labels.boxes),
            array("d", (v for b in labels.boxes for v in b.bbox)),
            array("i", (i for r in labels.relations for i in (r.subject, r.object))),
            tuple(r.text for r in labels.relations),
            array("d", (math.nan if r.confidence is None else r.confidence for r in labels.relations)),
            labels.dropped,
        )

    def unpack(self, image: ImageId) -> ImageLabels:
        boxes = [
            LabelBox(i, tuple(self.bboxes[4 * k : 4 * k + 4]), c)
            for k, (i, c) in enumerate(zip(self.ids, self.categories))
        ]
        relations = [
            LabelRelation(self.ends[2 * k], self.ends[2 * k + 1], text, None if math.isnan(c) else c)
            for k, (text, c) in enumerate(zip(self.texts, self.confidences))
        ]
        return ImageLabels(image, self.key, boxes, relations, self.dropped)


@dataclass(slots=True)
class Side:
    """One side's description (for the JSON) and its images, read once, in the side's order."""

    path: str
    kind: str
    relation_text: str
    selection: str
    images: Iterator[ImageLabels]

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "relation_text": self.relation_text,
            "selection": self.selection,
        }


def _key(dataset: Any, image_id: int) -> str:
    return f"{rf.SGPIPE_DATASET.get(dataset, dataset)}-{int(image_id):012d}"


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _image(
    image: ImageId, key: str, objects: list[tuple[Any, Any, str]], relations: list[tuple], dropped: int = 0
) -> ImageLabels:
    """`objects`: (id, [x, y, w, h], category); `relations`: (subject id, object id, text, confidence);
    `dropped`: relations already found unusable."""
    labels = ImageLabels(image, key, dropped=dropped)
    index: dict[int, int] = {}
    for object_id, bbox, category in objects:
        object_id = object_id if _is_id(object_id) else None
        if object_id is not None:
            index.setdefault(object_id, len(labels.boxes))  # a repeated id names its first box
        labels.boxes.append(LabelBox(object_id, tuple(float(v) for v in bbox), category))
    for subject_id, object_id, text, confidence in relations:
        if not (_is_id(subject_id) and _is_id(object_id) and subject_id in index and object_id in index):
            labels.dropped += 1
            continue
        confidence = None if confidence is None else float(confidence)
        labels.relations.append(
            LabelRelation(index[subject_id], index[object_id], sys.intern(text), confidence)
        )
    return labels


def _corpus_images(
    urls: list[str], options: dict[str, Any], min_confidence: float | None
) -> Iterator[ImageLabels]:
    from sgpipe.shards import iter_shard_samples
    from sgpipe.tools.export import select_relations

    for sample in iter_shard_samples(urls, options):
        record = sample.record
        if not record:
            continue
        objects = [(o["id"], o["bbox"], o["category"]) for o in record.get("objects", [])]
        relations = [
            (r["subject_id"], r["object_id"], rf.relation_text(record, r), r.get("confidence"))
            for r in select_relations(record, min_confidence)
        ]
        image = (rf.rlipv2_dataset(record["dataset"]), int(record["image_id"]))
        yield _image(image, record["key"], objects, relations)


def _label_box(obj: Any) -> tuple[Any, tuple[float, ...], str] | None:
    """(id, bbox, name) of an RLIPv2 object; None for one without numeric x, y, w, h (its relations
    are then dropped, as the image has no such box)."""
    if not isinstance(obj, dict):
        return None
    bbox = tuple(rf.finite_number(obj.get(k)) for k in ("x", "y", "w", "h"))
    if None in bbox:
        return None
    return obj.get("object_id"), bbox, rf.text_value(obj.get("names", obj.get("name")))


def _label_relation(relationship: Any) -> tuple[Any, Any, str, float | None] | None:
    """(subject id, object id, text, confidence) of an RLIPv2 relationship; None when it is unusable
    (not an object, no text, a confidence that is not a number in [0, 1])."""
    if not isinstance(relationship, dict):
        return None
    text = rf.text_value(relationship.get("predicate"))
    if not text:
        return None
    confidence = relationship.get("confidence")
    if confidence is not None:
        confidence = rf.finite_number(confidence)
        if confidence is None or not 0.0 <= confidence <= 1.0:
            return None
    return relationship.get("subject_id"), relationship.get("object_id"), text, confidence


def _label_images(url: str, options: dict[str, Any], min_confidence: float | None) -> Iterator[ImageLabels]:
    for item in rf.iter_items(url, options):
        objects = [box for box in map(_label_box, item.get("objects") or []) if box is not None]
        found = [_label_relation(r) for r in item.get("relationships") or []]
        relations = [
            r
            for r in found
            if r is not None and (min_confidence is None or r[3] is None or r[3] >= min_confidence)
        ]
        dataset = item.get("dataset")
        dataset = dataset if dataset is None or isinstance(dataset, str) else str(dataset)
        key = _key(dataset, item["image_id"])
        yield _image((dataset, item["image_id"]), key, objects, relations, dropped=found.count(None))


def open_side(spec: str, options: dict[str, Any], min_confidence: float | None) -> Side:
    """An sgpipe corpus or, for a `.json` file, a label JSON; a clear error when it is not there."""
    from sgpipe.shards import expand_urls
    from sgpipe.tools.locations import existing_file

    spec = str(spec)
    threshold = None if min_confidence is None else f"confidence >= {min_confidence:g}"
    if spec.lower().endswith(".json"):
        existing_file(spec, options)
        selection = f"{threshold} or no confidence (ground truth)" if threshold else "every relationship"
        return Side(spec, LABELS, "file", selection, _label_images(spec, options, min_confidence))
    try:
        urls = expand_urls(spec, options)
    except SgpipeError as error:
        raise SgpipeError(
            f"{error} (compare takes sgpipe output folders, shards or RLIPv2 label .json files)"
        ) from error
    selection = threshold or "kept, or unverified (as `sgpipe export` selects)"
    return Side(spec, CORPUS, rf.RELATION_TEXT_FORM, selection, _corpus_images(urls, options, min_confidence))
