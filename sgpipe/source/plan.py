"""Planning: a source config -> per-shard entry files, built once and reused on resume.

COCO-format files go through pycocotools, or through the streaming index when larger than
`source.stream_threshold_mb` (Objects365); both give the same plan for the same input. A folder of
images is listed once and cut into shards of `output.samples_per_shard` entries, in path order. A
webdataset source is planned without reading a byte of its tars: output shard N is the Nth tar of
`source.shards` (expanded in order), so the plan is the tar list itself and a tar's items are
counted by the worker that reads it (with `source.limit`, the planner counts the first tars' items
to know where to stop). The plan lives in `OUT/.sgpipe/plan/` with a fingerprint of its inputs, so
a resumed run skips planning and reads the same shards. A remote OUT gets a plan indexed in a local
temporary folder and uploaded (`plan.json` last), where workers on any node read their shard's entries.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sgpipe.config import SourceConfig
from sgpipe.errors import SourceError
from sgpipe.output.atomic import fsync_folder, upload_files_whole, write_json_atomic
from sgpipe.records import ImageEntry
from sgpipe.source.coco import load_coco_entries
from sgpipe.source.coco_captions import load_captions
from sgpipe.source.entries import parse_entries, read_entries, write_entries
from sgpipe.source.folder import folder_entries, list_files
from sgpipe.source.stream_index import stream_index
from sgpipe.source.webdataset import count_tar_items
from sgpipe.storage import Location, RemotePath, fingerprint, location, size_of

MANIFEST = "plan.json"


@dataclass
class SourcePlan:
    dataset: str
    method: str  # "pycocotools" | "stream" | "folder" | "webdataset"
    categories: list[str]
    shard_sizes: list[int | None]  # None: a tar whose items are counted as it is read
    counters: dict[str, int]
    fingerprint: dict
    kind: str = "coco"
    inputs: list[str] = field(default_factory=list)  # webdataset: the tar of each output shard

    @property
    def n_images(self) -> int | None:
        """The images of every shard; None while some are counted only as they are read."""
        return None if None in self.shard_sizes else sum(self.shard_sizes)  # type: ignore[arg-type]

    @property
    def n_shards(self) -> int:
        return len(self.shard_sizes)

    def images_in(self, shards: list[int]) -> int | None:
        sizes = [self.shard_sizes[i] for i in shards]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]


def plan_dir_of(out_dir: Location) -> Location:
    return location(out_dir) / ".sgpipe" / "plan"


def shard_entries_path(plan_dir: Location, index: int) -> Location:
    return plan_dir / f"{index:05d}.jsonl"


def read_shard_entries(plan_dir: Location, index: int) -> list[ImageEntry]:
    path = shard_entries_path(plan_dir, index)
    if isinstance(path, RemotePath):
        return parse_entries(path.read_text().splitlines())
    return read_entries(path)


def read_plan(plan_dir: Location) -> SourcePlan:
    return SourcePlan(**json.loads((plan_dir / MANIFEST).read_text()))


def _file_fingerprint(path: str, options: dict) -> dict | None:
    return fingerprint(location(path, options)) if path else None


def choose_method(config: SourceConfig) -> str:
    if config.index != "auto":
        return config.index
    size_mb = size_of(location(config.instances, config.storage_options)) / 2**20
    return "stream" if size_mb > config.stream_threshold_mb else "pycocotools"


def _digest(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


def source_inputs(config: SourceConfig) -> list[str]:
    """What a folder or webdataset plan is made of, found with one listing at most: the folder's
    files, or the expanded tar URLs. Nothing for a COCO source (its annotation file is the input)."""
    if config.kind == "folder":
        names = list_files(location(config.images, config.storage_options))
        if not names:
            raise SourceError(f"source.images {config.images!r}: no files found under it")
        return names
    if config.kind == "webdataset":
        from sgpipe.shards import expand_urls

        urls = [url for item in config.shards for url in expand_urls(item, config.storage_options)]
        repeated = sorted({url for url in urls if urls.count(url) > 1}) if len(set(urls)) < len(urls) else []
        if repeated:
            raise SourceError(f"source.shards names the same tar twice: {', '.join(repeated[:3])}")
        return urls
    return []


def _fingerprint(config: SourceConfig, samples_per_shard: int, inputs: list[str]) -> dict[str, Any]:
    if config.kind == "coco":
        found = {
            "instances": _file_fingerprint(config.instances, config.storage_options),
            "captions": _file_fingerprint(config.captions, config.storage_options),
        }
    else:
        found = {"kind": config.kind, "inputs": len(inputs), "inputs_sha256": _digest(inputs)}
    if config.kind == "webdataset":
        samples_per_shard = 0  # one shard per tar
    return {**found, "samples_per_shard": samples_per_shard, "limit": config.limit, "dataset": config.name}


def build_plan(config: SourceConfig, samples_per_shard: int, plan_dir: Location) -> SourcePlan:
    """Reuse a plan whose inputs are unchanged; otherwise index the source into shard files."""
    inputs = source_inputs(config)
    fingerprint = _fingerprint(config, samples_per_shard, inputs)
    manifest = plan_dir / MANIFEST
    if manifest.exists():
        existing = read_plan(plan_dir)
        if existing.fingerprint == fingerprint:
            return existing
    if isinstance(plan_dir, RemotePath):
        with tempfile.TemporaryDirectory(prefix="sgpipe-plan-") as local:
            plan = _write_plan(config, samples_per_shard, Path(local), inputs, fingerprint)
            names = [shard_entries_path(Path(local), i).name for i in range(plan.n_shards)]
            if plan.kind != "webdataset":
                upload_files_whole(Path(local), names, plan_dir)
            write_json_atomic(manifest, asdict(plan))  # last: the plan is whole
        return plan
    return _write_plan(config, samples_per_shard, plan_dir, inputs, fingerprint)


def _write_plan(
    config: SourceConfig, samples_per_shard: int, plan_dir: Path, inputs: list[str], fingerprint: dict
) -> SourcePlan:
    plan_dir.mkdir(parents=True, exist_ok=True)
    for old in plan_dir.glob("*.jsonl"):
        old.unlink()
    if config.kind == "webdataset":
        plan = _plan_tars(config, inputs, fingerprint)
    elif config.kind == "folder":
        entries, counters = folder_entries(inputs)
        sizes = _write_shards(plan_dir, entries[: config.limit or None], samples_per_shard)
        plan = SourcePlan(config.name, "folder", [], sizes, counters, fingerprint, kind="folder")
    else:
        plan = _plan_coco(config, samples_per_shard, plan_dir, fingerprint)
    fsync_folder(plan_dir)  # the entry files are on disk before the manifest that lists them
    write_json_atomic(plan_dir / MANIFEST, asdict(plan), sync_folder=True)
    return plan


def _write_shards(plan_dir: Path, entries: list[ImageEntry], samples_per_shard: int) -> list[int | None]:
    sizes: list[int | None] = []
    for index, start in enumerate(range(0, len(entries), samples_per_shard)):
        chunk = entries[start : start + samples_per_shard]
        write_entries(shard_entries_path(plan_dir, index), chunk)
        sizes.append(len(chunk))
    return sizes


def _plan_coco(config: SourceConfig, samples_per_shard: int, plan_dir: Path, fingerprint: dict) -> SourcePlan:
    source = lambda url: location(url, config.storage_options)  # noqa: E731
    captions = load_captions(source(config.captions)) if config.captions else None
    method = choose_method(config)
    if method == "stream":
        shard_file = lambda index: shard_entries_path(plan_dir, index)  # noqa: E731
        sizes, categories, counters = stream_index(
            source(config.instances), plan_dir, samples_per_shard, config.limit, captions, shard_file
        )
    else:
        entries, categories, counters = load_coco_entries(source(config.instances), captions)
        sizes = _write_shards(plan_dir, entries[: config.limit or None], samples_per_shard)
    return SourcePlan(config.name, method, categories, list(sizes), counters, fingerprint)


def _plan_tars(config: SourceConfig, urls: list[str], fingerprint: dict) -> SourcePlan:
    """One shard per tar; with `source.limit`, the first tars' items are counted up to it."""
    sizes: list[int | None] = [None] * len(urls)
    if config.limit:
        sizes, left = [], config.limit
        for url in urls:
            sizes.append(count_tar_items(url, config.storage_options, limit=left))
            left -= sizes[-1]
            if not left:
                break
    inputs = urls[: len(sizes)]
    return SourcePlan(config.name, "webdataset", [], sizes, {}, fingerprint, kind="webdataset", inputs=inputs)
