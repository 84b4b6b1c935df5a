"""`sgpipe export`: shards -> RLIPv2/VG-style JSON (+ vocabulary file) or a flat relations parquet.

Both formats stream: records are read one at a time from the tars and written out at once (the JSON
as `[`, items separated by `,`, `]`; the parquet row group by row group), so memory does not grow
with the dataset; only the vocabulary counters are held.

Which relations are exported:
- rlipv2: by default the kept ones (`kept` true) where the relation was verified, and every relation
  where it was not (`kept` null: a run without the verifier); `--min-confidence X` replaces that rule
  with `confidence >= X` (unverified relations, whose confidence is null, are then left out).
- parquet: every stored relation with its `kept` flag and confidence (filter downstream), or only
  those with `confidence >= X` under `--min-confidence`.
Every object box of an image is exported, related or not (Visual Genome style); relationship ids are
renumbered across the export so they are unique, object ids stay the source annotation ids.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from sgpipe.errors import SgpipeError
from sgpipe.output.atomic import atomic_file
from sgpipe.shards import expand_urls, iter_shard_samples

FORMATS = ("rlipv2", "parquet")
ROW_GROUP = 10_000


def select_relations(
    record: dict[str, Any], min_confidence: float | None, default_kept_only: bool = True
) -> list[dict[str, Any]]:
    """The record's relations that the export keeps (rule in the module docstring)."""
    relations = record.get("relations", [])
    if min_confidence is not None:
        return [r for r in relations if r.get("confidence") is not None and r["confidence"] >= min_confidence]
    if not default_kept_only:
        return list(relations)
    return [r for r in relations if r.get("kept") is None or r["kept"]]


def rlipv2_item(
    record: dict[str, Any], relations: list[dict[str, Any]], next_relationship_id: int
) -> dict[str, Any]:
    objects = [
        {
            "object_id": o["id"],
            "x": o["bbox"][0],
            "y": o["bbox"][1],
            "w": o["bbox"][2],
            "h": o["bbox"][3],
            "names": [o["category"]],
        }
        for o in record.get("objects", [])
    ]
    relationships = [
        {
            "relationship_id": next_relationship_id + i,
            "predicate": r["predicate"],
            "subject_id": r["subject_id"],
            "object_id": r["object_id"],
            "confidence": r.get("confidence"),
        }
        for i, r in enumerate(relations)
    ]
    return {
        "image_id": record["image_id"],
        "file_name": record.get("file_name"),
        "width": record.get("width"),
        "height": record.get("height"),
        "objects": objects,
        "relationships": relationships,
    }


def vocab_path(output: Path) -> Path:
    """`out/pseudo.json` -> `out/pseudo_vocab_freq.json`."""
    return output.with_name(output.stem + "_vocab_freq.json")


def vocab_freq(relationships: Counter[str], objects: Counter[str]) -> dict[str, Any]:
    """RLIPv2's vocabulary file: names sorted by frequency, then the frequency maps."""

    def ranked(counter: Counter[str]) -> list[tuple[str, int]]:
        return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))

    return {
        "relationship_names": [name for name, _ in ranked(relationships)],
        "object_names": [name for name, _ in ranked(objects)],
        "relationship_freq": dict(ranked(relationships)),
        "object_freq": dict(ranked(objects)),
    }


def _records(out: Path | str) -> Iterator[dict[str, Any]]:
    for sample in iter_shard_samples(expand_urls(out)):
        if sample.record:
            yield sample.record


def export_rlipv2(out: Path | str, output: Path, min_confidence: float | None = None) -> dict[str, int]:
    relationship_counts: Counter[str] = Counter()
    object_counts: Counter[str] = Counter()
    n_images = n_relations = 0
    with atomic_file(output, "w") as handle:
        handle.write("[")
        for record in _records(out):
            relations = select_relations(record, min_confidence)
            item = rlipv2_item(record, relations, n_relations)
            handle.write(("," if n_images else "") + "\n" + json.dumps(item, ensure_ascii=False))
            n_images += 1
            n_relations += len(relations)
            relationship_counts.update(r["predicate"] for r in relations)
            object_counts.update(o["category"] for o in record.get("objects", []))
        handle.write("\n]\n")
    with atomic_file(vocab_path(output), "w") as handle:
        json.dump(vocab_freq(relationship_counts, object_counts), handle, ensure_ascii=False)
    return {"images": n_images, "relations": n_relations}


def relations_schema():
    import pyarrow as pa

    box = pa.list_(pa.float32(), 4)
    return pa.schema(
        [
            ("key", pa.string()),
            ("image_id", pa.int64()),
            ("relation_id", pa.int32()),
            ("subject_id", pa.int64()),
            ("object_id", pa.int64()),
            ("subject_category", pa.string()),
            ("object_category", pa.string()),
            ("subject_bbox", box),
            ("object_bbox", box),
            ("predicate", pa.string()),
            ("confidence", pa.float32()),
            ("kept", pa.bool_()),
            ("tag_score", pa.float32()),
            ("support", pa.int32()),
        ]
    )


def relation_rows(record: dict[str, Any], relations: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    objects = {o["id"]: o for o in record.get("objects", [])}
    support = {t["id"]: t["support"] for t in record.get("triplets", [])}
    for r in relations:
        subject, obj = objects.get(r["subject_id"], {}), objects.get(r["object_id"], {})
        yield {
            "key": record["key"],
            "image_id": record["image_id"],
            "relation_id": r["id"],
            "subject_id": r["subject_id"],
            "object_id": r["object_id"],
            "subject_category": subject.get("category"),
            "object_category": obj.get("category"),
            "subject_bbox": subject.get("bbox"),
            "object_bbox": obj.get("bbox"),
            "predicate": r["predicate"],
            "confidence": r.get("confidence"),
            "kept": r.get("kept"),
            "tag_score": r.get("tag_score"),
            "support": support.get(r.get("triplet_id")),
        }


def export_parquet(out: Path | str, output: Path, min_confidence: float | None = None) -> dict[str, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = relations_schema()
    n_images = n_relations = 0
    rows: list[dict[str, Any]] = []
    with atomic_file(output) as handle:
        with pq.ParquetWriter(handle, schema, compression="zstd") as writer:
            for record in _records(out):
                n_images += 1
                rows.extend(
                    relation_rows(record, select_relations(record, min_confidence, default_kept_only=False))
                )
                if len(rows) >= ROW_GROUP:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                    n_relations += len(rows)
                    rows = []
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                n_relations += len(rows)
    return {"images": n_images, "relations": n_relations}


def export(out: Path | str, format: str, output: Path, min_confidence: float | None = None) -> str:
    """Export the shards of `out` (a folder, a .tar or a brace pattern) to `output` in `format`."""
    if format not in FORMATS:
        raise SgpipeError(f"unknown export format {format!r}. Choose from: {', '.join(FORMATS)}")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise SgpipeError(f"--min-confidence must be within [0, 1], got {min_confidence}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if format == "rlipv2":
        counts = export_rlipv2(out, output, min_confidence)
        return (
            f"wrote {counts['images']} images and {counts['relations']} relationships to {output}, "
            f"vocabulary to {vocab_path(output)}"
        )
    counts = export_parquet(out, output, min_confidence)
    return f"wrote {counts['relations']} relations of {counts['images']} images to {output}"
