"""Typed records that flow between stages. Imports nothing from sgpipe but the status values.

A `Sample` is one input image entry; every stage reads and fills fields of it, and the shard
writer (`output/writer.py`) turns it into a tar member (`KEY.json` + image bytes) and one parquet row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sgpipe.errors import OK

SCHEMA_VERSION = 1

DATASET_NAME_PATTERN = re.compile(r"[A-Za-z0-9_]+")  # whole name: fullmatch (a $ admits a final newline)
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


def sample_key(dataset: str, image_id: int) -> str:
    """`{dataset}-{image_id:012d}`: never contains dots or slashes."""
    if not DATASET_NAME_PATTERN.fullmatch(dataset):
        raise ValueError(f"dataset name {dataset!r} may hold letters, digits and '_' only")
    if image_id < 0:
        raise ValueError(f"image id must be non-negative, got {image_id}")
    return f"{dataset}-{int(image_id):012d}"


def shard_name(index: int) -> str:
    return f"{index:05d}"


ANNOTATION = "annotation"
DETECTOR = "detector"
NO_CATEGORY_ID = -1  # a detected box's category is the phrase that found it, not a dataset category


@dataclass(slots=True)
class Box:
    """One box: an annotation box (`id` is the source annotation id) or one the detect stage found
    (`source` "detector", `score` the detector's, `category` the phrase that found it)."""

    id: int
    category: str
    category_id: int
    bbox: list[float]  # [x, y, w, h] in pixels
    iscrowd: int = 0
    source: str = ANNOTATION
    score: float | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "category": self.category,
            "category_id": self.category_id,
            "bbox": [round(float(v), 2) for v in self.bbox],
            "iscrowd": self.iscrowd,
        }
        if self.source != ANNOTATION:  # annotated boxes keep the record they always had
            record["source"] = self.source
            record["score"] = None if self.score is None else round(float(self.score), 4)
        return record


@dataclass(slots=True)
class Caption:
    id: int
    text: str
    source: str  # "model" | "annotation" | "alt_text"
    model: str | None = None
    decoding: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "source": self.source,
            "model": self.model,
            "decoding": self.decoding,
        }


@dataclass(slots=True)
class Triplet:
    """A subject-predicate-object statement: lemmas plus the surface phrases."""

    subject: str
    predicate: str
    object: str
    subject_text: str
    predicate_text: str
    object_text: str
    id: int = 0
    support: int = 1
    caption_ids: list[int] = field(default_factory=list)

    @property
    def lemma_key(self) -> tuple[str, str, str]:
        return (self.subject, self.predicate, self.object)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "predicate": self.predicate,
            "object": self.object,
            "subject_text": self.subject_text,
            "predicate_text": self.predicate_text,
            "object_text": self.object_text,
            "support": self.support,
            "caption_ids": list(self.caption_ids),
        }


@dataclass(slots=True)
class Relation:
    """A candidate grounding of a triplet on an ordered pair of boxes: `predicate` the lemma form
    ("sit on"), `predicate_text` the surface form ("sitting on") that RLIPv2's R-Tagger reads and
    RLIPv2's labels hold (empty in records written before it existed: `tools.rlipv2_format.relation_text` then reads the triplet's)."""

    id: int
    subject_id: int
    object_id: int
    predicate: str
    triplet_id: int
    tag_score: float
    confidence: float | None = None
    kept: bool | None = None
    predicate_text: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject_id": self.subject_id,
            "object_id": self.object_id,
            "predicate": self.predicate,
            "predicate_text": self.predicate_text,
            "triplet_id": self.triplet_id,
            "tag_score": round(float(self.tag_score), 4),
            "confidence": None if self.confidence is None else round(float(self.confidence), 4),
            "kept": self.kept,
        }


@dataclass(slots=True)
class ImageEntry:
    """One image entry of the source annotation file, before any I/O."""

    image_id: int
    file_name: str
    width: int
    height: int
    objects: list[Box] = field(default_factory=list)
    captions: list[Caption] = field(default_factory=list)
    duplicate: bool = False  # a repeated image id; the first entry wins
    dropped_boxes: dict[str, int] = field(default_factory=dict)  # reason -> count
    # image-text sources (webdataset, folder): the item's own key, its metadata, the alt-text file
    # to read beside the image, and a failure the source already knows (`failed_missing`: a `.txt`
    # without its image) with its message
    source_key: str = ""
    metadata: dict[str, Any] | None = None
    alt_text_file: str = ""
    failure: str = ""
    failure_message: str = ""
    counters: dict[str, int] = field(default_factory=dict)  # what reading it met (summed per shard)
    # category ids of all the image's annotations, distinct, in file order; set only where a dropped box
    # makes it differ from the boxes' own (RLIPv2's matching reads the categories of every annotation)
    annotation_categories: list[int] | None = None


@dataclass(slots=True)
class Sample:
    """One image entry as it flows through the stages of a shard."""

    key: str
    dataset: str
    image_id: int
    file_name: str
    width: int
    height: int
    objects: list[Box] = field(default_factory=list)
    captions: list[Caption] = field(default_factory=list)
    triplets: list[Triplet] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    status: str = OK
    error_message: str = ""
    image_bytes: bytes | None = None
    image_ext: str = "jpg"
    image: Any = None  # decoded PIL image in RGB, transient (never serialised)
    counters: dict[str, int] = field(default_factory=dict)  # per-sample stats, summed per shard
    source_key: str = ""  # the item's key in an image-text source (its tar member name's stem)
    metadata: dict[str, Any] | None = None  # the item's own metadata (img2dataset's KEY.json)
    annotation_categories: list[int] | None = None  # as ImageEntry's, transient

    def category_order(self) -> list[int]:
        """Category ids of the image's annotations, distinct, in the annotation file's order."""
        if self.annotation_categories is not None:
            return list(self.annotation_categories)
        return list(dict.fromkeys(b.category_id for b in self.objects))

    @property
    def ok(self) -> bool:
        return self.status == OK

    def fail(self, status: str, message: str) -> None:
        self.status = status
        self.error_message = message
        self.image = None
        self.image_bytes = None  # a failed sample's image is never written

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def to_record(self, provenance: dict[str, Any]) -> dict[str, Any]:
        """The scene-graph record written as `KEY.json` (schemas/scene_graph.schema.json)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "key": self.key,
            "dataset": self.dataset,
            "image_id": self.image_id,
            "file_name": self.file_name,
            "width": self.width,
            "height": self.height,
            "objects": [b.to_json() for b in self.objects],
            "captions": [c.to_json() for c in self.captions],
            "triplets": [t.to_json() for t in self.triplets],
            "relations": [r.to_json() for r in self.relations],
            **({"source_key": self.source_key} if self.source_key else {}),
            **({"metadata": self.metadata} if self.metadata is not None else {}),
            "provenance": provenance,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Sample":
        """Rebuild a sample from a `KEY.json` record (reverify, training, export)."""
        return cls(
            key=record["key"],
            dataset=record["dataset"],
            image_id=record["image_id"],
            file_name=record["file_name"],
            width=record["width"],
            height=record["height"],
            objects=[Box(**b) for b in record["objects"]],
            captions=[Caption(**c) for c in record["captions"]],
            triplets=[Triplet(**t) for t in record["triplets"]],
            relations=[Relation(**r) for r in record["relations"]],
            source_key=record.get("source_key", ""),
            metadata=record.get("metadata"),
        )
