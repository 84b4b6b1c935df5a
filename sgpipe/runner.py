"""The only module that knows about Ray: a pool of actors, each processing whole shards.

Shards are the unit of scheduling, retry and commit. Each actor builds one `ShardProcessor`
(models load once, on its first shard); the driver keeps one shard in flight per actor, skips
complete shards, retries a shard whose worker died (actor restart + task retry), watches the
failure rate, and finally rebuilds the run-level files from the shards' `_stats.json`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from sgpipe.config import PipelineConfig
from sgpipe.errors import NOT_FAILURES, ErrorRateExceeded, SgpipeError
from sgpipe.estimate import estimate
from sgpipe.output.finalize import finalize_outputs
from sgpipe.output.guards import check_resume, lock_output
from sgpipe.output.runinfo import finish_run_json, start_run_json
from sgpipe.output.writer import is_shard_complete, read_shard_stats, remove_partial_shard
from sgpipe.pipeline import ShardJob, build_stages
from sgpipe.preflight import check_models
from sgpipe.redo import REDO_ADVICE, reopen_shard, shards_to_redo
from sgpipe.source.plan import SourcePlan, build_plan, plan_dir_of
from sgpipe.stages.base import Stage
from sgpipe.storage import listing, location

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0
TEARDOWN_TIMEOUT_S = 30.0  # a worker that does not answer by then is ended with the cluster

# (config, category names) -> the stages a worker runs; the default is `pipeline.build_stages`.
# Called on the worker, so it must be picklable (a module-level function).
StageFactory = Callable[[PipelineConfig, list[str]], list[Stage]]


@dataclass
class RunOptions:
    force: bool = False
    shard_range: str | None = None  # "a:b", a slice of shard ids
    dry_run: bool = False
    progress: bool = True
    metrics_path: str | None = None  # JSON lines, one per finished shard
    redo_failed: bool = False  # also redo complete shards holding retryable failures (sgpipe.redo)


def select_shards(n_shards: int, shard_range: str | None) -> list[int]:
    if not shard_range:
        return list(range(n_shards))
    try:
        parts = [int(p) if p.strip() else None for p in shard_range.split(":")]
        if len(parts) == 1:
            parts = [parts[0], parts[0] + 1 if parts[0] is not None else None]
        return list(range(n_shards))[slice(*parts[:3])]
    except (ValueError, TypeError):
        raise SgpipeError(
            f"--shards {shard_range!r}: expected a:b (shard ids, like a Python slice)"
        ) from None


class _ShardWorker:
    """Ray actor body: one processor per worker process, reused for every shard it gets."""

    def __init__(self, config: PipelineConfig, job: ShardJob, stage_factory: StageFactory | None = None):
        import torch

        from sgpipe.pipeline import ShardProcessor

        logging.basicConfig(level=logging.WARNING)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # a cluster's workers do not inherit ours
        # one worker per CPU share: intra-op threads beyond it only fight the other workers
        torch.set_num_threads(max(1, int(config.run.cpus_per_worker)))
        stages = stage_factory(config, list(job.categories)) if stage_factory else None
        self.processor = ShardProcessor(config, job, stages)

    def process(self, index: int) -> dict[str, Any]:
        return self.processor.process_shard(index)

    def teardown(self) -> None:
        self.processor.teardown()


def _init_ray(address: str) -> bool:
    """Connect to a cluster, or start a local Ray in-process. Returns whether we started it."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS", "")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "configure_logging": True,
        "log_to_driver": True,
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(**kwargs)
    return True


def _failure_rate(stats: list[dict[str, Any]]) -> tuple[int, int]:
    """(images judged, failed ones); excluded images are neither."""
    processed = sum(s["count"] - s.get("excluded", 0) for s in stats)
    failed = sum(s["failed_to_process"] for s in stats)
    return processed, failed


class Progress:
    """The periodic progress line, and optionally one JSON line per finished shard for dashboards."""

    def __init__(self, total_shards: int, enabled: bool, metrics_path: str | None = None):
        self.total = total_shards
        self.enabled = enabled
        self.metrics_path = metrics_path
        self.started = time.monotonic()
        self.last = 0.0
        self.shards = 0
        self.images = 0
        self.statuses: Counter[str] = Counter()

    def update(self, shard_stats: dict[str, Any]) -> None:
        self.shards += 1
        self.images += shard_stats["count"]
        self.statuses.update({k: v for k, v in shard_stats["status"].items() if k not in NOT_FAILURES})
        now = time.monotonic()
        if self.metrics_path:
            with open(self.metrics_path, "a", encoding="utf-8") as handle:
                handle.write(
                    json.dumps({"time": time.time(), "shard": shard_stats["shard"], **self.snapshot()}) + "\n"
                )
        if self.enabled and (now - self.last >= PROGRESS_EVERY_S or self.shards == self.total):
            self.last = now
            log.info("progress %s", self.line())

    def snapshot(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "shards_done": self.shards,
            "shards_total": self.total,
            "images": self.images,
            "images_per_s": round(self.images / elapsed, 2),
            "failures": dict(sorted(self.statuses.items())),
        }

    def line(self) -> str:
        """key=value fields, so log collectors can parse the line."""
        snap = self.snapshot()
        failures = ",".join(f"{k}:{v}" for k, v in snap["failures"].items()) or "none"
        return (
            f"shards={snap['shards_done']}/{snap['shards_total']} images={snap['images']} "
            f"images_per_s={snap['images_per_s']} failures={failures}"
        )


