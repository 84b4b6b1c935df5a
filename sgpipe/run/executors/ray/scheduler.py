"""The Ray executor's loop: one shard in flight per flat worker, two per shard actor (pools: it starts
its next shard while its last chunks are on the device; both share its two chunk slots), every
attempt's outcome to the `Supervisor`, every actor watched.

- A worker that dies, or whose shard runs past the time limit, is killed and replaced, and its
  shard's attempt counts (`workers_lost`, `timed_out`); one not started within
  `run.placement_timeout_s` is dropped and its shard given to the others.
- Pools layout: a device actor that dies is replaced (the shards whose chunks it held lose one
  attempt each, `devices_lost`: their shard actors stay); a shard that times out has its device
  asked whether it still answers, and a frozen device is replaced too.
- An `OutputFault` from any worker stops the run at once; signals stop it cleanly.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from sgpipe.errors import OutputFault
from sgpipe.run.executors.ray.actors import DeviceLost
from sgpipe.run.executors.ray.pool import WATCH, Attempt, Device, Pool, Worker
from sgpipe.run.signals import StopSignals
from sgpipe.run.supervisor import Supervisor

log = logging.getLogger(__name__)
WAIT_S = 1.0  # how often the driver looks at the clocks and for stop signals while shards run
SETTLE_S = 15.0  # how long a stop waits for its killed workers to be gone before cleaning up
ALIVE_S = 10.0  # how long a device actor may take to answer `alive` before it counts as frozen
SHARDS_PER_SHARD_ACTOR = 2  # in the pools layout; their chunks share the actor's two chunk slots


def describe_error(error: BaseException) -> str:
    """One short line for an attempt's error: the task's own exception, or why Ray lost the actor."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, type(error)):
        error = cause
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = next((line for line in lines if " because " in line), lines[0] if lines else "")
    if " because " in reason:  # Ray's first sentence says it all ("... its node has died.")
        reason = reason.split(". ")[0].rstrip(".")
    return f"{type(error).__name__}: {reason}"[:200]


