"""The driver's side of a run that no executor changes: which shard runs next, what each attempt's
outcome means, when the run must stop, and the paragraph it stops with.

An executor (in this process, or a pool of Ray actors) asks `next()` for work and reports every
attempt: `done`, `failed` (its worker died or it raised: retried up to `run.shard_attempts`), or
an `OutputFault` (the output refuses writes: the run stops at once, no image counted as failed).
The supervisor judges the failure rate after every outcome and turns a stop (error rate, a signal,
an output fault, no worker left) into one paragraph, after the executor's `halt` has stopped the
work in flight and the partial files of those shards are gone.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from typing import Any, Callable, NoReturn

from sgpipe.config import PipelineConfig
from sgpipe.errors import ErrorRateExceeded, Interrupted, OutputFault, RunStopped, ShardsFailed
from sgpipe.output.failed_shards import write_failed_shards
from sgpipe.output.writer import is_shard_complete, read_shard_stats, remove_partial_shard, shard_paths
from sgpipe.run.attempts import AttemptBook, counts_from, end_paragraph, shard_timeout
from sgpipe.run.progress import Progress, failure_rate
from sgpipe.run.redo import REDO_ADVICE
from sgpipe.source.plan import SourcePlan
from sgpipe.storage import Location, listing

log = logging.getLogger(__name__)
HEARTBEAT_S = 30.0  # a line while nothing finishes, so a quiet run never looks hung


class Supervisor:
    def __init__(
        self,
        config: PipelineConfig,
        plan: SourcePlan,
        todo: list[int],
        out_dir: Location,
        options: Any,
        carried: dict[str, int] | None = None,  # failures per shard name an earlier run judged (reverify)
    ):
        self.config = config
        self.plan = plan
        self.todo = todo
        self.out_dir = out_dir
        self.show_progress = options.progress
        self.book = AttemptBook(todo, config.run.shard_attempts)
        self.progress = Progress(len(todo), options.progress, options.metrics_path)
        self.done_stats = read_shard_stats(out_dir)
        self.carried = carried or {}
        # small datasets are judged once they are through; large ones after the first N images
        known = plan.n_images if plan.n_images is not None else config.run.min_samples_for_error_rate
        self.threshold = max(1, min(config.run.min_samples_for_error_rate, known))
        self.last_news = time.monotonic()
        # set by the executor: stop the work in flight, and return the shards it held
        self.halt: Callable[[], list[int]] = lambda: []

    def next(self) -> tuple[int, dict[str, int]] | None:
        """The next shard and its attempt counts (this one included), or None when none is left."""
        return self.book.start_next()

    def time_limit_s(self) -> float:
        return shard_timeout(self.config.run.shard_timeout_s, self.book.slowest_done_s)

    def done(self, index: int, shard_stats: dict[str, Any], seconds: float) -> None:
        self.book.done(index, seconds)
        self.progress.update(shard_stats)
        self.done_stats.append(shard_stats)
        self.last_news = time.monotonic()
        self._check_error_rate()

    def failed(
        self,
        index: int,
        reason: str,
        *,
        worker_lost: bool,
        timed_out: bool = False,
        device_lost: bool = False,
    ) -> None:
        retried = self.book.attempt_failed(
            index, reason, worker_lost=worker_lost, timed_out=timed_out, device_lost=device_lost
        )
        attempts = self.book.history[index].attempts
        if retried:
            log.warning("shard %05d: attempt %d failed (%s); retrying", index, attempts, reason)
        else:
            log.error("shard %05d failed after %d attempts: %s", index, attempts, reason)
            self._check_error_rate()

    def committed(self, index: int) -> bool:
        """Whether the shard was committed after all (its worker was lost or its clock ran out just
        after the marker); then it is done. Every shard scheduled was incomplete when the run began
        (`--redo-failed` reopened its complete ones), so a marker now is this run's."""
        if not is_shard_complete(self.out_dir, index):
            return False
        self.done(index, json.loads(shard_paths(self.out_dir, index)["stats"].read_text()), 0.0)
        return True

    def finish(self) -> None:
        """After the last attempt: raise for the shards that failed every attempt, or clear the list."""
        if self.show_progress:
            log.info("done: %s", self.progress.line())
        if self.book.failed:
            raise ShardsFailed(
                self._report(
                    f"{len(self.book.failed)} shard(s) failed every one of run.shard_attempts="
                    f"{self.config.run.shard_attempts} attempts and were not written",
                    "Rerun the same command to retry them: complete shards are kept (run.shard_attempts "
                    "and run.shard_timeout_s may be raised for it; they do not change the config hash).",
                )
            )
        write_failed_shards(self.out_dir, "", {}, {}, [])

    def interrupted(self, signal_number: int) -> NoReturn:
        name = signal.Signals(signal_number).name
        self._stop()
        raise Interrupted(
            self._report(f"Stopped by {name}", "Rerun the same command to resume: complete shards are kept."),
            signal_number,
        )

    def output_fault(self, fault: OutputFault) -> NoReturn:
        """The output refuses writes: stop now; the shards in flight are unfinished, not failed."""
        self._stop()
        report = self._report(
            f"Stopped: the output cannot be written: {fault.cause}, at {fault.where}. "
            "No image was counted as failed",
            "Free space, raise the quota or make the output writable (for an object store: the "
            "credentials, the bucket's policy or quota), then rerun the same command to resume: "
            "complete shards are kept.",
        )
        raise OutputFault(fault.cause, fault.where, report) from fault

    def no_workers(self, why: str, advice: str) -> NoReturn:
        self._stop()
        raise RunStopped(self._report(f"Stopped: {why}", advice))

    def heartbeat(self, running: list[tuple[int, float, str]], started: int, total: int) -> None:
        """A `waiting:` line every HEARTBEAT_S while nothing finishes; `running`: (shard, its clock's
        start, where it runs) of the shards in flight."""
        now = time.monotonic()
        if not self.show_progress or now - self.last_news < HEARTBEAT_S:
            return
        self.last_news = now
        line = (
            f"waiting: {len(running)} shards running, {len(self.book.pending)} queued, "
            f"{started}/{total} workers started"
        )
        if running:
            index, since, where = min(running, key=lambda r: r[1])
            line += (
                f"; oldest shard {index:05d} for {now - since:.0f} s "
                f"({where}, time limit {self.time_limit_s():.0f} s)"
            )
        log.info("%s; %s", line, self.progress.line())

    def _check_error_rate(self) -> None:
        processed, failures = failure_rate(self.done_stats, self.carried)
        lost = sum(self.plan.shard_sizes[i] or 0 for i in self.book.failed)  # None: a tar never read
        processed, failures = processed + lost, failures + lost
        rate = self.config.run.max_error_rate
        if processed < self.threshold or failures / processed <= rate:
            return
        self._stop()
        raise ErrorRateExceeded(
            self._report(
                f"Stopped: {failures} of {processed} images failed ({failures / processed:.0%} > "
                f"run.max_error_rate {rate:.0%}); something is systematically wrong (a wrong "
                "source.images folder?)",
                f"{REDO_ADVICE}.",
            )
        )

    def _stop(self) -> None:
        """Stop the work in flight and drop what its shards left half-written."""
        held = self.halt()
        try:
            names = listing(self.out_dir)
            for index in held:
                remove_partial_shard(self.out_dir, index, names)
        except OSError as error:  # a read-only output: there is nothing of ours to remove either
            log.warning("could not remove the partial files of the shards in flight: %s", error)

    def _report(self, headline: str, advice: str) -> str:
        complete = read_shard_stats(self.out_dir)
        names = listing(self.out_dir)
        unfinished = [
            i
            for i in self.todo
            if i not in self.book.failed and not is_shard_complete(self.out_dir, i, names)
        ]
        sizes = {i: self.plan.shard_sizes[i] for i in self.book.failed}
        try:
            list_path = write_failed_shards(self.out_dir, headline, self.book.failed, sizes, unfinished)
        except OutputFault as fault:  # the output refuses this file too: the paragraph says it all
            log.warning("could not write the list of unwritten shards: %s", fault)
            list_path = None
        return end_paragraph(
            headline,
            shards_total=self.plan.n_shards,
            shards_complete=len(complete),
            statuses=counts_from(complete),
            failed=self.book.failed,
            unfinished=len(unfinished),
            list_path=list_path,
            advice=advice,
        )
