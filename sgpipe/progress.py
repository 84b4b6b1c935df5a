"""What a run tells its user while it goes, without Ray: the periodic progress line (and the
optional metrics file), the failure rate the error-rate stop judges, and the dry run's plan."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from typing import Any

from sgpipe.config import PipelineConfig
from sgpipe.errors import NOT_FAILURES
from sgpipe.estimate import estimate
from sgpipe.pipeline import build_stages
from sgpipe.source.plan import SourcePlan

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0


def failure_rate(stats: list[dict[str, Any]]) -> tuple[int, int]:
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
    if config.detect.enabled:
        models.append(f"detector {config.detect.model}")
    if config.verify.enabled:
        models.append(f"verifier {config.verify.checkpoint}")
    images, to_run = plan.n_images, plan.images_in(todo)
    per_shard = "one per tar" if plan.kind == "webdataset" else f"{config.output.samples_per_shard} per shard"
    return "\n".join(
        [
            f"dataset {plan.dataset}: {_count(images)} images in {plan.n_shards} shards "
            f"({per_shard}), indexed with {plan.method}",
            f"to run: {len(todo)} shards ({_count(to_run)} images); "
            f"{plan.n_shards - len(todo)} already complete or outside --shards",
            f"stages: {' -> '.join(stages)}; models: {', '.join(models) or 'none'}",
            f"resources: {resources['workers']} workers, {resources['cpus']:g} CPUs, "
            f"{resources['gpus']:g} GPUs"
            + (
                " (none visible here: planned for one)" if resources["gpus"] and not local_gpu_count() else ""
            ),
            estimate(config, **resources).describe(to_run),
            f"output: {config.output.dir}",
        ]
    )


def _count(images: int | None) -> str:
    return "an unknown number of" if images is None else str(images)  # tars are counted as they are read


def local_gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()
