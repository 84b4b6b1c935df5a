"""The local executor: every shard in this process, one after another, without Ray.

The guarantees of the Ray pool hold here too: the same `ShardProcessor` writes the same bytes; an
attempt that raises is retried up to `run.shard_attempts` (to the back of the queue); the failure
rate is judged after every shard; an output fault stops the run at once. What differs is what
stops a shard from outside, since there is no worker process to kill:

- SIGINT / SIGTERM raise inside the running shard (`signals.StopRequested`), which stops where it
  is; its partial files are removed and the run ends with its paragraph (exit 130 / 143).
- The shard time limit (`run.shard_timeout_s`, or derived from the shards done) is a timer that
  raises inside the shard (`signals.ShardTimedOut`): the attempt counts as timed out and the shard
  goes to the back of the queue; the models stay loaded, as nothing needs replacing. Code that never
  returns to Python (a hung kernel call) cannot be interrupted in-process: use the Ray executor,
  which kills the worker, where that can happen. A run started outside the main thread has no limit.
"""

from __future__ import annotations

import logging
import os
import time

from sgpipe.config import PipelineConfig
from sgpipe.errors import OutputFault
from sgpipe.output.faults import output_fault
from sgpipe.output.writer import remove_partial_shard
from sgpipe.run.processor import ShardJob, ShardProcessor
from sgpipe.run.signals import ShardTimedOut, StopRequested, StopSignals, time_limit
from sgpipe.run.supervisor import Supervisor

log = logging.getLogger(__name__)


class LocalExecutor:
    def __init__(self, config: PipelineConfig, job: ShardJob, stage_factory=None):
        self.config = config
        self.job = job
        self.stage_factory = stage_factory
        self.running: int | None = None

    def _processor(self) -> ShardProcessor:
        stages = self.stage_factory(self.config, list(self.job.categories)) if self.stage_factory else None
        return ShardProcessor(self.config, self.job, stages)

    def run(self, supervisor: Supervisor) -> None:
        supervisor.halt = lambda: [] if self.running is None else [self.running]
        processor = self._processor()
        try:
            with StopSignals() as stop:
                while (taken := supervisor.next()) is not None:
                    if stop.received is not None:
                        supervisor.book.not_started(taken[0])
                        supervisor.interrupted(stop.received)
                    self._attempt(processor, supervisor, stop, *taken)
                supervisor.finish()
        finally:
            processor.teardown()

    def _attempt(
        self, processor: ShardProcessor, supervisor: Supervisor, stop: StopSignals, index: int, counts: dict
    ) -> None:
        limit = supervisor.time_limit_s()
        started = time.monotonic()
        self.running = index
        try:
            with stop.interrupting(), time_limit(limit):
                shard_stats = processor.process_shard(index, counts)
        except StopRequested as request:
            supervisor.interrupted(request.signal_number)
        except ShardTimedOut:
            self.running = None
            if not supervisor.committed(index):
                remove_partial_shard(processor.out_dir, index)
                log.warning("shard %05d: timed out in pid %d", index, os.getpid())
                reason = f"running for more than {limit:.0f} s (run.shard_timeout_s)"
                supervisor.failed(index, reason, worker_lost=False, timed_out=True)
            return
        except OutputFault as fault:
            supervisor.output_fault(fault)
        except Exception as error:  # noqa: BLE001 - the shard's own error: its attempt failed
            fault = output_fault(error, processor.out_dir)
            if fault is not None:
                supervisor.output_fault(fault)
            self.running = None
            remove_partial_shard(processor.out_dir, index)
            log.debug("shard %05d raised", index, exc_info=True)
            supervisor.failed(index, f"{type(error).__name__}: {error}"[:200], worker_lost=False)
            return
        self.running = None
        supervisor.done(index, shard_stats, time.monotonic() - started)