def describe_plan(
    plan: SourcePlan, todo: list[int], config: PipelineConfig, resources: dict[str, float]
) -> str:
    stages = [stage.name for stage in build_stages(config, plan.categories)]  # cheap: no model loads
    models = []
    if config.caption.enabled:
        models.append(f"captioner {config.caption.model}")
    if config.parse.backend == "seq2seq":
        models.append(f"parser {config.parse.model}")
    if config.verify.enabled:
        models.append(f"verifier {config.verify.checkpoint}")
    return "\n".join(
        [
            f"dataset {plan.dataset}: {plan.n_images} images in {plan.n_shards} shards "
            f"({config.output.samples_per_shard} per shard), indexed with {plan.method}",
            f"to run: {len(todo)} shards ({sum(plan.shard_sizes[i] for i in todo)} images); "
            f"{plan.n_shards - len(todo)} already complete or outside --shards",
            f"stages: {' -> '.join(stages)}; models: {', '.join(models) or 'none'}",
            f"resources: {resources['workers']} workers, {resources['cpus']:g} CPUs, "
            f"{resources['gpus']:g} GPUs"
            + (
                " (none visible here: planned for one)" if resources["gpus"] and not local_gpu_count() else ""
            ),
            estimate(config, **resources).describe(sum(plan.shard_sizes[i] for i in todo)),
            f"output: {config.output.dir}",
        ]
    )


