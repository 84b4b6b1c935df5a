"""A run's lifecycle, whatever executes its shards: lock the output, check the config hash, check
the world (preflight), plan, pick the shards to do (resume, `--shards`, `--redo-failed`), write
run.json, hand the shards to an executor, and finalise from the shards' `_stats.json` even when the
run stopped. `sgpipe run` and `sgpipe reverify` both go through it; they differ in their source.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from sgpipe.config import PipelineConfig
from sgpipe.errors import SgpipeError
from sgpipe.output.failed_shards import failed_shards_path
from sgpipe.output.faults import output_fault
from sgpipe.output.finalize import finalize_outputs
from sgpipe.output.guards import check_resume, lock_output
from sgpipe.output.runinfo import finish_run_json, start_run_json
from sgpipe.output.writer import is_shard_complete, remove_partial_shard
from sgpipe.pipeline import recipe_models
from sgpipe.run.identity import config_hash
from sgpipe.run.layout import choose_executor, planned_layout
from sgpipe.run.preflight import check_run
from sgpipe.run.processor import ShardJob
from sgpipe.run.progress import describe_plan
from sgpipe.run.redo import reopen_shard, shards_to_redo
from sgpipe.run.sources import PlannedSource
from sgpipe.run.supervisor import Supervisor
from sgpipe.source.plan import SourcePlan
from sgpipe.stages.base import Stage
from sgpipe.storage import Location, listing, location

log = logging.getLogger(__name__)

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
    redo_failed: bool = False  # also redo complete shards holding retryable failures (sgpipe.run.redo)


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


def run_pipeline(
    config: PipelineConfig,
    options: RunOptions = RunOptions(),
    stage_factory: StageFactory | None = None,
    source: Any = None,
) -> str:
    """Plan, process every incomplete shard, finalise. Safe to rerun: complete shards are kept.

    `stage_factory` replaces the recipe's stages (benchmarks that simulate a device use it);
    `source` replaces the recipe's source (`sgpipe reverify` passes the shards it re-scores)."""
    source = source or PlannedSource(config)
    out_dir = location(config.output.dir, config.output.storage_options)
    try:
        return _run(config, options, stage_factory, source, out_dir)
    except OSError as error:  # the output folder itself (its lock, a listing): named like a shard's
        fault = output_fault(error, error.filename or out_dir)
        if fault is None:
            raise
        raise fault from error


def _run(
    config: PipelineConfig, options: RunOptions, stage_factory: Any, source: Any, out_dir: Location
) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    with lock_output(out_dir, config.output.lease_seconds):
        digest = config_hash(config, source.hash_extra())
        check_resume(out_dir, digest, options.force)
        check_run(config, source)
        plan = source.plan()
        available = set(source.shards(plan))
        selected = [i for i in select_shards(plan.n_shards, options.shard_range) if i in available]
        names = listing(out_dir)  # a remote folder is listed once, not asked about each file
        todo = [i for i in selected if not is_shard_complete(out_dir, i, names)]
        redo = shards_to_redo(out_dir, selected, names) if options.redo_failed else []
        todo = sorted(todo + redo)
        if options.dry_run:
            return describe_plan(plan, todo, config, planned_layout(config, len(todo), source.stage_names))
        models = {model.key: model.id for model in recipe_models(config)}
        start_run_json(out_dir, config, plan, digest, models, redone=redo, extra=source.run_info())
        for index in redo:
            reopen_shard(out_dir, index)
        for index in todo:
            remove_partial_shard(out_dir, index, names)
        if not todo:
            failed_shards_path(out_dir).unlink(missing_ok=True)
        job = ShardJob(
            plan.dataset, tuple(plan.categories), source, source.stage_names, digest, source.base_models()
        )
        try:
            if todo:
                _execute(config, plan, todo, out_dir, options, job, stage_factory)
        except BaseException:  # a stopped run still leaves its complete shards indexed
            _finalize_quietly(out_dir, plan)
            raise
        stats = finalize_outputs(out_dir, plan.dataset)
        finish_run_json(out_dir, stats)
    totals = stats["totals"]
    status = ", ".join(f"{k}={v}" for k, v in stats["status"].items())
    return (
        f"wrote {stats['shards']} shards to {out_dir}: {totals['count']} images ({status}), "
        f"{totals['n_triplets']} triplets, {totals['n_relations']} relations, {totals['n_kept']} kept"
    )


def _execute(
    config: PipelineConfig,
    plan: SourcePlan,
    todo: list[int],
    out_dir: Location,
    options: RunOptions,
    job: ShardJob,
    stage_factory: StageFactory | None,
) -> None:
    supervisor = Supervisor(config, plan, todo, out_dir, options, job.source.carried_failures())
    if choose_executor(config, len(todo)) == "local":
        from sgpipe.run.executors.local import LocalExecutor

        LocalExecutor(config, job, stage_factory).run(supervisor)
    else:
        from sgpipe.run.executors.ray import RayExecutor

        RayExecutor(config, job, stage_factory).run(supervisor)


def _finalize_quietly(out_dir: Location, plan: SourcePlan) -> None:
    """Finalise after a stop without hiding why it stopped (a full disk fails this too)."""
    try:
        stats = finalize_outputs(out_dir, plan.dataset)
        finish_run_json(out_dir, stats)
    except Exception as error:  # noqa: BLE001 - the stop's own error is the one to report
        log.warning("could not finalise %s after the stop: %s", out_dir, error)
