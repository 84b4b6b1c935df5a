"""Processing one shard end to end: its samples -> the stages in fixed chunks -> one atomic shard.

Nothing here knows about executors: the same `ShardProcessor` runs in the driver (local), in a Ray
worker (flat layout) or in a shard actor (pools layout). A shard's samples are cut into chunks of
`pipeline.chunk_size` images and each chunk goes through every stage in the table's order, so the
batches a stage sees, hence the bytes written, are the same whatever runs the processor. In the
pools layout the model stages run on a device actor: the processor hands such a chunk to its
`DeviceLink` and works on another chunk meanwhile, with at most `MAX_CHUNKS_IN_FLIGHT` chunks under
way in the process (backpressure: the memory of two chunks of decoded images), which two shards may
share at the boundary between them. The processor
alone drives its own stages' lifecycle: `setup()` once before the first shard, `teardown()` at the end.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Generator, Protocol

import sgpipe
from sgpipe.config import PipelineConfig
from sgpipe.output.writer import write_shard
from sgpipe.pipeline import build_stages, chunk_size
from sgpipe.records import Sample
from sgpipe.stages.base import ErrorHandler, Stage, warn_and_continue
from sgpipe.storage import location

MAX_CHUNKS_IN_FLIGHT = 2


class SampleSource(Protocol):
    def samples(self, index: int) -> list[Sample]: ...


@dataclass(frozen=True)
class ShardJob:
    """What a worker needs beyond the config: the source of its samples, and what its records say."""

    dataset: str
    categories: tuple[str, ...]
    source: Any  # a `SampleSource` (sgpipe.run.sources), pickled to every worker
    stage_names: tuple[str, ...] | None = None  # the table's stages to run; None: the recipe's
    config_hash: str = ""
    base_models: dict[str, Any] = field(default_factory=dict)  # provenance of stages not run here


class DeviceLink(Protocol):
    """The model stages of a device actor (pools layout), as a shard actor reaches them."""

    stage_names: tuple[str, ...]

    def submit(self, stage: str, samples: list[Sample]) -> Any: ...  # a pending call

    def wait_any(self, pending: list[Any]) -> Any: ...  # one of them, done

    def collect(self, pending: Any, samples: list[Sample]) -> tuple[float, int]: ...  # (seconds, splits)

    def describe(self, stage: str) -> dict[str, Any]: ...

    def release(self, samples: list[Sample]) -> None: ...  # the chunk is through: drop what was sent of it


Chunk = Generator[Any, None, None]  # yields pending device calls until the chunk is through


@dataclass
class _Tally:
    """One shard's seconds and batch splits per stage (for its `_stats.json`)."""

    seconds: dict[str, float] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, seconds: float, splits: int) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.splits[name] = self.splits.get(name, 0) + splits


