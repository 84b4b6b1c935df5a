"""The shard writer: one shard = `NNNNN.tar` + `NNNNN.parquet` + `NNNNN_stats.json`, committed atomically.

The tar and parquet hold no timings and no wall-clock values (fixed mtimes, stable member order, fixed
JSON formatting), so a shard's bytes depend only on its inputs: a resumed run rewrites an interrupted
shard byte for byte. Each file goes through `sgpipe.output.atomic` (a temporary name, flushed to disk
and renamed; on an object store uploaded under its final name once whole); the `_stats.json` is
written last and is the shard's completion marker.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from sgpipe.errors import EXCLUDED, OK
from sgpipe.output.atomic import (
    atomic_file,
    atomic_write_bytes,
    fsync_folder,
    temp_siblings,
    write_json_atomic,
)
from sgpipe.output.faults import output_fault
from sgpipe.records import Sample, shard_name
from sgpipe.storage import Location, RemotePath, location, read_all

TAR_MTIME = 0  # fixed so tars are reproducible
STATS_SUFFIX = "_stats.json"

PARQUET_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("image_id", pa.int64()),
        ("file_name", pa.string()),
        ("status", pa.string()),
        ("error_message", pa.string()),
        ("n_objects", pa.int32()),
        ("n_captions", pa.int32()),
        ("n_triplets", pa.int32()),
        ("n_candidates", pa.int32()),
        ("n_kept", pa.int32()),
    ]
)


def dumps_json(value: Any) -> bytes:
    """The one JSON encoding of shard content: compact, UTF-8, insertion order (records build it fixed)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def shard_paths(out_dir: Location, index: int) -> dict[str, Location]:
    name = shard_name(index)
    return {
        "tar": out_dir / f"{name}.tar",
        "parquet": out_dir / f"{name}.parquet",
        "stats": out_dir / f"{name}{STATS_SUFFIX}",
    }


def is_shard_complete(out_dir: Location, index: int, names: set[str] | None = None) -> bool:
    """`names`: the folder's listing, when one was made (remote folders), instead of a request per file."""
    paths = shard_paths(out_dir, index)
    if names is not None:
        return all(p.name in names for p in paths.values())
    return all(p.exists() for p in paths.values())


def remove_partial_shard(out_dir: Location, index: int, names: set[str] | None = None) -> None:
    """Drop whatever an interrupted attempt left (final names without a marker, temp files)."""
    paths = shard_paths(out_dir, index)
    if isinstance(out_dir, RemotePath):  # no temporary names there: only final names without a marker
        # The driver cleans from its one listing (`names`). A worker about to rewrite its shard has
        # nothing to do: each upload replaces the object whole, the marker still comes last.
        if names is not None and paths["stats"].name not in names:
            for path in (paths["tar"], paths["parquet"]):
                if path.name in names:
                    path.unlink(missing_ok=True)
        return
    if paths["stats"].exists():
        return
    for path in (paths["tar"], paths["parquet"]):
        path.unlink(missing_ok=True)
    for path in paths.values():  # the marker's too: a writer killed while writing it leaves one
        for leftover in temp_siblings(path):
            leftover.unlink(missing_ok=True)


class _HashingWriter:
    """A write-only file that hashes and counts what passes through it (one pass over the tar bytes)."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.md5 = hashlib.md5()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.size


def _write_tar_atomic(path: Location, members: Iterable[tuple[str, bytes]]) -> tuple[int, str]:
    """Stream the members into the shard's tar atomically; returns (size, md5)."""
    with atomic_file(path) as handle:
        writer = _HashingWriter(handle)
        with tarfile.open(fileobj=writer, mode="w", format=tarfile.USTAR_FORMAT) as tar:  # type: ignore[arg-type]
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = TAR_MTIME
                info.mode = 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return writer.size, writer.md5.hexdigest()


def tar_members(
    samples: list[Sample], provenance: dict[str, Any], write_images: bool
) -> Iterable[tuple[str, bytes]]:
    for sample in samples:
        if not sample.ok:
            continue
        if write_images and sample.image_bytes is not None:
            yield f"{sample.key}.{sample.image_ext}", sample.image_bytes
        yield f"{sample.key}.json", dumps_json(sample.to_record(provenance))


def status_rows(samples: list[Sample]) -> pa.Table:
    columns: dict[str, list] = {name: [] for name in PARQUET_SCHEMA.names}
    for s in samples:
        columns["key"].append(s.key)
        columns["image_id"].append(s.image_id)
        columns["file_name"].append(s.file_name)
        columns["status"].append(s.status)
        columns["error_message"].append(s.error_message)
        columns["n_objects"].append(len(s.objects))
        columns["n_captions"].append(len(s.captions))
        columns["n_triplets"].append(len(s.triplets))
        # candidates as the tag stage made them: the verify stage keeps only those it stores
        columns["n_candidates"].append(s.counters.get("tag_candidates", len(s.relations)))
        columns["n_kept"].append(sum(1 for r in s.relations if r.kept))
    return pa.table(columns, schema=PARQUET_SCHEMA)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    return sink.getvalue().to_pybytes()


