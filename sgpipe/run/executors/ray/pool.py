"""The actors of a run and their supervision. Ray restarts nothing (`max_restarts=0`): a lost actor
is killed and replaced here, on any node with room; when the cluster no longer holds the pool (a
node gone), it shrinks. In the pools layout the device actors are watched the same way: each holds
a call pending for its whole life (`DeviceWorker.watch`), which fails when it dies."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sgpipe.config import PipelineConfig
from sgpipe.run.executors.ray.actors import STAGE_CONCURRENCY, DeviceWorker, ShardWorker
from sgpipe.run.layout import Layout
from sgpipe.run.processor import ShardJob

log = logging.getLogger(__name__)
WATCH = "watch"  # a device actor's concurrency group for `watch` and `alive`, beside its serving threads


@dataclass(eq=False)
class Attempt:
    index: int
    ref: Any
    started: float | None  # when its worker was ready to run it: the shard's clock
    device: "Device | None" = None


@dataclass(eq=False)
class Worker:
    actor: Any
    ping: Any  # the pending `ready()` call; None once the worker answered
    created: float
    pid: int | None = None
    node: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    slot: int = 0  # pools: which device it is given first

    def where(self) -> str:
        return f"pid {self.pid} on node {self.node[:8]}" if self.pid else "a worker not yet started"


@dataclass(eq=False)
class Device:
    actor: Any
    ping: Any
    watch: Any
    created: float
    pid: int | None = None
    node: str = ""

    def where(self) -> str:
        return f"device actor pid {self.pid} on node {self.node[:8]}" if self.pid else "a device actor"


class Pool:
    def __init__(self, config: PipelineConfig, job: ShardJob, stage_factory: Any, layout: Layout):
        import ray

        self.config = config
        self.layout = layout
        self.job = job
        self.worker_class = ray.remote(ShardWorker).options(
            num_cpus=layout.worker.cpus,
            num_gpus=layout.worker.gpus,
            max_restarts=0,
            max_task_retries=0,
            max_concurrency=2 if layout.kind == "pools" else 1,  # two shards, sharing two chunk slots
        )
        self.worker_args = (config, job, stage_factory, layout.device_stages)
        self.devices: list[Device] = []
        if layout.kind == "pools":
            # serving threads for the chunks, and a group of its own for `watch` and `alive`
            serving = ray.remote(max_concurrency=STAGE_CONCURRENCY, concurrency_groups={WATCH: 2})
            self.device_class = serving(DeviceWorker).options(
                num_cpus=layout.device.cpus, num_gpus=layout.device.gpus, max_restarts=0, max_task_retries=0
            )
            self.device_args = (config, job, stage_factory, layout.device_stages, layout.device.cpus)
            self.devices = [self._start_device() for _ in range(layout.devices)]
        self.workers: list[Worker] = [self._start(slot) for slot in range(layout.workers)]

    def _start(self, slot: int) -> Worker:
        actor = self.worker_class.remote(*self.worker_args)
        return Worker(actor, actor.ready.remote(), time.monotonic(), slot=slot)

    def _start_device(self) -> Device:
        actor = self.device_class.remote(*self.device_args)
        watch = actor.watch.options(concurrency_group=WATCH).remote()
        return Device(actor, actor.ready.remote(), watch, time.monotonic())

    def device_for(self, worker: Worker) -> Device | None:
        """The device a shard actor sends its chunks to: its own slot's, spread evenly."""
        if not self.devices:
            return None
        return self.devices[worker.slot % len(self.devices)]

    def _room_for(self, worker: int = 0, device: int = 0) -> bool:
        """Whether the cluster holds the pool with `worker` more workers and `device` more devices."""
        import ray

        total = ray.cluster_resources()
        workers, devices = len(self.workers) + worker, len(self.devices) + device
        cpus = workers * self.layout.worker.cpus + devices * self.layout.device.cpus
        gpus = workers * self.layout.worker.gpus + devices * self.layout.device.gpus
        return cpus <= total.get("CPU", 0.0) + 1e-9 and gpus <= total.get("GPU", 0.0) + 1e-9

    def retire(self, worker: Worker) -> None:
        self.workers.remove(worker)
        _kill(worker.actor)

    def replace(self, worker: Worker) -> bool:
        """Kill `worker` and start another if the cluster still holds the pool; returns whether."""
        self.retire(worker)
        if self._room_for(worker=1):
            self.workers.append(self._start(worker.slot))
            return True
        log.warning(
            "the cluster no longer holds %d workers: going on with %d",
            len(self.workers) + 1,
            len(self.workers),
        )
        return False

    def replace_device(self, device: Device) -> bool:
        """Kill `device` and start another in its place if the cluster still holds one."""
        position = self.devices.index(device)
        _kill(device.actor)
        self.devices.pop(position)
        if self._room_for(device=1):
            self.devices.insert(position, self._start_device())
            return True
        log.warning("the cluster no longer holds %d device actors: going on with %d",
                    len(self.devices) + 1, len(self.devices))  # fmt: skip
        return False

    def drop_device(self, device: Device) -> None:
        self.devices.remove(device)
        _kill(device.actor)

    def kill_all(self) -> None:
        for worker in list(self.workers):
            self.retire(worker)
        for device in list(self.devices):
            self.drop_device(device)


def _kill(actor: Any) -> None:
    import ray

    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # noqa: BLE001 - already gone is what we want
        pass
