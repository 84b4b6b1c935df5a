"""Loading sgpipe shards with Hugging Face `datasets` (its "webdataset" builder).

The builder infers a schema from the first examples of the first shard only; fields that are empty or
null there (`relations: []`, a caption's `model: null`, `decoding: null`, provenance keys that differ
between producers) are typed `null` and the next shard that holds a value fails to cast. Passing the
explicit features below avoids that: every field typed from schemas/scene_graph.schema.json, the
free-form dicts (`decoding`, `provenance`) as `datasets.Json`.

    from datasets import load_dataset
    from sgpipe.ecosystem import hf_features
    ds = load_dataset("webdataset", data_files={"train": ["out/00000.tar", ...]},
                      features=hf_features(image_ext="jpg"), split="train")

Fields a record may leave out (a box's `source` and `score`, a record's `source_key` and `metadata`,
written by the detect stage and the image-text sources) load as null where absent.

The builder needs every sample to hold the same members: one image extension per dataset (COCO and
the synthetic world are all `.jpg`) or label-only shards (`image_ext=None`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sgpipe.errors import SgpipeError


def hf_features(image_ext: str | None = "jpg") -> Any:
    """`datasets.Features` of an sgpipe shard: `KEY.json` (+ `KEY.<image_ext>` unless None) and the keys."""
    try:
        from datasets import Features, Image, Json, List, Value
    except ImportError as error:
        raise SgpipeError(
            "loading shards with Hugging Face needs datasets >= 4.7 (its Json and List features) "
            "(pip install -U datasets)"
        ) from error
    integer, number, text = Value("int64"), Value("float64"), Value("string")
    record = {
        "schema_version": integer,
        "key": text,
        "dataset": text,
        "image_id": integer,
        "file_name": text,
        "width": integer,
        "height": integer,
        "objects": List(
            {
                "id": integer,
                "category": text,
                "category_id": integer,
                "bbox": List(number),
                "iscrowd": integer,
                "source": text,  # null for an annotation box, "detector" for a detected one
                "score": number,
            }
        ),
        "captions": List({"id": integer, "text": text, "source": text, "model": text, "decoding": Json()}),
        "triplets": List(
            {
                "id": integer,
                "subject": text,
                "predicate": text,
                "object": text,
                "subject_text": text,
                "predicate_text": text,
                "object_text": text,
                "support": integer,
                "caption_ids": List(integer),
            }
        ),
        "relations": List(
            {
                "id": integer,
                "subject_id": integer,
                "object_id": integer,
                "predicate": text,
                "predicate_text": text,
                "triplet_id": integer,
                "tag_score": number,
                "confidence": number,
                "kept": Value("bool"),
            }
        ),
        "source_key": text,  # null but for image-text sources (webdataset, folder)
        "metadata": Json(),
        "provenance": Json(),
    }
    fields: dict[str, Any] = {}
    if image_ext:
        fields[image_ext] = Image()
    fields.update({"json": record, "__key__": text, "__url__": text})
    return Features(fields)


def load_hf_dataset(
    path: str | Path, image_ext: str | None = "jpg", split: str = "train", **kwargs: Any
) -> Any:
    """`datasets.load_dataset("webdataset", ...)` over the shards at `path` (folder, .tar, braces)."""
    from datasets import load_dataset

    from sgpipe.shards import expand_urls

    return load_dataset(
        "webdataset",
        data_files={split: expand_urls(path)},
        features=hf_features(image_ext),
        split=split,
        **kwargs,
    )
