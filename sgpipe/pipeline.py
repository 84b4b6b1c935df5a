"""Processing one shard end to end: entries -> samples -> stages in fixed batches -> atomic shard.

Nothing here knows about Ray: the runner ships shard indices to workers that each own one
`ShardProcessor`. The processor alone drives its stages' lifecycle: `setup()` once before the
first shard, `teardown()` when the worker is done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import sgpipe
from sgpipe import errors
from sgpipe.config import PipelineConfig
from sgpipe.leakage.exclude import load_exclusions
from sgpipe.output.writer import write_shard
from sgpipe.records import ImageEntry, Sample, sample_key
from sgpipe.source.decode import DecodeStage
from sgpipe.source.plan import plan_dir_of
from sgpipe.source.readers import ShardReader
from sgpipe.stages.base import ErrorHandler, Resources, Stage, warn_and_continue
from sgpipe.storage import location

CHUNK_SIZE = 64  # images decoded and held at once: bounds memory, fixes batch composition


def chunk_size(config: PipelineConfig) -> int:
    """Images per chunk: at least `CHUNK_SIZE`, and never fewer than a model stage's batch, or the
    GPU would only ever see chunk-sized batches (larger caption batches run faster: docs/BENCHMARKS.md)."""
    sizes = [CHUNK_SIZE]
    if config.caption.enabled:
        sizes.append(config.caption.batch_size)
    if config.detect.enabled:
        sizes.append(config.detect.batch_size)
    if config.verify.enabled:
        sizes.append(config.verify.batch_size)
    return max(sizes)


@dataclass(frozen=True)
class ShardJob:
    """What a worker needs to know about the source, beyond the config."""

    dataset: str
    categories: tuple[str, ...]


def build_stages(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    """The recipe's stages in order. Imports are local: a worker loads only what it runs."""
    images = config.source.images if config.source.kind != "webdataset" else ""  # tars carry their images
    stages: list[Stage] = [
        DecodeStage(
            location(images, config.source.storage_options) if images else None,
            config.source.max_pixels,
            config.run.decode_threads,
            keep_bytes=config.output.images,
        )
    ]
    if config.caption.enabled:
        from sgpipe.stages.caption import CaptionStage

        run = config.run
        stages.append(CaptionStage(config.caption, device=run.device, seed=run.seed, gpus=run.gpus_per_worker))
    stages.append(parse_stage(config))
    if config.detect.enabled:
        from sgpipe.stages.detect import DetectStage, query_vocabulary

        run = config.run
        stages.append(DetectStage(config.detect, device=run.device, gpus=run.gpus_per_worker))
        categories = list(dict.fromkeys(categories + query_vocabulary(config.detect.vocabulary)))
    stages.append(tag_stage(config, categories))
    if config.verify.enabled:
        from sgpipe.stages.verify import VerifyStage

        run = config.run
        stages.append(
            VerifyStage(config.verify, device=run.device, gpus=run.gpus_per_worker, vocabulary=config.tag.vocabulary)
        )
    return stages


def parse_stage(config: PipelineConfig) -> Stage:
    """The parse stage of `parse.backend`: rules (default), seq2seq, or sng (SceneGraphParser, RLIPv2's)."""
    if config.parse.backend == "seq2seq":
        from sgpipe.stages.parse_seq2seq import Seq2SeqParseStage

        return Seq2SeqParseStage(config.parse, device=config.run.device, gpus=config.run.gpus_per_worker)
    if config.parse.backend == "sng":
        from sgpipe.stages.parse_sng import SngParseStage

        return SngParseStage(config.parse)
    from sgpipe.stages.parse import ParseStage

    return ParseStage(config.parse)


def tag_stage(config: PipelineConfig, categories: list[str]) -> Stage:
    """The tag stage of `tag.matching`: lexicon grounding (default) or RLIPv2's matching."""
    if config.tag.matching == "rlipv2":
        from sgpipe.stages.tag_rlipv2 import RLIPv2TagStage

        return RLIPv2TagStage(config.tag)
    from sgpipe.stages.tag import TagStage

    return TagStage(config.tag, categories)


def worker_resources(stages: list[Stage]) -> Resources:
    """What one worker running `stages` one after another needs: the most any of them declares."""
    return Resources(
        cpus=max((s.resources.cpus for s in stages), default=1.0),
        gpus=max((s.resources.gpus for s in stages), default=0.0),
    )


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


class ShardProcessor:
    def __init__(
        self,
        config: PipelineConfig,
        job: ShardJob,
        stages: list[Stage] | None = None,
        handler: ErrorHandler = warn_and_continue,
    ):
        self.config = config
        self.job = job
        self.out_dir = location(config.output.dir, config.output.storage_options)
        self.plan_dir = plan_dir_of(self.out_dir)
        source = config.source
        self.reader = ShardReader(source, self.plan_dir)
        self.excluded = load_exclusions(source.exclude, source.storage_options) if source.exclude else {}
        self.stages = stages if stages is not None else build_stages(config, list(job.categories))
        for stage in self.stages:
            stage.handler = handler
        self._set_up = False

    def setup(self) -> None:
        """Load every stage's models; the first shard does it when nobody did before."""
        if not self._set_up:
            for stage in self.stages:
                stage.setup()
            self._set_up = True

    def teardown(self) -> None:
        """Free the stages' models and threads; a later shard sets them up again."""
        if self._set_up:
            for stage in reversed(self.stages):
                stage.teardown()
            self._set_up = False

    def provenance(self) -> dict[str, Any]:
        return {
            "sgpipe": sgpipe.__version__,
            "config_hash": self.config.content_hash(),
            "models": {s.name: s.describe() for s in self.stages if s.describe()},
        }

    def process_shard(self, index: int, attempts: dict[str, int] | None = None) -> dict[str, Any]:
        """Process and commit shard `index`; `attempts` (the driver's count for this shard, this
        attempt included) is recorded in its `_stats.json`."""
        started = time.perf_counter()  # the first shard's wall time includes loading the models
        self.setup()
        samples = [
            entry_to_sample(entry, self.job.dataset, self.excluded, image)
            for entry, image in self.reader.items(index)
        ]
        before = {s.name: s.seconds for s in self.stages}
        splits_before = {s.name: s.retries for s in self.stages}
        size = chunk_size(self.config)
        for start in range(0, len(samples), size):
            chunk = samples[start : start + size]
            for stage in self.stages:
                stage(chunk)
            for sample in chunk:
                sample.image = None  # decoded pixels are not needed once the chunk is through
        timings = {
            "stages": {s.name: round(s.seconds - before[s.name], 4) for s in self.stages},
        }
        timings["wall_seconds"] = round(time.perf_counter() - started, 4)
        retries = {
            "attempts": attempts or {"count": 1, "workers_lost": 0, "timed_out": 0},
            "batch_splits": {s.name: s.retries - splits_before[s.name] for s in self.stages},
        }
        return write_shard(
            self.out_dir, index, samples, self.provenance(), self.config.output.images, timings, retries
        )
