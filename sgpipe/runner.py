"""The only module that knows about Ray: a supervised pool of actors, each processing whole shards.

Shards are the unit of scheduling, retry and commit. Each actor builds one `ShardProcessor`
(models load once, on its first shard); the driver keeps one shard in flight per actor and owns
every retry (`attempts.AttemptBook`): a worker that dies, or whose shard runs past the time limit,
is killed and replaced by a new actor (on any node that has room) and the shard goes back in the
queue; a worker the cluster cannot place is dropped. The driver watches the failure rate and stop
signals, and finally rebuilds the run-level files from the shards' `_stats.json`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from sgpipe.attempts import (
    AttemptBook,
    counts_from,
    end_paragraph,
    failed_shards_path,
    shard_timeout,
    write_failed_shards,
)
from sgpipe.config import PipelineConfig
from sgpipe.errors import ErrorRateExceeded, Interrupted, RunStopped, SgpipeError, ShardsFailed
from sgpipe.output.finalize import finalize_outputs
from sgpipe.output.guards import check_resume, lock_output
from sgpipe.output.runinfo import finish_run_json, start_run_json
from sgpipe.output.writer import is_shard_complete, read_shard_stats, remove_partial_shard, shard_paths
from sgpipe.pipeline import ShardJob
from sgpipe.preflight import check_models
from sgpipe.progress import Progress, describe_plan, failure_rate, local_gpu_count
from sgpipe.redo import REDO_ADVICE, reopen_shard, shards_to_redo
from sgpipe.source.plan import SourcePlan, build_plan, plan_dir_of
from sgpipe.stages.base import Stage
from sgpipe.storage import listing, location

log = logging.getLogger(__name__)
WAIT_S = 1.0  # how often the driver looks at the clocks and for stop signals while shards run
HEARTBEAT_S = 30.0  # a line while nothing finishes, so a quiet run never looks hung
SETTLE_S = 15.0  # how long a stop waits for its killed workers to be gone before cleaning up
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

    def ready(self) -> tuple[int, str]:
        """Answered once the actor is placed and built: its process id and node, for the logs."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()

    def process(self, index: int, attempts: dict[str, int] | None = None) -> dict[str, Any]:
        return self.processor.process_shard(index, attempts)

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


def workers_that_fit(config: PipelineConfig, resources: dict[str, float]) -> int:
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    fits = int(cpus // max(config.run.cpus_per_worker, 0.01))
    if config.run.gpus_per_worker > 0:
        fits = min(fits, int(gpus / config.run.gpus_per_worker + 1e-9))
    return fits


def placeable_workers(config: PipelineConfig, resources: dict[str, float]) -> int:
    """`run.workers`, or as many as the CPUs and GPUs hold, never more: an actor that cannot be
    placed would wait forever with a shard. So asking for GPUs the cluster lacks, or for workers
    bigger than it holds, is an error before any work, and more workers than it holds are cut."""
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if config.run.gpus_per_worker > 0 and gpus <= 0:
        raise SgpipeError(
            f"run.gpus_per_worker is {config.run.gpus_per_worker:g} but Ray sees no GPU "
            "(set run.gpus_per_worker=0 to run the models on CPUs)"
        )
    fits = workers_that_fit(config, resources)
    if fits < 1:
        needs = f"run.cpus_per_worker={config.run.cpus_per_worker:g} CPUs"
        sees = f"{cpus:g} CPUs"
        if gpus:
            needs += f" and run.gpus_per_worker={config.run.gpus_per_worker:g} GPUs"
            sees += f" and {gpus:g} GPUs"
        raise SgpipeError(f"no worker fits: each needs {needs}, Ray sees {sees} (lower them)")
    if config.run.workers > fits:
        log.warning(
            "run.workers=%d but the cluster holds %d (CPU %g, GPU %g): running %d",
            config.run.workers,
            fits,
            cpus,
            gpus,
            fits,
        )
        return fits
    return config.run.workers or fits


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
        if not todo:
            failed_shards_path(out_dir).unlink(missing_ok=True)
        try:
            if todo:
                _process(config, plan, todo, options, stage_factory)
        finally:  # a stopped run still leaves its complete shards indexed
            stats = finalize_outputs(out_dir, plan.dataset)
            finish_run_json(out_dir, stats)
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
) -> None:
    import ray

    started_ray = _init_ray(config.run.address)
    try:
        n_workers = max(1, min(placeable_workers(config, ray.cluster_resources()), len(todo)))
        with _StopSignals() as stop:
            pool = _Pool(config, ShardJob(plan.dataset, tuple(plan.categories)), stage_factory, n_workers)
            try:
                _Scheduler(config, plan, todo, options, pool, stop).run()
                _teardown(pool)  # a stop kills the workers instead: nothing of theirs is waited for
            finally:
                pool.kill_all()
    finally:
        if started_ray:
            ray.shutdown()


