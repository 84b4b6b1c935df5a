"""The base of every batch stage: batching, timing, split-and-retry and failure bookkeeping.

A subclass sets `name` and `failure_status`, passes its batch size to `Stage.__init__`, loads its
models in `setup()` and frees them in `teardown()`, and writes `process()`, which fills fields of the
ok samples of one batch in place (and keeps no per-call state on `self`: a device actor may run two
calls at once, unless the stage's table entry says `concurrent=False`). Only the code that runs
stages (`sgpipe.run.processor.ShardProcessor`, a device actor) calls `setup()` (once per worker,
before the first batch, never in `__init__`: a stage object stays cheap to build and ship) and
`teardown()` (at the end). When `process` raises on a batch (a CUDA out-of-memory, a bad sample),
the batch is split in halves and retried, so only the samples that still fail alone get the failure
status; the rest of the shard goes on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from sgpipe.records import Sample

log = logging.getLogger(__name__)

# Per-sample exception policy: in production a failing sample gets a status and the run goes
# on; tests pass `reraise` to see the traceback.
ErrorHandler = Callable[[Exception, Sample], None]


def warn_and_continue(error: Exception, sample: Sample) -> None:
    log.warning("sample %s failed: %s: %s", sample.key, type(error).__name__, error)


def reraise(error: Exception, sample: Sample) -> None:
    raise error


@dataclass(frozen=True)
class Resources:
    """What one running copy of a stage needs, as its entry in the table of stages declares it
    (`sgpipe.pipeline`); the Ray executor sizes its actors by it (`sgpipe.run.layout`). A stage that
    declares a GPU is a model stage: in the pools layout it runs on the device actors."""

    cpus: float = 1.0
    gpus: float = 0.0


class Stage:
    name: str = "stage"
    failure_status: str = "failed"

    def __init__(self, batch_size: int = 32, resources: Resources = Resources()) -> None:
        if batch_size < 1:
            raise ValueError(f"{self.name}: batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.resources = resources
        self.seconds = 0.0
        self.samples_processed = 0
        self.retries = 0
        self.handler: ErrorHandler = warn_and_continue

    def setup(self) -> None:
        """Load models and heavy resources; called once per worker before the first batch."""

    def teardown(self) -> None:
        """Free what `setup()` loaded; called once at the end. `describe()` still answers after it."""

    def process(self, samples: list[Sample]) -> None:
        raise NotImplementedError

    def describe(self) -> dict:
        """Model ids and settings recorded in run.json and the records' provenance."""
        return {}

    def __call__(self, samples: list[Sample]) -> list[Sample]:
        self.run_counted(samples)
        return samples

    def run_counted(self, samples: list[Sample]) -> tuple[float, int]:
        """Run on the ok samples in batches; returns this call's seconds and batch splits, which stay
        right when a device actor runs two calls at once (the totals are shared)."""
        started = time.perf_counter()
        todo = [s for s in samples if s.ok]
        splits = [0]
        for start in range(0, len(todo), self.batch_size):
            self._run_batch(todo[start : start + self.batch_size], splits)
        seconds = time.perf_counter() - started
        self.samples_processed += len(todo)
        self.seconds += seconds
        self.retries += splits[0]
        return seconds, splits[0]

    def _run_batch(self, batch: list[Sample], splits: list[int]) -> None:
        try:
            self.process(batch)
        except Exception as error:  # noqa: BLE001 - isolating bad samples is the point
            if len(batch) == 1:
                self.handler(error, batch[0])
                batch[0].fail(self.failure_status, f"{self.name}: {type(error).__name__}: {error}"[:1000])
                return
            splits[0] += 1
            log.info("%s: batch of %d raised %s; splitting and retrying", self.name, len(batch), error)
            middle = len(batch) // 2
            self._run_batch(batch[:middle], splits)
            self._run_batch(batch[middle:], splits)

    def stats(self) -> dict:
        return {"seconds": round(self.seconds, 3), "samples": self.samples_processed, "retries": self.retries}
