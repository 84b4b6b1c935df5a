"""The bodies of the Ray actors: shard workers (the flat layout's workers and the pools layout's
shard actors) and device actors (pools: one copy of each model stage, serving shard actors)."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from sgpipe.config import PipelineConfig
from sgpipe.errors import SgpipeError
from sgpipe.pipeline import STAGES, build_stages
from sgpipe.records import Sample
from sgpipe.run.processor import ShardJob, ShardProcessor

STAGE_CONCURRENCY = 2  # calls a device actor runs at once: one's host work overlaps the other's model


class DeviceLost(SgpipeError):
    """The device actor holding this shard's chunks died (or was killed as frozen)."""


def _worker_process(threads: float) -> None:
    import torch

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # a cluster's workers do not inherit ours
    # one worker per CPU share: intra-op threads beyond it only fight the other workers
    torch.set_num_threads(max(1, int(threads)))


def _stages(config: PipelineConfig, job: ShardJob, stage_factory: Any) -> list:
    if stage_factory is not None:
        return stage_factory(config, list(job.categories))
    return build_stages(config, list(job.categories), job.stage_names)


def _node() -> tuple[int, str]:
    import ray

    return os.getpid(), ray.get_runtime_context().get_node_id()


class ShardWorker:
    """One processor per worker process, reused for every shard it gets. A shard actor of the pools
    layout builds only its host stages: the driver passes the device actor with each shard."""

    def __init__(
        self,
        config: PipelineConfig,
        job: ShardJob,
        stage_factory: Any = None,
        device_stages: tuple[str, ...] = (),
    ):
        _worker_process(config.run.cpus_per_worker)
        self.link = RayDeviceLink(device_stages) if device_stages else None
        self.processor = ShardProcessor(config, job, _stages(config, job, stage_factory), device=self.link)

    def ready(self) -> tuple[int, str]:
        """Answered once the actor is placed and built: its process id and node, for the logs."""
        return _node()

    def process(
        self, index: int, attempts: dict[str, int] | None = None, device: Any = None
    ) -> dict[str, Any]:
        if self.link is not None:
            self.link.use(device)
        return self.processor.process_shard(index, attempts)

    def teardown(self) -> None:
        self.processor.teardown()


class DeviceWorker:
    """A device actor: the recipe's model stages, set up once, run on chunks sent by shard actors,
    up to STAGE_CONCURRENCY at once (a stage whose entry says `concurrent=False` one at a time)."""

    def __init__(
        self,
        config: PipelineConfig,
        job: ShardJob,
        stage_factory: Any,
        stage_names: tuple[str, ...],
        threads: float,
    ):
        _worker_process(threads)
        self.stages = {s.name: s for s in _stages(config, job, stage_factory) if s.name in stage_names}
        for stage in self.stages.values():
            stage.setup()
        serial = {spec.name for spec in STAGES if not spec.concurrent and spec.enabled(config)}
        self.locks = {name: threading.Lock() for name in self.stages if name in serial}
        self.ended = threading.Event()

    def ready(self) -> tuple[int, str, dict[str, Any]]:
        return (*_node(), self.describe())

    def describe(self) -> dict[str, Any]:
        return {name: stage.describe() for name, stage in self.stages.items()}

    def run(self, name: str, samples: list[Sample], pixels: list[Any]) -> tuple[list[Sample], float, int]:
        """`samples` through the stage `name`, each with its decoded pixels (`pixels`: object-store
        references, read in place); returned without them (the shard actor has them)."""
        import ray
        from PIL import Image

        arrays = ray.get([ref for ref in pixels if ref is not None])
        for sample, ref in zip(samples, pixels, strict=True):
            sample.image = Image.fromarray(arrays.pop(0)) if ref is not None else None
        stage = self.stages[name]
        lock = self.locks.get(name)
        if lock is not None:
            with lock:
                seconds, splits = stage.run_counted(samples)
        else:
            seconds, splits = stage.run_counted(samples)
        for sample in samples:
            sample.image = None
        return samples, seconds, splits

    def watch(self) -> None:
        """Pending for the actor's whole life, in its own thread: the driver learns of its death."""
        self.ended.wait()

    def alive(self) -> bool:
        """Answered at once unless the process is frozen (in the watch group, beside busy threads)."""
        return True

    def teardown(self) -> None:
        for stage in self.stages.values():
            stage.teardown()
        self.ended.set()


SAMPLE_FIELDS = tuple(f for f in Sample.__dataclass_fields__ if f not in ("image", "image_bytes"))


class RayDeviceLink:
    """A shard actor's way to its device actor's stages (a `processor.DeviceLink`). A sample's decoded
    pixels go to the object store once, as an array the device actor reads in place, and serve every
    model stage of its chunk (the captioner, then the verifier); its image bytes never leave."""

    def __init__(self, stage_names: tuple[str, ...]):
        self.stage_names = stage_names
        self.actor: Any = None
        self._described: dict[str, Any] | None = None
        self._pixels: dict[str, Any] = {}  # sample key -> its pixels' object reference, while its chunk runs

    def use(self, actor: Any) -> None:
        if actor is not self.actor:
            self.actor, self._described = actor, None

    def submit(self, stage: str, samples: list[Sample]) -> Any:
        import copy

        import numpy as np
        import ray

        light, pixels = [], []
        for sample in samples:
            if sample.image is not None and sample.key not in self._pixels:
                self._pixels[sample.key] = ray.put(np.asarray(sample.image))
            pixels.append(self._pixels.get(sample.key) if sample.image is not None else None)
            copied = copy.copy(sample)
            copied.image = copied.image_bytes = None
            light.append(copied)
        return self.actor.run.remote(stage, light, pixels)

    def release(self, samples: list[Sample]) -> None:
        for sample in samples:
            self._pixels.pop(sample.key, None)

    def wait_any(self, pending: list[Any]) -> Any:
        import ray

        ready, _ = ray.wait(pending, num_returns=1)
        return ready[0]

    def collect(self, pending: Any, samples: list[Sample]) -> tuple[float, int]:
        import ray

        try:
            results, seconds, splits = ray.get(pending)
        except ray.exceptions.RayActorError as error:
            raise DeviceLost(f"the device actor died: {str(error).splitlines()[0][:160]}") from None
        for sample, result in zip(samples, results, strict=True):
            for name in SAMPLE_FIELDS:
                setattr(sample, name, getattr(result, name))
        return seconds, splits

    def describe(self, stage: str) -> dict[str, Any]:
        if self._described is None:
            import ray

            started = time.monotonic()
            try:
                self._described = ray.get(self.actor.describe.remote())
            except ray.exceptions.RayActorError as error:
                waited = time.monotonic() - started
                raise DeviceLost(f"the device actor died ({waited:.0f} s): {error}"[:200]) from None
        return self._described.get(stage, {})
