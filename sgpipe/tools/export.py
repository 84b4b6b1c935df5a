"""`sgpipe export`: shards -> RLIPv2's pre-training JSON (+ its vocabulary and Objects365 path files)
or a flat relations parquet.

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

rlipv2 items carry what RLIPv2's loaders read (`sgpipe.tools.rlipv2_format`): `names` as a string,
`dataset` from the source name (coco* -> coco2017, o365*/objects365* -> o365; any other source is
written as a Visual Genome item, without `dataset`), `data_split` (given, else the last folder of the
run's `source.images` when it names a split, else train2017 / train), `confidence` only where the
relation has one. Objects365 items also get a line in `FILE_image_id_to_filepath.json`, RLIPv2's
image id -> path file, written as it goes like the JSON list.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from sgpipe.errors import SgpipeError
from sgpipe.output.atomic import atomic_file
from sgpipe.shards import expand_urls, iter_shard_samples
from sgpipe.tools import rlipv2_format as rf

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


def o365_paths_path(output: Path) -> Path:
    """`out/pseudo.json` -> `out/pseudo_image_id_to_filepath.json`."""
    return output.with_name(f"{output.stem}_{rf.O365_PATHS}")


def _source_images(out: Path | str) -> str | None:
    """`source.images` of the run that wrote `out` (from its run.json), if known."""
    run_json = Path(str(out)) / "run.json"
    if not run_json.is_file():
        return None
    return ((json.loads(run_json.read_text()).get("config") or {}).get("source") or {}).get("images")


def export_rlipv2(
    out: Path | str, output: Path, min_confidence: float | None = None, data_split: str | None = None
) -> dict[str, Any]:
    relationship_counts: Counter[str] = Counter()
    object_counts: Counter[str] = Counter()
    datasets: Counter[str] = Counter()
    splits: dict[str, str | None] = {}
    source_images = _source_images(out)
    n_images = n_relations = n_paths = 0
    paths_path = o365_paths_path(output)
    with atomic_file(output, "w") as handle, atomic_file(paths_path, "w") as paths:
        handle.write("[")
        paths.write("{")
        for record in _records(out):
            dataset = rf.rlipv2_dataset(record["dataset"])
            if record["dataset"] not in splits:
                splits[record["dataset"]] = data_split or rf.default_split(dataset, source_images)
            split = splits[record["dataset"]] if dataset else None
            relations = select_relations(record, min_confidence)
            item = rf.rlipv2_item(record, relations, n_relations, dataset, split)
            handle.write(("," if n_images else "") + "\n" + json.dumps(item, ensure_ascii=False))
            if dataset == rf.O365:
                path = rf.o365_path(split, record.get("file_name") or "")
                paths.write(("," if n_paths else "") + "\n" + json.dumps(str(record["image_id"])) + ": ")
                paths.write(json.dumps(path, ensure_ascii=False))
                n_paths += 1
            n_images += 1
            n_relations += len(relations)
            datasets[dataset or "Visual Genome (no dataset)"] += 1
            relationship_counts.update(rf.relation_text(record, r) for r in relations)
            object_counts.update(o["category"] for o in record.get("objects", []))
        handle.write("\n]\n")
        paths.write("\n}\n")
    if not n_paths:  # only Objects365 items need the id -> path file
        paths_path.unlink()
    with atomic_file(vocab_path(output), "w") as handle:
        json.dump(vocab_freq(relationship_counts, object_counts), handle, ensure_ascii=False)
    return {
        "images": n_images,
        "relations": n_relations,
        "o365_paths": n_paths,
        "datasets": dict(datasets),
        "splits": {name: split for name, split in splits.items() if rf.rlipv2_dataset(name)},
    }


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


def export(
    out: Path | str,
    format: str,
    output: Path,
    min_confidence: float | None = None,
    data_split: str | None = None,
) -> str:
    """Export the shards of `out` (a folder, a .tar or a brace pattern) to `output` in `format`;
    `data_split` overrides the rlipv2 items' split (train2017, val2017, train, val, ...)."""
    if format not in FORMATS:
        raise SgpipeError(f"unknown export format {format!r}. Choose from: {', '.join(FORMATS)}")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise SgpipeError(f"--min-confidence must be within [0, 1], got {min_confidence}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if format == "rlipv2":
        counts = export_rlipv2(out, output, min_confidence, data_split)
        lines = [
            (
                f"wrote {counts['images']} images and {counts['relations']} relationships to {output}, "
                f"vocabulary to {vocab_path(output)}"
            ),
            "  RLIPv2 datasets: "
            + ", ".join(f"{name} {n}" for name, n in counts["datasets"].items())
            + "".join(f"; {name} as data_split {split}" for name, split in counts["splits"].items()),
        ]
        if counts["o365_paths"]:
            lines.append(
                f"  Objects365 image paths to {o365_paths_path(output)}: put it in RLIPv2's Objects365 "
                f"folder as {rf.O365_PATHS}"
            )
        if "Visual Genome (no dataset)" in counts["datasets"]:
            lines.append("  items without dataset: RLIPv2 opens their image as VG/images/{image_id}.jpg")
        return "\n".join(lines)
    counts = export_parquet(out, output, min_confidence)
    return f"wrote {counts['relations']} relations of {counts['images']} images to {output}"
