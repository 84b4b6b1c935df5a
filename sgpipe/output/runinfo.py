"""`run.json`: what produced an output folder (config and hash, versions, models, dataset, times, totals)."""

from __future__ import annotations

import json
import logging
from typing import Any

from sgpipe.config import PipelineConfig
from sgpipe.output.atomic import write_json_atomic
from sgpipe.output.finalize import LICENCE_NOTES, git_sha, now_iso, software_versions
from sgpipe.records import SCHEMA_VERSION
from sgpipe.source.plan import SourcePlan
from sgpipe.storage import Location, location, redact

log = logging.getLogger(__name__)
# location keys whose change is worth a warning and a line in run.json (`run.*` ones are placement only)
RECORDED_LOCATIONS = ("source.images", "output.dir")


def _recorded_config(config: PipelineConfig) -> dict[str, Any]:
    """The config as run.json keeps it: secrets in storage options hidden."""
    recorded = config.to_dict()
    for section in ("source", "output"):
        recorded[section]["storage_options"] = redact(recorded[section]["storage_options"])
    return recorded


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
    out_dir: Location,
    config: PipelineConfig,
    plan: SourcePlan,
    config_hash: str,
    models: dict[str, str],
    redone: list[int] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write run.json as the run starts: `models` as the stages' table lists them, `redone` the
    complete shards `--redo-failed` reopens, `extra` what the source adds (a reverify's origin)."""
    path = location(out_dir) / "run.json"
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
        "config": _recorded_config(config),
        "config_hash": config_hash,
        "versions": software_versions(),
        "git_sha": git_sha(),
        "models": models,
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
        **(extra or {}),
    }
    write_json_atomic(path, run)
    return run


def finish_run_json(out_dir: Location, stats: dict[str, Any]) -> None:
    path = location(out_dir) / "run.json"
    run = json.loads(path.read_text())
    run["ended"] = now_iso()
    run["totals"] = {**stats["totals"], "shards": stats["shards"], "status": stats["status"]}
    write_json_atomic(path, run)