def shard_content_stats(samples: list[Sample]) -> dict[str, Any]:
    """Counts that go to `_stats.json` (and are summed into stats.json)."""
    statuses = Counter(s.status for s in samples)
    counters: Counter[str] = Counter()
    predicates: Counter[str] = Counter()
    kept_predicates: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for s in samples:
        counters.update(s.counters)
        if not s.ok:
            continue
        categories.update(b.category for b in s.objects)
        for relation in s.relations:
            predicates[relation.predicate] += 1
            if relation.kept:
                kept_predicates[relation.predicate] += 1
    ok = [s for s in samples if s.ok]
    return {
        "count": len(samples),
        "successes": statuses.get(OK, 0),
        # excluded images (source.exclude) are neither successes nor failures
        "failed_to_process": len(samples) - statuses.get(OK, 0) - statuses.get(EXCLUDED, 0),
        "excluded": statuses.get(EXCLUDED, 0),
        "status": dict(sorted(statuses.items())),
        "counters": dict(sorted(counters.items())),
        "n_objects": sum(len(s.objects) for s in ok),
        "n_captions": sum(len(s.captions) for s in ok),
        "n_triplets": sum(len(s.triplets) for s in ok),
        "n_relations": sum(len(s.relations) for s in ok),
        "n_kept": sum(1 for s in ok for r in s.relations if r.kept),
        "predicates": dict(predicates.most_common()),
        "kept_predicates": dict(kept_predicates.most_common()),
        "categories": dict(categories.most_common()),
    }


def commit_shard(
    out_dir: str | Location,
    shard_index: int,
    members: Iterable[tuple[str, bytes]],
    samples: list[Sample],
    timings: dict[str, Any] | None = None,
    retries: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Commit one shard from ready tar members: tar, parquet rows of `samples`, `_stats.json` last.

    `timings` and `retries` (attempts, batch splits) go to `_stats.json` only: they vary from run to
    run, and the tar and parquet must not."""
    out_dir = location(out_dir)
    paths = shard_paths(out_dir, shard_index)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_partial_shard(out_dir, shard_index)
        size, md5 = _write_tar_atomic(paths["tar"], members)
        atomic_write_bytes(paths["parquet"], _parquet_bytes(status_rows(samples)))
        fsync_folder(out_dir)  # tar and parquet are in place on disk before the marker says so
    except OSError as error:  # creating, cleaning or syncing the folder (the files raise faults already)
        fault = output_fault(error, error.filename or out_dir)
        if fault is None:
            raise
        raise fault from error
    stats = {
        "shard": shard_name(shard_index),
        "url": paths["tar"].name,
        "nsamples": sum(1 for s in samples if s.ok),
        "filesize": size,
        "md5": md5,
        **shard_content_stats(samples),
        "timings": timings or {},
        **({"retries": retries} if retries else {}),
    }
    write_json_atomic(paths["stats"], stats, sync_folder=True)  # last: marks the shard complete
    return stats


def write_shard(
    out_dir: str | Location,
    shard_index: int,
    samples: list[Sample],
    provenance: dict[str, Any],
    write_images: bool = True,
    timings: dict[str, Any] | None = None,
    retries: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write one shard atomically and return its `_stats.json` content."""
    return commit_shard(
        out_dir, shard_index, tar_members(samples, provenance, write_images), samples, timings, retries
    )


def write_shards(
    out_dir: str | Location, samples: Iterable[Sample], samples_per_shard: int, provenance: dict[str, Any]
) -> int:
    """Write a stream of samples as consecutive shards of `samples_per_shard` (the last may hold fewer),
    holding one shard's samples at a time; return how many shards were written."""
    n_shards, batch = 0, []
    for sample in samples:
        batch.append(sample)
        if len(batch) == samples_per_shard:
            write_shard(out_dir, n_shards, batch, provenance)
            n_shards, batch = n_shards + 1, []
    if batch:
        write_shard(out_dir, n_shards, batch, provenance)
        n_shards += 1
    return n_shards


def read_shard_stats(out_dir: Location) -> list[dict[str, Any]]:
    """Every complete shard's `_stats.json`, in shard order."""
    out_dir = location(out_dir)
    if isinstance(out_dir, RemotePath):  # one listing, then the markers fetched concurrently
        pattern = re.compile(rf"[0-9]{{5}}{re.escape(STATS_SUFFIX)}")
        markers = [out_dir / n for n in sorted(out_dir.list_names()) if pattern.fullmatch(n)]
        return [json.loads(data) for data in read_all(markers)]
    stats = []
    for path in sorted(Path(out_dir).glob(f"[0-9][0-9][0-9][0-9][0-9]{STATS_SUFFIX}")):
        stats.append(json.loads(path.read_text()))
    return stats
