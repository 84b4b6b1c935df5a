"""`OUT/.sgpipe/failed_shards.json`: the shards the last run could not write, and why (the full list
behind its end-of-run paragraph); `stats.json` counts them."""

from __future__ import annotations

import json
from typing import Any

from sgpipe.output.atomic import write_json_atomic
from sgpipe.records import shard_name
from sgpipe.storage import Location, location

FAILED_SHARDS_FILE = "failed_shards.json"


def failed_shards_path(out_dir: Location) -> Location:
    return location(out_dir) / ".sgpipe" / FAILED_SHARDS_FILE


def write_failed_shards(
    out_dir: Location,
    reason: str,
    failed: dict[int, Any],
    sizes: dict[int, int],
    unfinished: list[int],
) -> Location | None:
    """The full list behind the end-of-run paragraph; removed when a run leaves nothing unwritten."""
    path = failed_shards_path(out_dir)
    if not failed and not unfinished:
        path.unlink(missing_ok=True)
        return None
    listing = {
        "reason": reason,
        "failed": [
            {"shard": shard_name(i), "images": sizes.get(i, 0), **h.counts(), "errors": h.errors}
            for i, h in sorted(failed.items())
        ],
        "unfinished": [shard_name(i) for i in sorted(unfinished)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, listing)
    return path


def read_failed_shards(out_dir: Location) -> list[dict[str, Any]]:
    """The failed shards the last run listed (each with its attempt counts); none when it wrote all."""
    path = failed_shards_path(out_dir)
    return json.loads(path.read_text())["failed"] if path.is_file() else []