class Scheduler:
    def __init__(self, pool: Pool, supervisor: Supervisor, stop: StopSignals):
        self.pool = pool
        self.supervisor = supervisor
        self.stop = stop
        # a shard actor (pools) starts its next shard while its last chunks are on the device
        self.shards_per_worker = SHARDS_PER_SHARD_ACTOR if pool.layout.kind == "pools" else 1

    def run(self) -> None:
        while True:
            if self.stop.received is not None:
                self.supervisor.interrupted(self.stop.received)
            self._assign()
            if not any(w.attempts for w in self.pool.workers):
                break
            self._wait_once()
            self._check_clocks()
            running = [
                (a.index, a.started, w.where()) for w in self.pool.workers for a in w.attempts if a.started
            ]
            placed = sum(1 for w in self.pool.workers if w.ping is None)
            self.supervisor.heartbeat(running, placed, len(self.pool.workers))
        self.supervisor.finish()

    def halt(self) -> list[int]:
        """Stop in-flight work: kill every actor, wait until they are gone; the shards they held."""
        import ray

        running = [a for w in self.pool.workers for a in w.attempts]
        node = ray.get_runtime_context().get_node_id()
        here = [w.pid for w in self.pool.workers if w.pid and w.node == node]
        self.pool.kill_all()
        if running:
            ray.wait([a.ref for a in running], num_returns=len(running), timeout=SETTLE_S)
        # Ray reports an actor dead before its process has exited: the shards' partial files are
        # dropped once their writers on this node cannot write again (elsewhere a late temporary
        # stays hidden, and the shard's next attempt removes it)
        _wait_gone(here, time.monotonic() + SETTLE_S)
        return [a.index for a in running]

    def _assign(self) -> None:
        if self.supervisor.book.pending and (not self.pool.workers or self._no_device()):
            what = "worker" if not self.pool.workers else "device actor"
            self.supervisor.no_workers(
                f"no {what} can be placed on the cluster",
                "Add nodes or lower run.cpus_per_worker / run.gpus_per_worker, then rerun the same "
                "command to resume: complete shards are kept.",
            )
        for worker in self.pool.workers:
            while len(worker.attempts) < self.shards_per_worker:
                taken = self.supervisor.next()
                if taken is None:
                    return
                index, counts = taken
                device = self.pool.device_for(worker)
                ref = worker.actor.process.remote(index, counts, device.actor if device else None)
                started = time.monotonic() if worker.ping is None else None
                worker.attempts.append(Attempt(index, ref, started, device))

    def _no_device(self) -> bool:
        return self.pool.layout.kind == "pools" and not self.pool.devices

    def _wait_once(self) -> None:
        import ray

        owners: dict[Any, tuple[Worker | Device, Attempt | None]] = {}
        for worker in self.pool.workers:
            if worker.ping is not None:
                owners[worker.ping] = (worker, None)
            for attempt in worker.attempts:
                owners[attempt.ref] = (worker, attempt)
        for device in self.pool.devices:
            owners[device.watch] = (device, None)
            if device.ping is not None:
                owners[device.ping] = (device, None)
        ready, _ = ray.wait(list(owners), num_returns=1, timeout=WAIT_S)
        for ref in ready:
            owner, attempt = owners[ref]
            if isinstance(owner, Device):
                if owner in self.pool.devices:
                    self._on_device(owner, ref)
            elif owner not in self.pool.workers:
                continue  # its other call already reported it lost
            elif attempt is None:
                self._on_ready(owner)
            elif attempt in owner.attempts:
                self._on_result(owner, attempt)

    def _on_device(self, device: Device, ref: Any) -> None:
        import ray

        try:
            answer = ray.get(ref)
        except Exception as error:  # noqa: BLE001 - its death, or a failure to start
            self._device_lost(device, describe_error(error))
            return
        if ref is device.ping:
            device.pid, device.node, _ = answer
            device.ping = None

    def _device_lost(self, device: Device, reason: str) -> None:
        replaced = self.pool.replace_device(device)
        log.warning("%s lost (%s)%s", device.where(), reason, "; replaced" if replaced else "")

    def _on_ready(self, worker: Worker) -> None:
        import ray

        try:
            worker.pid, worker.node = ray.get(worker.ping)
        except Exception as error:  # noqa: BLE001 - a worker that could not start
            self._lose(worker, error)
            return
        worker.ping = None
        for attempt in worker.attempts:
            attempt.started = time.monotonic()

    def _on_result(self, worker: Worker, attempt: Attempt) -> None:
        import ray

        try:
            shard_stats = ray.get(attempt.ref)
        except ray.exceptions.RayTaskError as error:  # raised by the shard's code: the worker is fine
            worker.attempts.remove(attempt)
            cause = error.cause
            if isinstance(cause, OutputFault):
                self.supervisor.output_fault(cause)
            if isinstance(cause, DeviceLost) and attempt.device in self.pool.devices:
                # replaced now, before the shard actor is given its next shard: sent to the dead
                # device, that shard would lose an attempt too (the device's own watch call may
                # report the death later than its shards do)
                self._device_lost(attempt.device, describe_error(cause))
            self.supervisor.failed(
                attempt.index,
                describe_error(error),
                worker_lost=False,
                device_lost=isinstance(cause, DeviceLost),
            )
            return
        except Exception as error:  # noqa: BLE001 - the actor died, its node was lost, out of memory
            self._lose(worker, error)
            return
        worker.attempts.remove(attempt)
        self.supervisor.done(
            attempt.index, shard_stats, time.monotonic() - (attempt.started or time.monotonic())
        )

    def _lose(self, worker: Worker, error: BaseException | str, timed_out: Attempt | None = None) -> None:
        """The worker is gone or stuck: kill it, replace it, and retry the shards it held (`timed_out`:
        the one whose clock ran out)."""
        where = worker.where()
        replaced = self.pool.replace(worker)
        reason = error if isinstance(error, str) else describe_error(error)
        if not worker.attempts:
            log.warning("worker %s lost before taking a shard (%s)", where, reason)
        for attempt in worker.attempts:
            if self.supervisor.committed(attempt.index):
                log.warning(
                    "shard %05d: worker %s lost after committing it (%s)", attempt.index, where, reason
                )
                continue
            what = "timed out" if attempt is timed_out else "lost"
            news = "; replaced" if replaced else ""
            log.warning("shard %05d: worker %s %s (%s)%s", attempt.index, where, what, reason, news)
            self.supervisor.failed(attempt.index, reason, worker_lost=True, timed_out=attempt is timed_out)
        worker.attempts = []

    def _check_clocks(self) -> None:
        now = time.monotonic()
        limit = self.supervisor.time_limit_s()
        placement = self.pool.config.run.placement_timeout_s
        for worker in list(self.pool.workers):
            late = [a for a in worker.attempts if a.started is not None and now - a.started > limit]
            if late:
                if late[0].device is not None:
                    self._check_device(late[0].device)
                self._lose(
                    worker, f"running for more than {limit:.0f} s (run.shard_timeout_s)", timed_out=late[0]
                )
            elif worker.ping is not None and now - worker.created > placement:
                log.warning(
                    "a worker was not placed (or not started) within run.placement_timeout_s=%g s: "
                    "dropped, its shard goes to the others",
                    placement,
                )
                self.pool.retire(worker)
                for attempt in reversed(worker.attempts):
                    self.supervisor.book.not_started(attempt.index)
        for device in list(self.pool.devices):
            if device.ping is not None and now - device.created > placement:
                log.warning(
                    "a device actor was not placed within run.placement_timeout_s=%g s: dropped", placement
                )
                self.pool.drop_device(device)

    def _check_device(self, device: Device) -> None:
        """A shard timed out waiting, perhaps, on its device: a device that does not answer is frozen."""
        import ray

        if device not in self.pool.devices or device.ping is not None:
            return
        answer = device.actor.alive.options(concurrency_group=WATCH).remote()
        ready, _ = ray.wait([answer], timeout=ALIVE_S)
        if not ready:
            replaced = self.pool.replace_device(device)
            log.warning("%s does not answer: killed%s", device.where(), "; replaced" if replaced else "")


def _wait_gone(pids: list[int], deadline: float) -> None:
    for pid in pids:
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def _running(pid: int) -> bool:
    """Whether process `pid` can still run (a zombie cannot: it only waits for its parent to reap it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
