"""Shard attempts as the driver counts them, the time limit they run under, and the end-of-run report.

The driver, not Ray, owns retries: every attempt of a shard ends done, or failed for a reason (its
worker died, it ran past the time limit, it raised), and a shard gets at most `run.shard_attempts`.
A shard that fails them all is not written: it stays incomplete, so rerunning the same command
retries it, and it is listed in `OUT/.sgpipe/failed_shards.json` (`sgpipe.output.failed_shards`)
until a run writes it. Nothing here knows about executors, so the policy is tested on its own.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from sgpipe.records import shard_name
from sgpipe.storage import Location

FIRST_SHARDS_TIMEOUT_S = 1800.0  # until a shard is done: first shards also download and load models
MIN_TIMEOUT_S = 300.0
TIMEOUT_FACTOR = 5.0  # x the slowest shard done in this run, which includes a model load
SHOWN_FAILURES = 3


def shard_timeout(configured_s: float, slowest_done_s: float | None) -> float:
    """`run.shard_timeout_s` when set; else derived from the shards this run has done."""
    if configured_s > 0:
        return configured_s
    if slowest_done_s is None:
        return FIRST_SHARDS_TIMEOUT_S
    return max(MIN_TIMEOUT_S, TIMEOUT_FACTOR * slowest_done_s)


@dataclass
class ShardHistory:
    attempts: int = 0
    workers_lost: int = 0  # attempts whose worker died (killed, out of memory, its node lost)
    timed_out: int = 0  # attempts abandoned past the time limit (their worker killed and replaced)
    devices_lost: int = 0  # attempts whose chunks were on a device actor that died (pools layout)
    errors: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """What the shard's `_stats.json` records under `attempts` (`devices_lost` once there is one)."""
        counts = {"count": self.attempts, "workers_lost": self.workers_lost, "timed_out": self.timed_out}
        return counts | ({"devices_lost": self.devices_lost} if self.devices_lost else {})


class AttemptBook:
    """The shards still to run, in order, and each one's attempts. Retries go to the back of the
    queue, so a shard that kills its worker does not take every replacement in a row."""

    def __init__(self, todo: Iterable[int], max_attempts: int):
        self.pending: deque[int] = deque(todo)
        self.max_attempts = max_attempts
        self.history: dict[int, ShardHistory] = {}
        self.failed: dict[int, ShardHistory] = {}
        self.slowest_done_s: float | None = None

    def start_next(self) -> tuple[int, dict[str, int]] | None:
        """Take the next shard and count an attempt; returns it with its counts so far."""
        if not self.pending:
            return None
        index = self.pending.popleft()
        history = self.history.setdefault(index, ShardHistory())
        history.attempts += 1
        return index, history.counts()

    def not_started(self, index: int) -> None:
        """The shard's worker was never placed: the attempt does not count; it runs next."""
        self.history[index].attempts -= 1
        self.pending.appendleft(index)

    def done(self, index: int, seconds: float) -> None:
        self.slowest_done_s = max(self.slowest_done_s or 0.0, seconds)

    def attempt_failed(
        self, index: int, error: str, *, worker_lost: bool, timed_out: bool = False, device_lost: bool = False
    ) -> bool:
        """Record a failed attempt; returns whether the shard is retried (else it has failed)."""
        history = self.history[index]
        history.workers_lost += int(worker_lost and not timed_out)
        history.timed_out += int(timed_out)
        history.devices_lost += int(device_lost)
        history.errors.append(error)
        if history.attempts >= self.max_attempts:
            self.failed[index] = history
            return False
        self.pending.append(index)
        return True


def end_paragraph(
    headline: str,
    *,
    shards_total: int,
    shards_complete: int,
    statuses: Counter[str],
    failed: dict[int, ShardHistory],
    unfinished: int,
    list_path: Location | None,
    advice: str,
) -> str:
    """One paragraph (one line) for a run that did not write every shard."""
    parts = [
        f"{headline}.",
        f"Shards: {shards_complete} of {shards_total} complete, {len(failed)} failed, "
        f"{unfinished} not written.",
    ]
    if statuses:
        counted = ", ".join(f"{name} {count}" for name, count in sorted(statuses.items()))
        parts.append(f"Images in complete shards: {counted}.")
    if failed:
        shown = "; ".join(
            f"{shard_name(i)} after {h.attempts} attempt{'s' if h.attempts > 1 else ''} ({h.errors[-1]})"
            for i, h in sorted(failed.items())[:SHOWN_FAILURES]
        )
        more = f" and {len(failed) - SHOWN_FAILURES} more" if len(failed) > SHOWN_FAILURES else ""
        parts.append(f"Failed: {shown}{more}.")
    if list_path is not None:
        parts.append(f"Full list: {list_path}.")
    parts.append(advice)
    return " ".join(parts)


def counts_from(shard_stats: list[dict[str, Any]]) -> Counter[str]:
    statuses: Counter[str] = Counter()
    for stats in shard_stats:
        statuses.update(stats["status"])
    return statuses
