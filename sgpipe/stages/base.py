"""The base of every batch stage: batching, timing, split-and-retry and failure bookkeeping.

A subclass sets `name` and `failure_status`, loads its models in `setup()` (called on the worker,
never in `__init__`, so a stage object stays cheap to build and ship) and writes `process()`, which
fills fields of the ok samples of one batch in place. When `process` raises on a batch (a CUDA
out-of-memory, a bad sample), the batch is split in halves and retried, so only the samples that
still fail alone get the failure status; the rest of the shard goes on.
"""

from __future__ import annotations

import logging
import time
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


class Stage:
    name: str = "stage"
    failure_status: str = "failed"
    batch_size: int = 32

    def __init__(self) -> None:
        self.seconds = 0.0
        self.samples_processed = 0
        self.retries = 0
        self.handler: ErrorHandler = warn_and_continue
        self._ready = False

    def setup(self) -> None:
        """Load models and heavy resources; called once per worker before the first batch."""

    def process(self, samples: list[Sample]) -> None:
        raise NotImplementedError

    def describe(self) -> dict:
        """Model ids and settings recorded in run.json and the records' provenance."""
        return {}

    def __call__(self, samples: list[Sample]) -> list[Sample]:
        if not self._ready:
            self.setup()
            self._ready = True
        started = time.perf_counter()
        todo = [s for s in samples if s.ok]
        for start in range(0, len(todo), self.batch_size):
            self._run_batch(todo[start : start + self.batch_size])
        self.samples_processed += len(todo)
        self.seconds += time.perf_counter() - started
        return samples

    def _run_batch(self, batch: list[Sample]) -> None:
        try:
            self.process(batch)
        except Exception as error:  # noqa: BLE001 - isolating bad samples is the point
            if len(batch) == 1:
                self.handler(error, batch[0])
                batch[0].fail(self.failure_status, f"{self.name}: {type(error).__name__}: {error}"[:1000])
                return
            self.retries += 1
            log.info("%s: batch of %d raised %s; splitting and retrying", self.name, len(batch), error)
            middle = len(batch) // 2
            self._run_batch(batch[:middle])
            self._run_batch(batch[middle:])

    def stats(self) -> dict:
        return {"seconds": round(self.seconds, 3), "samples": self.samples_processed, "retries": self.retries}