class ShardProcessor:
    """Shards through the stages. With a device link, two shards may run at once in two threads (a
    shard actor starts its next shard while its last chunks are on the device): they share the
    MAX_CHUNKS_IN_FLIGHT chunk slots, and each stage run here serves one chunk at a time."""

    def __init__(
        self,
        config: PipelineConfig,
        job: ShardJob,
        stages: list[Stage] | None = None,
        handler: ErrorHandler = warn_and_continue,
        device: DeviceLink | None = None,
    ):
        self.config = config
        self.job = job
        self.out_dir = location(config.output.dir, config.output.storage_options)
        stages = stages if stages is not None else build_stages(config, list(job.categories), job.stage_names)
        remote = set(device.stage_names) if device is not None else set()
        # (name, the stage run here, or None for the device's): the table's order
        self.steps = [(stage.name, None if stage.name in remote else stage) for stage in stages]
        self.order = [name for name, _ in self.steps]
        self.stages = [stage for _, stage in self.steps if stage is not None]
        self.device = device
        for stage in self.stages:
            stage.handler = handler
        self._set_up = False
        self._setup_lock = threading.Lock()
        self._stage_locks = [threading.Lock() for _ in self.steps]
        self._slots = threading.Semaphore(MAX_CHUNKS_IN_FLIGHT)
        self._turn = threading.Condition()
        self._admitting: list[object] = []  # shards still starting chunks, oldest first

    def setup(self) -> None:
        """Load every stage's models; the first shard does it when nobody did before."""
        with self._setup_lock:
            if not self._set_up:
                for stage in self.stages:
                    stage.setup()
                self._set_up = True

    def teardown(self) -> None:
        """Free the stages' models and threads; a later shard sets them up again."""
        with self._setup_lock:
            if self._set_up:
                for stage in reversed(self.stages):
                    stage.teardown()
                self._set_up = False

    def provenance(self) -> dict[str, Any]:
        models = dict(self.job.base_models)
        for name, stage in self.steps:
            described = stage.describe() if stage is not None else self.device.describe(name)  # type: ignore[union-attr]
            if described:
                models[name] = described
        return {"sgpipe": sgpipe.__version__, "config_hash": self.job.config_hash, "models": models}

    def process_shard(self, index: int, attempts: dict[str, int] | None = None) -> dict[str, Any]:
        """Process and commit shard `index`; `attempts` (the driver's count for this shard, this
        attempt included) is recorded in its `_stats.json`."""
        started = time.perf_counter()  # the first shard's wall time includes loading the models
        self.setup()
        samples = self.job.source.samples(index)
        tally = _Tally()
        size = chunk_size(self.config)
        self._run_chunks([samples[start : start + size] for start in range(0, len(samples), size)], tally)
        timings = {
            "stages": {name: round(tally.seconds.get(name, 0.0), 4) for name in self.order},
            "wall_seconds": round(time.perf_counter() - started, 4),
        }
        retries = {
            "attempts": attempts or {"count": 1, "workers_lost": 0, "timed_out": 0},
            "batch_splits": {name: tally.splits.get(name, 0) for name in self.order},
        }
        return write_shard(
            self.out_dir, index, samples, self.provenance(), self.config.output.images, timings, retries
        )

    def _run_chunks(self, chunks: list[list[Sample]], tally: _Tally) -> None:
        """Each chunk through every stage, holding one of the chunk slots while it is under way: with
        a device link, this shard's chunks (and another shard's) are on the device meanwhile. The older
        of two shards starts all its chunks first, so the newer one begins while the older one's last
        chunks are on the device, rather than both finishing, and leaving the device, together."""
        in_flight: dict[Any, Chunk] = {}
        held = 0
        turn = object()
        with self._turn:
            self._admitting.append(turn)

        def advance(chunk: Chunk) -> None:
            nonlocal held
            pending = next(chunk, None)
            if pending is not None:
                in_flight[pending] = chunk
                return
            held -= 1  # the chunk is through
            self._slots.release()

        def wait_one() -> None:
            advance(in_flight.pop(self.device.wait_any(list(in_flight))))  # type: ignore[union-attr]

        try:
            for chunk in chunks:
                with self._turn:  # an older shard still starting chunks has none of ours under way
                    self._turn.wait_for(lambda: self._admitting[0] is turn)
                # no slot free: move one of ours on; with none of ours under way, another shard's frees one
                while not self._slots.acquire(blocking=not in_flight):
                    wait_one()
                held += 1
                advance(self._chunk(chunk, tally))
            self._done_admitting(turn)
            while in_flight:
                wait_one()
        finally:
            self._done_admitting(turn)
            for _ in range(held):  # an attempt that raised gives its slots back
                self._slots.release()

    def _done_admitting(self, turn: object) -> None:
        with self._turn:
            if turn in self._admitting:
                self._admitting.remove(turn)
                self._turn.notify_all()

    def _chunk(self, chunk: list[Sample], tally: _Tally) -> Chunk:
        for step, (name, stage) in enumerate(self.steps):
            if stage is not None:
                with self._stage_locks[step]:
                    tally.add(name, *stage.run_counted(chunk))
                continue
            todo = [sample for sample in chunk if sample.ok]  # a stage skips the others anyway
            pending = self.device.submit(name, todo)  # type: ignore[union-attr]
            yield pending
            tally.add(name, *self.device.collect(pending, todo))  # type: ignore[union-attr]
        for sample in chunk:
            sample.image = None  # decoded pixels are not needed once the chunk is through
        if self.device is not None:
            self.device.release(chunk)
