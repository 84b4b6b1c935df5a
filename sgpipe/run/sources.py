"""Where a run's samples come from: one object the driver asks for the plan and the shards to do,
and each worker asks for one shard's samples (so it must pickle small).

- `PlannedSource`: the recipe's `source` section (coco, folder or webdataset), planned once under
  `OUT/.sgpipe/plan`; a shard's samples are its entries (`source.readers`), with the image bytes
  when the source carries them (a tar), before any image is decoded.
- `ShardsSource`: the shards of an earlier run (`sgpipe reverify`): its complete shards, each
  rebuilt in parquet order (ok samples from the tar, with their images decoded; failed ones from
  their row), to go through the verify stage again.
"""

from __future__ import annotations

import io
import json
from typing import Any, Mapping

from sgpipe import errors
from sgpipe.config import PipelineConfig
from sgpipe.errors import OK, SgpipeError
from sgpipe.records import ImageEntry, Sample, sample_key
from sgpipe.source.plan import SourcePlan, build_plan, plan_dir_of
from sgpipe.storage import Location, RemotePath, listing, location


def entry_to_sample(
    entry: ImageEntry,
    dataset: str,
    excluded: Mapping[int, str] | None = None,
    image_bytes: bytes | None = None,
) -> Sample:
    """A sample of one planned entry; `image_bytes` when the source carries the image itself (a tar)."""
    sample = Sample(
        key=sample_key(dataset, entry.image_id),
        dataset=dataset,
        image_id=entry.image_id,
        file_name=entry.file_name,
        width=entry.width,
        height=entry.height,
        objects=list(entry.objects),
        captions=list(entry.captions),
        image_bytes=image_bytes,
        source_key=entry.source_key,
        metadata=entry.metadata,
        annotation_categories=entry.annotation_categories,
    )
    for reason, count in (*entry.dropped_boxes.items(), *entry.counters.items()):
        sample.count(reason, count)
    if entry.duplicate:
        sample.fail(
            errors.FAILED_DUPLICATE_ID, f"image id {entry.image_id} repeated; its first entry is kept"
        )
    elif excluded and entry.image_id in excluded:
        sample.fail(errors.EXCLUDED, excluded[entry.image_id])  # a status, not a failure
    elif entry.failure:  # known before any image is read (a `.txt` without its image)
        sample.fail(entry.failure, entry.failure_message)
    return sample


class PlannedSource:
    """The recipe's source (COCO-format instances, captions, exclusions)."""

    stage_names: tuple[str, ...] | None = None  # every stage of the recipe
    reads_source = True  # preflight checks the source section's files

    def __init__(self, config: PipelineConfig):
        self.source = config.source
        self.samples_per_shard = config.output.samples_per_shard
        self.plan_dir = plan_dir_of(location(config.output.dir, config.output.storage_options))
        self._excluded: dict[int, str] | None = None
        self._reader: Any = None  # a `ShardReader`, made in the worker
        self._dataset = config.source.name

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_excluded": None, "_reader": None}  # a worker reads these itself

    def plan(self) -> SourcePlan:
        return build_plan(self.source, self.samples_per_shard, self.plan_dir)

    def shards(self, plan: SourcePlan) -> list[int]:
        return list(range(plan.n_shards))

    def hash_extra(self) -> dict[str, Any] | None:
        return None  # the config says it all

    def run_info(self) -> dict[str, Any]:
        return {}

    def base_models(self) -> dict[str, Any]:
        return {}

    def carried_failures(self) -> dict[str, int]:
        return {}

    def samples(self, index: int) -> list[Sample]:
        if self._excluded is None:
            from sgpipe.leakage.exclude import load_exclusions

            exclude = self.source.exclude
            self._excluded = load_exclusions(exclude, self.source.storage_options) if exclude else {}
        if self._reader is None:
            from sgpipe.source.readers import ShardReader

            self._reader = ShardReader(self.source, self.plan_dir)
        return [
            entry_to_sample(entry, self._dataset, self._excluded, image)
            for entry, image in self._reader.items(index)
        ]


class ShardsSource:
    """The complete shards of an earlier run, to be re-scored."""

    stage_names = ("verify",)
    reads_source = False

    def __init__(self, folder: Location):
        self.folder = folder
        run_path = folder / "run.json"
        self.run = json.loads(run_path.read_text()) if run_path.exists() else {}

    def _stats(self) -> list[dict[str, Any]]:
        from sgpipe.output.writer import read_shard_stats

        return read_shard_stats(self.folder)

    def plan(self) -> SourcePlan:
        stats = {int(s["shard"]): s for s in self._stats()}
        if not stats:
            raise SgpipeError(f"no complete shards in {self.folder}")
        sizes = [stats[i]["count"] if i in stats else 0 for i in range(max(stats) + 1)]
        dataset = (self.run.get("dataset") or {}).get("name") or "unknown"
        return SourcePlan(dataset, "shards", [], sizes, {}, {"shards": str(self.folder)})

    def shards(self, plan: SourcePlan) -> list[int]:
        """Its complete shards (an incomplete one has nothing trustworthy to re-score)."""
        from sgpipe.output.writer import is_shard_complete

        names = listing(self.folder)
        return [i for i in range(plan.n_shards) if is_shard_complete(self.folder, i, names)]

    def hash_extra(self) -> dict[str, Any]:
        return {"reverify_of": self.run.get("config_hash")}

    def run_info(self) -> dict[str, Any]:
        return {"reverify": {"source": str(self.folder), "source_config_hash": self.run.get("config_hash")}}

    def carried_failures(self) -> dict[str, int]:
        """The earlier run's failures per shard: they come over as they were, judged by that run."""
        return {s["shard"]: s["failed_to_process"] for s in self._stats()}

    def base_models(self) -> dict[str, Any]:
        """The earlier run's model records, for the stages this run does not redo."""
        from sgpipe.output.writer import shard_paths

        index = self.shards(self.plan())[0]
        for item in _iter_items(shard_paths(self.folder, index)["tar"]):
            return dict(item.record.get("provenance", {}).get("models", {}))
        return {}

    def samples(self, index: int) -> list[Sample]:
        """The shard's entries in parquet order: ok ones rebuilt from the tar, failed ones from their row."""
        import pyarrow.parquet as pq
        from PIL import Image

        from sgpipe.output.writer import shard_paths

        paths = shard_paths(self.folder, index)
        by_key: dict[str, Sample] = {}
        for item in _iter_items(paths["tar"]):
            if item.image_bytes is None:
                raise SgpipeError(
                    f"{paths['tar']} holds no images (written with output.images false): reverify needs them"
                )
            sample = Sample.from_record(item.record)
            sample.image_bytes, sample.image_ext = item.image_bytes, item.image_ext or "jpg"
            sample.image = Image.open(io.BytesIO(item.image_bytes)).convert("RGB")
            by_key[sample.key] = sample
        samples = []
        for row in pq.read_table(io.BytesIO(paths["parquet"].read_bytes())).to_pylist():
            if row["status"] == OK:
                samples.append(by_key[row["key"]])
                continue
            failed = Sample(row["key"], row["key"].rsplit("-", 1)[0], row["image_id"], row["file_name"], 0, 0)
            failed.fail(row["status"], row["error_message"])
            samples.append(failed)
        return samples


def _iter_items(tar: Location) -> Any:
    from sgpipe.shards import iter_shard_samples

    options = tar.options if isinstance(tar, RemotePath) else None
    return iter_shard_samples([str(tar)], options)
