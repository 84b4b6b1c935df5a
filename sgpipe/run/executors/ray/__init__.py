"""The Ray executor, the only code that imports Ray: a supervised pool of actors on a local Ray
started in-process or on a cluster (`run.address`, `RAY_ADDRESS`), in the layout `sgpipe.run.layout`
plans from the cluster's resources: flat workers, or device actors serving shard actors (pools)."""

from __future__ import annotations

import logging
import os
from typing import Any

from sgpipe.config import PipelineConfig
from sgpipe.run.executors.ray.pool import Pool
from sgpipe.run.executors.ray.scheduler import Scheduler
from sgpipe.run.layout import cluster_address, plan_layout
from sgpipe.run.processor import ShardJob
from sgpipe.run.signals import StopSignals
from sgpipe.run.supervisor import Supervisor

log = logging.getLogger(__name__)
TEARDOWN_TIMEOUT_S = 30.0  # an actor that does not answer by then is ended with the cluster


def init_ray(address: str) -> bool:
    """Connect to a cluster, or start a local Ray in-process. Returns whether we started it."""
    import ray

    if ray.is_initialized():
        return False
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


class RayExecutor:
    def __init__(self, config: PipelineConfig, job: ShardJob, stage_factory: Any = None):
        self.config = config
        self.job = job
        self.stage_factory = stage_factory

    def run(self, supervisor: Supervisor) -> None:
        import ray

        started_ray = init_ray(cluster_address(self.config))
        try:
            resources = ray.cluster_resources()
            layout = plan_layout(self.config, resources, len(supervisor.todo), self.job.stage_names)
            log.info("%s", layout.describe())
            with StopSignals() as stop:
                pool = Pool(self.config, self.job, self.stage_factory, layout)
                scheduler = Scheduler(pool, supervisor, stop)
                supervisor.halt = scheduler.halt
                try:
                    scheduler.run()
                    _teardown(pool)  # a stop kills the actors instead: nothing of theirs is waited for
                finally:
                    pool.kill_all()
        finally:
            if started_ray:
                ray.shutdown()


def _teardown(pool: Pool) -> None:
    """Ask every live actor to free its stages' models and threads before it is ended."""
    import ray

    actors = [w.actor for w in pool.workers if w.ping is None] + [
        d.actor for d in pool.devices if d.ping is None
    ]
    refs = [actor.teardown.remote() for actor in actors]
    answered, _ = ray.wait(refs, num_returns=len(refs), timeout=TEARDOWN_TIMEOUT_S)
    for ref in answered:
        try:
            ray.get(ref)
        except Exception as error:  # noqa: BLE001 - the run's outcome is decided already
            log.warning("an actor's teardown failed: %s", error)