def placeable_workers(config: PipelineConfig, resources: dict[str, float]) -> int:
    """`run.workers`, or as many as the CPUs and GPUs hold. An actor that cannot be placed would
    wait forever with a shard, so asking for GPUs the cluster lacks is an error, and more workers
    than the resources hold only a warning (an autoscaling cluster may still grow)."""
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    fits = int(cpus // max(config.run.cpus_per_worker, 0.01))
    if config.run.gpus_per_worker > 0:
        if gpus <= 0:
            raise SgpipeError(
                f"run.gpus_per_worker is {config.run.gpus_per_worker:g} but Ray sees no GPU "
                "(set run.gpus_per_worker=0 to run the models on CPUs)"
            )
        fits = min(fits, int(gpus / config.run.gpus_per_worker + 1e-9))
    if not config.run.workers and fits < 1:
        needs = f"run.cpus_per_worker={config.run.cpus_per_worker:g} CPUs"
        sees = f"{cpus:g} CPUs"
        if gpus:
            needs += f" and run.gpus_per_worker={config.run.gpus_per_worker:g} GPUs"
            sees += f" and {gpus:g} GPUs"
        hint = "lower them or set run.workers"
        raise SgpipeError(f"no worker fits: each needs {needs}, Ray sees {sees} ({hint})")
    if config.run.workers and config.run.workers > fits:
        log.warning(
            "run.workers=%d but the cluster now holds %d (CPU %g, GPU %g): the rest wait for resources",
            config.run.workers,
            fits,
            cpus,
            gpus,
        )
    return config.run.workers or fits


def local_gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()


def planned_resources(config: PipelineConfig, n_shards: int) -> dict[str, float]:
    """Workers, CPUs and GPUs the run would use on this machine (a dry run starts no Ray). A GPU
    recipe checked on a machine without GPUs is planned for one GPU."""
    cpus = float(os.cpu_count() or 1)
    gpus = float(max(local_gpu_count(), 1)) if config.run.gpus_per_worker > 0 else 0.0
    try:
        workers = placeable_workers(config, {"CPU": cpus, "GPU": gpus})
    except SgpipeError:  # a recipe for bigger machines, checked here: plan one worker
        workers = 1
    workers = max(1, min(workers, max(n_shards, 1)))
    return {
        "workers": workers,
        "cpus": min(cpus, workers * max(config.run.cpus_per_worker, 1.0)),
        "gpus": min(gpus, math.ceil(workers * config.run.gpus_per_worker - 1e-9)),  # whole cards in use
    }


def run_pipeline(
    config: PipelineConfig, options: RunOptions = RunOptions(), stage_factory: StageFactory | None = None
) -> str:
    """Plan, process every incomplete shard on Ray, finalise. Safe to rerun: complete shards are kept.

    `stage_factory` replaces the recipe's stages (benchmarks that simulate a device use it)."""
    out_dir = location(config.output.dir, config.output.storage_options)
    out_dir.mkdir(parents=True, exist_ok=True)
    with lock_output(out_dir, config.output.lease_seconds):
        config_hash = config.content_hash()
        check_resume(out_dir, config_hash, options.force)
        check_models(config)
        plan = build_plan(config.source, config.output.samples_per_shard, plan_dir_of(out_dir))
        selected = select_shards(plan.n_shards, options.shard_range)
        names = listing(out_dir)  # a remote folder is listed once, not asked about each file
        todo = [i for i in selected if not is_shard_complete(out_dir, i, names)]
        redo = shards_to_redo(out_dir, selected, names) if options.redo_failed else []
        todo = sorted(todo + redo)
        if options.dry_run:
            return describe_plan(plan, todo, config, planned_resources(config, len(todo)))
        start_run_json(out_dir, config, plan, redone=redo)
        for index in redo:
            reopen_shard(out_dir, index)
        for index in todo:
            remove_partial_shard(out_dir, index, names)
        try:
            failed_shards = _process(config, plan, todo, options, stage_factory) if todo else {}
        finally:  # an interrupted run still leaves its complete shards indexed
            stats = finalize_outputs(out_dir, plan.dataset)
            finish_run_json(out_dir, stats)
    if failed_shards:
        details = "; ".join(f"{k:05d}: {v}" for k, v in sorted(failed_shards.items()))
        raise SgpipeError(f"{len(failed_shards)} shard(s) failed and can be redone by rerunning: {details}")
    totals = stats["totals"]
    status = ", ".join(f"{k}={v}" for k, v in stats["status"].items())
    return (
        f"wrote {stats['shards']} shards to {out_dir}: {totals['count']} images ({status}), "
        f"{totals['n_triplets']} triplets, {totals['n_relations']} relations, {totals['n_kept']} kept"
    )


def _process(
    config: PipelineConfig,
    plan: SourcePlan,
    todo: list[int],
    options: RunOptions,
    stage_factory: StageFactory | None,
) -> dict[int, str]:
    import ray

    started_ray = _init_ray(config.run.address)
    try:
        resources = ray.cluster_resources()
        n_workers = max(1, min(placeable_workers(config, resources), len(todo)))
        actor_class = ray.remote(_ShardWorker).options(
            num_cpus=config.run.cpus_per_worker,
            num_gpus=config.run.gpus_per_worker,
            max_restarts=3,
            max_task_retries=3,
        )
        job = ShardJob(plan.dataset, tuple(plan.categories))
        workers = [actor_class.remote(config, job, stage_factory) for _ in range(n_workers)]
        failed = _schedule(config, workers, todo, options, plan.n_images)
        _teardown(workers)  # after an error the cluster shutdown below ends the workers anyway
        return failed
    finally:
        if started_ray:
            ray.shutdown()


def _teardown(workers: list) -> None:
    """Ask every worker to free its stages' models and threads; a dead one has nothing left to free."""
    import ray

    refs = [worker.teardown.remote() for worker in workers]
    answered, _ = ray.wait(refs, num_returns=len(refs), timeout=TEARDOWN_TIMEOUT_S)
    for ref in answered:
        try:
            ray.get(ref)
        except Exception as error:  # noqa: BLE001 - the run's outcome is decided already
            log.warning("a worker's teardown failed: %s", error)


def _schedule(
    config: PipelineConfig, workers: list, todo: list[int], options: RunOptions, n_images: int
) -> dict[int, str]:
    import ray

    out_dir = location(config.output.dir, config.output.storage_options)
    pending = list(todo)
    in_flight: dict[Any, tuple[int, Any]] = {}
    failed: dict[int, str] = {}
    progress = Progress(len(todo), options.progress, options.metrics_path)
    done_stats = read_shard_stats(out_dir)
    # small datasets are judged once they are through; large ones after the first N images
    threshold = max(1, min(config.run.min_samples_for_error_rate, n_images))

    def submit(worker: Any) -> None:
        if pending:
            index = pending.pop(0)
            in_flight[worker.process.remote(index)] = (index, worker)

    for worker in workers:
        submit(worker)
    while in_flight:
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        ref = ready[0]
        index, worker = in_flight.pop(ref)
        try:
            shard_stats = ray.get(ref)
        except Exception as error:  # noqa: BLE001 - a shard failing after its retries
            failed[index] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
            log.error("shard %05d failed: %s", index, failed[index])
            submit(worker)
            continue
        progress.update(shard_stats)
        done_stats.append(shard_stats)
        processed, failures = _failure_rate(done_stats)
        if processed >= threshold and failures / processed > config.run.max_error_rate:
            for ref_left in in_flight:
                ray.cancel(ref_left, force=True)
            statuses = Counter()
            for s in done_stats:
                statuses.update({k: v for k, v in s["status"].items() if k not in NOT_FAILURES})
            raise ErrorRateExceeded(
                f"{failures} of {processed} images failed ({failures / processed:.0%} > run.max_error_rate "
                f"{config.run.max_error_rate:.0%}): {dict(statuses)}. Something is systematically wrong "
                f"(a wrong source.images folder?). {REDO_ADVICE}."
            )
        submit(worker)
    if options.progress:
        log.info("done: %s", progress.line())
    return failed
