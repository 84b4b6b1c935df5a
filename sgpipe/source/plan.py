"""Planning: a source config -> per-shard entry files, built once and reused on resume.

Small files go through pycocotools; files over `source.stream_threshold_mb` (Objects365) through the
streaming index. Both give the same plan for the same input. The plan lives in `OUT/.sgpipe/plan/`
with a fingerprint of its inputs, so a resumed run skips planning and reads the same shards. A remote
OUT gets a plan indexed in a local temporary folder and uploaded (`plan.json` last), where workers on
any node read their shard's entries.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from sgpipe.config import SourceConfig
from sgpipe.output.atomic import fsync_folder, upload_files_whole, write_json_atomic
from sgpipe.records import ImageEntry
from sgpipe.source.coco import load_coco_entries
from sgpipe.source.coco_captions import load_captions
from sgpipe.source.entries import parse_entries, read_entries, write_entries
from sgpipe.source.stream_index import stream_index
from sgpipe.storage import Location, RemotePath, fingerprint, location, size_of


@dataclass
class SourcePlan:
    dataset: str
    method: str  # "pycocotools" | "stream"
    categories: list[str]
    shard_sizes: list[int]
    counters: dict[str, int]
    fingerprint: dict

    @property
    def n_images(self) -> int:
        return sum(self.shard_sizes)

    @property
    def n_shards(self) -> int:
        return len(self.shard_sizes)


def plan_dir_of(out_dir: Location) -> Location:
    return location(out_dir) / ".sgpipe" / "plan"


def shard_entries_path(plan_dir: Location, index: int) -> Location:
    return plan_dir / f"{index:05d}.jsonl"


def read_shard_entries(plan_dir: Location, index: int) -> list[ImageEntry]:
    path = shard_entries_path(plan_dir, index)
    if isinstance(path, RemotePath):
        return parse_entries(path.read_text().splitlines())
    return read_entries(path)


def _file_fingerprint(path: str, options: dict) -> dict | None:
    return fingerprint(location(path, options)) if path else None


def choose_method(config: SourceConfig) -> str:
    if config.index != "auto":
        return config.index
    size_mb = size_of(location(config.instances, config.storage_options)) / 2**20
    return "stream" if size_mb > config.stream_threshold_mb else "pycocotools"


def build_plan(config: SourceConfig, samples_per_shard: int, plan_dir: Location) -> SourcePlan:
    """Reuse a plan whose inputs are unchanged; otherwise index the source into shard files."""
    fingerprint = {
        "instances": _file_fingerprint(config.instances, config.storage_options),
        "captions": _file_fingerprint(config.captions, config.storage_options),
        "samples_per_shard": samples_per_shard,
        "limit": config.limit,
        "dataset": config.name,
    }
    manifest = plan_dir / "plan.json"
    if manifest.exists():
        existing = json.loads(manifest.read_text())
        if existing.get("fingerprint") == fingerprint:
            return SourcePlan(**existing)
    if isinstance(plan_dir, RemotePath):
        with tempfile.TemporaryDirectory(prefix="sgpipe-plan-") as local:
            plan = build_plan(config, samples_per_shard, Path(local))
            names = [shard_entries_path(Path(local), i).name for i in range(plan.n_shards)]
            upload_files_whole(Path(local), names, plan_dir)
            write_json_atomic(manifest, asdict(plan))  # last: the plan is whole
        return plan
    plan_dir.mkdir(parents=True, exist_ok=True)
    for old in plan_dir.glob("*.jsonl"):
        old.unlink()
    source = lambda url: location(url, config.storage_options)  # noqa: E731
    captions = load_captions(source(config.captions)) if config.captions else None
    method = choose_method(config)
    shard_file = lambda index: shard_entries_path(plan_dir, index)  # noqa: E731
    if method == "stream":
        sizes, categories, counters = stream_index(
            source(config.instances), plan_dir, samples_per_shard, config.limit, captions, shard_file
        )
    else:
        entries, categories, counters = load_coco_entries(source(config.instances), captions)
        if config.limit:
            entries = entries[: config.limit]
        sizes = []
        for index, start in enumerate(range(0, len(entries), samples_per_shard)):
            chunk = entries[start : start + samples_per_shard]
            write_entries(shard_file(index), chunk)
            sizes.append(len(chunk))
    plan = SourcePlan(config.name, method, categories, sizes, counters, fingerprint)
    fsync_folder(plan_dir)  # the entry files are on disk before the manifest that lists them
    write_json_atomic(manifest, asdict(plan), sync_folder=True)
    return plan