def _teardown(pool: "_Pool") -> None:
    """Ask every live worker to free its stages' models and threads before it is ended."""
    import ray

    refs = [worker.actor.teardown.remote() for worker in pool.workers if worker.ping is None]
    answered, _ = ray.wait(refs, num_returns=len(refs), timeout=TEARDOWN_TIMEOUT_S)
    for ref in answered:
        try:
            ray.get(ref)
        except Exception as error:  # noqa: BLE001 - the run's outcome is decided already
            log.warning("a worker's teardown failed: %s", error)


class _StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM set a flag that the scheduling loop reads, so a stop finishes
    cleanly instead of raising inside Ray calls. Handlers can only be set in the main thread; a run
    started from another thread (a test's, a notebook's) keeps the process's handlers."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: Any) -> None:
        self.received = number

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


@dataclass(eq=False)
class _Attempt:
    index: int
    ref: Any
    started: float | None  # when its worker was ready to run it: the shard's clock


@dataclass(eq=False)
class _Worker:
    actor: Any
    ping: Any  # the pending `ready()` call; None once the worker answered
    created: float
    pid: int | None = None
    node: str = ""
    attempt: _Attempt | None = None

    def where(self) -> str:
        return f"pid {self.pid} on node {self.node[:8]}" if self.pid else "a worker not yet started"


