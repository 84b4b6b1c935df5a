"""How a run is laid out: which executor, and how many actors of what size, from the recipe's
table of stages and the resources of the machine or cluster. No Ray here: the Ray executor passes
its cluster's resources, the dry run this machine's.

- `local`: one process, this one; no Ray.
- `flat` (Ray): workers that each run every stage one after another, sized by `run.cpus_per_worker`
  and, when a stage declares a GPU, `run.gpus_per_worker` (a share of one).
- `pools` (Ray): one device actor per GPU holding one copy of each model stage (the table's entries
  that declare a GPU) with the CPUs they declare, serving shard actors of `run.cpus_per_worker`
  CPUs that decode, parse, tag and write. Without GPUs, `run.devices` logical devices hold the models
  on CPUs (how the layout is tested on a machine without GPUs).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

from sgpipe.config import PipelineConfig
from sgpipe.errors import SgpipeError
from sgpipe.pipeline import device_stage_names, enabled_specs
from sgpipe.stages.base import Resources

log = logging.getLogger(__name__)
Names = "tuple[str, ...] | None"  # the stages a run executes (`ShardJob.stage_names`); None: the recipe's


@dataclass(frozen=True)
class Layout:
    kind: str  # "local" | "flat" | "pools"
    workers: int  # flat: workers; pools: shard actors; local: 1
    worker: Resources  # one worker's (shard actor's) resources
    devices: int = 0  # pools: device actors
    device: Resources = Resources(cpus=0.0)  # one device actor's
    device_stages: tuple[str, ...] = ()
    host_stages: tuple[str, ...] = ()

    @property
    def executor(self) -> str:
        return "local" if self.kind == "local" else "ray"

    @property
    def cpus(self) -> float:
        return self.workers * self.worker.cpus + self.devices * self.device.cpus

    @property
    def gpus(self) -> float:
        """Whole cards in use (three workers of 0.33 share one)."""
        return float(math.ceil(self.workers * self.worker.gpus - 1e-9) + self.devices * self.device.gpus)

    def describe(self) -> str:
        if self.kind == "local":
            return "layout: local (this process, no Ray): every stage, one shard at a time"
        if self.kind == "flat":
            share = f", {self.worker.gpus:g} GPU" if self.worker.gpus else ""
            return (
                f"layout: flat (Ray): {self.workers} workers ({self.worker.cpus:g} CPUs{share} each), "
                f"each running every stage"
            )
        device = f"{self.device.gpus:g} GPU, " if self.device.gpus else "no GPU: models on CPU, "
        return (
            f"layout: pools (Ray): {self.devices} device actors ({device}{self.device.cpus:g} CPUs each: "
            f"{', '.join(self.device_stages)}) serving {self.workers} shard actors "
            f"({self.worker.cpus:g} CPUs each: {', '.join((*self.host_stages, 'write'))})"
        )


def cluster_address(config: PipelineConfig) -> str:
    return config.run.address or os.environ.get("RAY_ADDRESS", "")


def choose_executor(config: PipelineConfig, n_todo: int) -> str:
    """`run.executor`; `auto` runs in this process when one worker would do the run (one asked for,
    or one that fits this machine, or one shard to do) and no cluster is named."""
    run = config.run
    if run.executor != "auto":
        return run.executor
    if cluster_address(config) or run.layout == "pools":
        return "ray"
    workers = run.workers or workers_that_fit(config, machine_resources(config))
    return "local" if min(workers, max(n_todo, 1)) <= 1 else "ray"


def machine_resources(config: PipelineConfig) -> dict[str, float]:
    """This machine's CPUs and GPUs; a recipe with a model stage checked on a machine without GPUs
    (a laptop planning a cluster run) is planned for one."""
    gpus = float(local_gpu_count())
    wants_gpu = config.run.gpus_per_worker > 0 or config.run.layout == "pools"
    if not gpus and wants_gpu and device_stage_names(config) and config.run.device != "cpu":
        gpus = 1.0
    return {"CPU": float(os.cpu_count() or 1), "GPU": gpus}


def local_gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()


def flat_worker(config: PipelineConfig) -> Resources:
    """A flat worker runs every stage: it needs a GPU share only when a stage declares a GPU."""
    on_device = any(spec.on_device for spec in enabled_specs(config))
    return Resources(cpus=config.run.cpus_per_worker, gpus=config.run.gpus_per_worker if on_device else 0.0)


def workers_that_fit(config: PipelineConfig, resources: dict[str, float]) -> int:
    worker = flat_worker(config)
    fits = int(resources.get("CPU", 0.0) // max(worker.cpus, 0.01))
    if worker.gpus > 0:
        fits = min(fits, int(resources.get("GPU", 0.0) / worker.gpus + 1e-9))
    return fits


def placeable_workers(config: PipelineConfig, resources: dict[str, float]) -> int:
    """`run.workers`, or as many as the CPUs and GPUs hold, never more: an actor that cannot be
    placed would wait forever with a shard. So asking for GPUs the cluster lacks, or for workers
    bigger than it holds, is an error before any work, and more workers than it holds are cut."""
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    worker = flat_worker(config)
    if worker.gpus > 0 and gpus <= 0:
        raise SgpipeError(
            f"run.gpus_per_worker is {worker.gpus:g} but Ray sees no GPU "
            "(set run.gpus_per_worker=0 to run the models on CPUs)"
        )
    fits = workers_that_fit(config, resources)
    if fits < 1:
        needs, sees = f"run.cpus_per_worker={worker.cpus:g} CPUs", f"{cpus:g} CPUs"
        if gpus:
            needs += f" and run.gpus_per_worker={worker.gpus:g} GPUs"
            sees += f" and {gpus:g} GPUs"
        raise SgpipeError(f"no worker fits: each needs {needs}, Ray sees {sees} (lower them)")
    if config.run.workers > fits:
        log.warning(
            "run.workers=%d but the cluster holds %d (CPU %g, GPU %g): running %d",
            config.run.workers, fits, cpus, gpus, fits,
        )  # fmt: skip
        return fits
    return config.run.workers or fits


def pools_wanted(config: PipelineConfig, resources: dict[str, float], names: Names = None) -> bool:
    if config.run.layout != "auto":
        return config.run.layout == "pools"
    gpus = resources.get("GPU", 0.0) > 0 and config.run.device != "cpu"
    return bool(device_stage_names(config, names)) and gpus


def pools_layout(
    config: PipelineConfig, resources: dict[str, float], n_todo: int, names: Names = None
) -> Layout:
    """Device actors (one per GPU, or `run.devices`) and the shard actors the CPUs left hold, for the
    stages the run executes (`names`; None: the recipe's)."""
    on_device = device_stage_names(config, names)
    if not on_device:
        raise SgpipeError(
            "run.layout pools: the recipe has no model stage for a device actor to hold "
            "(caption, verify or the seq2seq parser); use run.layout flat"
        )
    specs = [spec for spec in enabled_specs(config, names) if spec.on_device]
    gpus = resources.get("GPU", 0.0) if config.run.device != "cpu" else 0.0
    cpus = resources.get("CPU", 0.0)
    device = Resources(cpus=max(1.0, sum(s.resources.cpus for s in specs)), gpus=1.0 if gpus >= 1 else 0.0)
    devices = config.run.devices or max(1, int(gpus))
    if gpus >= 1 and devices > int(gpus):
        log.warning("run.devices=%d but the cluster has %d GPUs: running %d", devices, int(gpus), int(gpus))
        devices = int(gpus)
    worker = Resources(cpus=config.run.cpus_per_worker, gpus=0.0)
    room = cpus - devices * device.cpus
    fits = int(room // max(worker.cpus, 0.01)) if room > 0 else 0
    if fits < 1:
        raise SgpipeError(
            f"no shard actor fits: {devices} device actors take {devices * device.cpus:g} of {cpus:g} CPUs "
            f"and each shard actor needs run.cpus_per_worker={worker.cpus:g} (lower it or run.devices)"
        )
    workers = min(config.run.workers or fits, fits)
    host = tuple(s.name for s in enabled_specs(config, names) if not s.on_device)
    return Layout("pools", max(1, min(workers, n_todo)), worker, devices, device, on_device, host)


def plan_layout(
    config: PipelineConfig, resources: dict[str, float], n_todo: int, names: Names = None
) -> Layout:
    """The Ray layout for a cluster with `resources` and `n_todo` shards to do of the stages `names`
    (None: the recipe's; a reverify runs the verify stage alone)."""
    if pools_wanted(config, resources, names):
        return pools_layout(config, resources, n_todo, names)
    workers = max(1, min(placeable_workers(config, resources), n_todo))
    return Layout("flat", workers, flat_worker(config))


def planned_layout(config: PipelineConfig, n_todo: int, names: Names = None) -> Layout:
    """What the run would use on this machine (a dry run starts no Ray); a recipe made for bigger
    machines is planned with one worker rather than refused."""
    if choose_executor(config, n_todo) == "local":
        return Layout("local", 1, Resources(cpus=1.0))
    resources = machine_resources(config)
    try:
        return plan_layout(config, resources, max(n_todo, 1), names)
    except SgpipeError:
        return Layout("flat", 1, flat_worker(config))
