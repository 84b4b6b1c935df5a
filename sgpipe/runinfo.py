"""`run.json`: what produced an output folder (config and hash, versions, models, dataset, times, totals)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sgpipe.config import PipelineConfig
from sgpipe.records import SCHEMA_VERSION
from sgpipe.source.plan import SourcePlan
from sgpipe.stages.finalize import LICENCE_NOTES, git_sha, now_iso, software_versions
from sgpipe.stages.write import write_json_atomic

log = logging.getLogger(__name__)
# location keys whose change is worth a warning and a line in run.json (`run.*` ones are placement only)
RECORDED_LOCATIONS = ("source.images", "output.dir")


def _models(config: PipelineConfig) -> dict[str, Any]:
    models: dict[str, Any] = {"spacy": config.parse.spacy_model, "embedding": config.tag.embedding_model}
    if config.caption.enabled:
        models["captioner"] = config.caption.model
    if config.verify.enabled:
        models["verifier"] = config.verify.checkpoint
    return models


def moved_locations(previous: dict[str, Any], config: PipelineConfig) -> list[dict[str, Any]]:
    """Location keys (not in the config hash) whose value differs from the previous run's on this
    folder: a resume from a moved images mount is allowed, but said and recorded, never silent."""
    before = previous.get("config") or {}
    now = config.locations()
    moved = []
    for name in RECORDED_LOCATIONS:
        section, key = name.split(".")
        old = (before.get(section) or {}).get(key)
        if old is not None and old != now[name]:
            moved.append({"key": name, "from": old, "to": now[name], "at": now_iso()})
    return moved


def start_run_json(
    out_dir: Path, config: PipelineConfig, plan: SourcePlan, redone: list[int] = ()
) -> dict[str, Any]:
    """Write run.json as the run starts; `redone` are the complete shards `--redo-failed` reopens."""
    path = Path(out_dir) / "run.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    moved = moved_locations(previous, config)
    for change in moved:
        log.warning(
            "%s is now %r (was %r): a location, outside the config hash; shards already complete keep "
            "what was read from the old one (recorded in run.json under location_changes)",
            change["key"],
            change["to"],
            change["from"],
        )
    run = {
        "schema_version": SCHEMA_VERSION,
        "config": config.to_dict(),
        "config_hash": config.content_hash(),
        "versions": software_versions(),
        "git_sha": git_sha(),
        "models": _models(config),
        "thresholds": {
            "store": config.verify.store_threshold if config.verify.enabled else None,
            "keep": config.verify.keep_threshold if config.verify.enabled else None,
        },
        "dataset": {
            "name": plan.dataset,
            "licence_note": LICENCE_NOTES.get(plan.dataset.lower(), "See the source dataset's own licence."),
            "images": plan.n_images,
            "shards": plan.n_shards,
            "categories": len(plan.categories),
            "index_method": plan.method,
            "source_counters": plan.counters,
        },
        "started": previous.get("started") or now_iso(),
        "resumed": previous.get("resumed", 0) + (1 if previous else 0),
        "ended": None,
        "totals": previous.get("totals"),
        "location_changes": previous.get("location_changes", []) + moved,
        "redone": previous.get("redone", [])
        + ([{"at": now_iso(), "shards": list(redone)}] if redone else []),
    }
    write_json_atomic(path, run)
    return run


def finish_run_json(out_dir: Path, stats: dict[str, Any]) -> None:
    path = Path(out_dir) / "run.json"
    run = json.loads(path.read_text())
    run["ended"] = now_iso()
    run["totals"] = {**stats["totals"], "shards": stats["shards"], "status": stats["status"]}
    write_json_atomic(path, run)
