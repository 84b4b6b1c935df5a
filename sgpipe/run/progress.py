"""What a run tells its user while it goes: the periodic progress line (and the optional metrics
file), the failure rate the error-rate stop judges, and the dry run's plan."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from typing import Any

from sgpipe.config import PipelineConfig
from sgpipe.errors import NOT_FAILURES
from sgpipe.pipeline import enabled_specs, recipe_models
from sgpipe.run.estimate import estimate
from sgpipe.run.layout import Layout, local_gpu_count
from sgpipe.source.plan import SourcePlan

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0


def failure_rate(stats: list[dict[str, Any]], carried: dict[str, int] | None = None) -> tuple[int, int]:
    """(images judged, failed ones); excluded images are neither, nor are the failures `carried` over
    (per shard name) from the shards a run re-scores: an earlier run judged those."""
    carried = carried or {}
    processed = sum(s["count"] - s.get("excluded", 0) - carried.get(s.get("shard", ""), 0) for s in stats)
    failed = sum(s["failed_to_process"] - carried.get(s.get("shard", ""), 0) for s in stats)
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


def describe_plan(plan: SourcePlan, todo: list[int], config: PipelineConfig, layout: Layout) -> str:
    names = [spec.name for spec in enabled_specs(config)]
    models = [f"{model.key} {model.id}" for model in recipe_models(config) if model.id not in ("", "none")]
    images, to_run = plan.n_images, plan.images_in(todo)
    per_shard = "one per tar" if plan.kind == "webdataset" else f"{config.output.samples_per_shard} per shard"
    planned_gpu = layout.gpus and not local_gpu_count()
    return "\n".join(
        [
            f"dataset {plan.dataset}: {_count(images)} images in {plan.n_shards} shards "
            f"({per_shard}), indexed with {plan.method}",
            f"to run: {len(todo)} shards ({_count(to_run)} images); "
            f"{plan.n_shards - len(todo)} already complete or outside --shards",
            f"stages: {' -> '.join(names)}; models: {', '.join(models) or 'none'}",
            layout.describe(),
            f"resources: {layout.cpus:g} CPUs, {layout.gpus:g} GPUs"
            + (" (none visible here: planned for one)" if planned_gpu else ""),
            estimate(config, layout.workers, layout.cpus, layout.gpus, pools=layout.kind == "pools").describe(
                to_run
            ),
            f"output: {config.output.dir}",
        ]
    )


def _count(images: int | None) -> str:
    return "an unknown number of" if images is None else str(images)  # tars are counted as they are read