class _Pool:
    """The actors. Ray restarts nothing (`max_restarts=0`): a lost worker is killed and replaced
    here, on any node with room; when the cluster no longer holds the pool (a node gone), it shrinks."""

    def __init__(self, config: PipelineConfig, job: ShardJob, stage_factory: StageFactory | None, size: int):
        import ray

        self.config = config
        self.actor_class = ray.remote(_ShardWorker).options(
            num_cpus=config.run.cpus_per_worker,
            num_gpus=config.run.gpus_per_worker,
            max_restarts=0,
            max_task_retries=0,
        )
        self.args = (config, job, stage_factory)
        self.workers: list[_Worker] = [self._start() for _ in range(size)]

    def _start(self) -> _Worker:
        actor = self.actor_class.remote(*self.args)
        return _Worker(actor, actor.ready.remote(), time.monotonic())

    def retire(self, worker: _Worker) -> None:
        import ray

        self.workers.remove(worker)
        try:
            ray.kill(worker.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone is what we want
            pass

    def replace(self, worker: _Worker) -> bool:
        """Kill `worker` and start another if the cluster still holds the pool; returns whether."""
        import ray

        self.retire(worker)
        if workers_that_fit(self.config, ray.cluster_resources()) > len(self.workers):
            self.workers.append(self._start())
            return True
        log.warning(
            "the cluster no longer holds %d workers: going on with %d",
            len(self.workers) + 1,
            len(self.workers),
        )
        return False

    def kill_all(self) -> None:
        for worker in list(self.workers):
            self.retire(worker)


def _describe(error: BaseException) -> str:
    """One short line for an attempt's error: the task's own exception, or why Ray lost the actor."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, type(error)):
        error = cause
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = next((line for line in lines if " because " in line), lines[0] if lines else "")
    if " because " in reason:  # Ray's first sentence says it all ("... its node has died.")
        reason = reason.split(". ")[0].rstrip(".")
    return f"{type(error).__name__}: {reason}"[:200]


def _is_worker_lost(error: BaseException) -> bool:
    """An exception raised by the shard's code leaves its worker usable; any other (actor died,
    node lost, worker out of memory) means the worker is gone or not to be trusted."""
    import ray

    return isinstance(error, ray.exceptions.RayActorError) or not isinstance(
        error, ray.exceptions.RayTaskError
    )


class _Scheduler:
    """One shard in flight per worker; every attempt's outcome goes to the `AttemptBook`."""

    def __init__(
        self,
        config: PipelineConfig,
        plan: SourcePlan,
        todo: list[int],
        options: RunOptions,
        pool: _Pool,
        stop: _StopSignals,
    ):
        self.config = config
        self.out_dir = location(config.output.dir, config.output.storage_options)
        self.plan = plan
        self.todo = todo
        self.options = options
        self.pool = pool
        self.stop = stop
        self.book = AttemptBook(todo, config.run.shard_attempts)
        self.progress = Progress(len(todo), options.progress, options.metrics_path)
        self.done_stats = read_shard_stats(self.out_dir)
        # small datasets are judged once they are through; large ones after the first N images
        known = plan.n_images if plan.n_images is not None else config.run.min_samples_for_error_rate
        self.threshold = max(1, min(config.run.min_samples_for_error_rate, known))
        self.last_news = time.monotonic()

    def run(self) -> None:
        while True:
            if self.stop.received is not None:
                name = signal.Signals(self.stop.received).name
                self._halt()
                raise Interrupted(
                    self._report(
                        f"Stopped by {name}", "Rerun the same command to resume: complete shards are kept."
                    ),
                    self.stop.received,
                )
            self._assign()
            busy = [w for w in self.pool.workers if w.attempt is not None]
            if not busy:
                break
            self._wait_once()
            self._check_clocks()
            self._heartbeat()
        if self.options.progress:
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

    def _assign(self) -> None:
        if not self.pool.workers and self.book.pending:
            self._halt()
            raise RunStopped(
                self._report(
                    "Stopped: no worker can be placed on the cluster",
                    "Add nodes or lower run.cpus_per_worker / run.gpus_per_worker, then rerun the same "
                    "command to resume: complete shards are kept.",
                )
            )
        for worker in self.pool.workers:
            if worker.attempt is None:
                taken = self.book.start_next()
                if taken is None:
                    return
                index, counts = taken
                ref = worker.actor.process.remote(index, counts)
                started = time.monotonic() if worker.ping is None else None
                worker.attempt = _Attempt(index, ref, started)

    def _wait_once(self) -> None:
        import ray

        owners: dict[Any, _Worker] = {}
        for worker in self.pool.workers:
            if worker.ping is not None:
                owners[worker.ping] = worker
            if worker.attempt is not None:
                owners[worker.attempt.ref] = worker
        ready, _ = ray.wait(list(owners), num_returns=1, timeout=WAIT_S)
        for ref in ready:
            worker = owners[ref]
            if worker not in self.pool.workers:
                continue  # its other call already reported it lost
            if ref is worker.ping:
                self._on_ready(worker)
            else:
                self._on_result(worker)

    def _on_ready(self, worker: _Worker) -> None:
        import ray

        try:
            worker.pid, worker.node = ray.get(worker.ping)
        except Exception as error:  # noqa: BLE001 - a worker that could not start
            self._lose(worker, error)
            return
        worker.ping = None
        if worker.attempt is not None:
            worker.attempt.started = time.monotonic()

    def _on_result(self, worker: _Worker) -> None:
        import ray

        attempt = worker.attempt
        assert attempt is not None
        try:
            shard_stats = ray.get(attempt.ref)
        except Exception as error:  # noqa: BLE001 - sorted into lost workers and shard errors
            if _is_worker_lost(error):
                self._lose(worker, error)
                return
            worker.attempt = None
            self._failed_attempt(attempt.index, _describe(error), worker_lost=False)
            return
        worker.attempt = None
        self._done(attempt.index, shard_stats, time.monotonic() - (attempt.started or time.monotonic()))

    def _done(self, index: int, shard_stats: dict[str, Any], seconds: float) -> None:
        self.book.done(index, seconds)
        self.progress.update(shard_stats)
        self.done_stats.append(shard_stats)
        self.last_news = time.monotonic()
        self._check_error_rate()

    def _lose(self, worker: _Worker, error: BaseException | str, timed_out: bool = False) -> None:
        """The worker is gone or stuck: kill it, replace it, and retry the shard it held."""
        attempt = worker.attempt
        where = worker.where()
        replaced = self.pool.replace(worker)
        reason = error if isinstance(error, str) else _describe(error)
        if attempt is None:
            log.warning("worker %s lost before taking a shard (%s)", where, reason)
            return
        # it may have committed its shard just before: then the shard is done (every shard scheduled
        # was incomplete when the run began: `--redo-failed` reopened its complete ones)
        if is_shard_complete(self.out_dir, attempt.index):
            log.warning("shard %05d: worker %s lost after committing it (%s)", attempt.index, where, reason)
            stats_path = shard_paths(self.out_dir, attempt.index)["stats"]
            self._done(attempt.index, json.loads(stats_path.read_text()), 0.0)
            return
        log.warning(
            "shard %05d: worker %s %s (%s)%s",
            attempt.index,
            where,
            "timed out" if timed_out else "lost",
            reason,
            "; replaced" if replaced else "",
        )
        self._failed_attempt(attempt.index, reason, worker_lost=True, timed_out=timed_out)

    def _failed_attempt(self, index: int, reason: str, worker_lost: bool, timed_out: bool = False) -> None:
        retried = self.book.attempt_failed(index, reason, worker_lost=worker_lost, timed_out=timed_out)
        attempts = self.book.history[index].attempts
        if retried:
            log.warning("shard %05d: attempt %d failed (%s); retrying", index, attempts, reason)
        else:
            log.error("shard %05d failed after %d attempts: %s", index, attempts, reason)
            self._check_error_rate()

    def _check_clocks(self) -> None:
        now = time.monotonic()
        limit = shard_timeout(self.config.run.shard_timeout_s, self.book.slowest_done_s)
        for worker in list(self.pool.workers):
            attempt = worker.attempt
            if attempt is not None and attempt.started is not None and now - attempt.started > limit:
                self._lose(
                    worker, f"running for more than {limit:.0f} s (run.shard_timeout_s)", timed_out=True
                )
            elif worker.ping is not None and now - worker.created > self.config.run.placement_timeout_s:
                log.warning(
                    "a worker was not placed (or not started) within run.placement_timeout_s=%g s: "
                    "dropped, its shard goes to the others",
                    self.config.run.placement_timeout_s,
                )
                self.pool.retire(worker)
                if attempt is not None:
                    self.book.not_started(attempt.index)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if not self.options.progress or now - self.last_news < HEARTBEAT_S:
            return
        self.last_news = now
        running = [w for w in self.pool.workers if w.attempt is not None and w.attempt.started is not None]
        oldest = min(running, key=lambda w: w.attempt.started, default=None)  # type: ignore[union-attr]
        placed = sum(1 for w in self.pool.workers if w.ping is None)
        line = (
            f"waiting: {len(running)} shards running, {len(self.book.pending)} queued, "
            f"{placed}/{len(self.pool.workers)} workers started"
        )
        if oldest is not None and oldest.attempt is not None and oldest.attempt.started is not None:
            limit = shard_timeout(self.config.run.shard_timeout_s, self.book.slowest_done_s)
            line += (
                f"; oldest shard {oldest.attempt.index:05d} for {now - oldest.attempt.started:.0f} s "
                f"({oldest.where()}, time limit {limit:.0f} s)"
            )
        log.info("%s; %s", line, self.progress.line())

    def _check_error_rate(self) -> None:
        processed, failures = failure_rate(self.done_stats)
        lost = sum(self.plan.shard_sizes[i] or 0 for i in self.book.failed)  # None: a tar never read
        processed, failures = processed + lost, failures + lost
        rate = self.config.run.max_error_rate
        if processed < self.threshold or failures / processed <= rate:
            return
        self._halt()
        raise ErrorRateExceeded(
            self._report(
                f"Stopped: {failures} of {processed} images failed ({failures / processed:.0%} > "
                f"run.max_error_rate {rate:.0%}); something is systematically wrong (a wrong "
                "source.images folder?)",
                f"{REDO_ADVICE}.",
            )
        )

    def _halt(self) -> None:
        """Stop in-flight work: kill every worker, wait until they are gone, drop partial files."""
        import ray

        running = [w.attempt for w in self.pool.workers if w.attempt is not None]
        self.pool.kill_all()
        if running:
            ray.wait([a.ref for a in running], num_returns=len(running), timeout=SETTLE_S)
        names = listing(self.out_dir)
        for attempt in running:
            remove_partial_shard(self.out_dir, attempt.index, names)

    def _report(self, headline: str, advice: str) -> str:
        complete = read_shard_stats(self.out_dir)
        names = listing(self.out_dir)
        unfinished = [
            i
            for i in self.todo
            if i not in self.book.failed and not is_shard_complete(self.out_dir, i, names)
        ]
        sizes = {i: self.plan.shard_sizes[i] for i in self.book.failed}
        list_path = write_failed_shards(self.out_dir, headline, self.book.failed, sizes, unfinished)
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
