"""`sgpipe stats`: totals, status counts, top predicates and categories, throughput; optional plots.

Reads `stats.json` (and `run.json` for wall-clock times) from a folder or a URL; an output folder
whose run has not been finalised yet is summarised from its shards' `_stats.json` files, without
writing anything.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from sgpipe.errors import SgpipeError
from sgpipe.storage import Location, location
from sgpipe.tools.locations import existing_folder

TOP = 15


def load_stats(out: str | Location, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """stats.json, or the same aggregate computed from the complete shards when it is missing."""
    return stats_of(existing_folder(out, options))


def stats_of(out: Location) -> dict[str, Any]:
    """`load_stats` of a folder already checked (`existing_folder`)."""
    from sgpipe.output.failed_shards import read_failed_shards
    from sgpipe.output.finalize import aggregate_stats
    from sgpipe.output.writer import read_shard_stats

    path = out / "stats.json"
    if path.is_file():
        return json.loads(path.read_text())
    shard_stats = read_shard_stats(out)
    if not shard_stats:
        raise SgpipeError(f"{out} holds neither stats.json nor complete shards (NNNNN_stats.json)")
    return aggregate_stats(shard_stats, read_failed_shards(out))


def load_run(out: str | Location, options: dict[str, Any] | None = None) -> dict[str, Any]:
    path = location(out, options) / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run_seconds(run: dict[str, Any]) -> float | None:
    try:
        started = dt.datetime.fromisoformat(run["started"])
        ended = dt.datetime.fromisoformat(run["ended"])
    except (KeyError, TypeError, ValueError):
        return None
    return (ended - started).total_seconds()


def _top(histogram: dict[str, int], n: int = TOP) -> list[tuple[str, int]]:
    return sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def format_stats(stats: dict[str, Any], run: dict[str, Any]) -> str:
    totals = stats["totals"]
    lines = []
    if run.get("dataset"):
        lines.append(
            f"dataset: {run['dataset'].get('name')}  started {run.get('started')}  ended {run.get('ended')}"
        )
    lines.append(
        f"shards: {stats['shards']}  images: {totals['count']}  ok: {totals['successes']}  "
        f"failed: {totals['failed_to_process']}"
        + (f"  excluded: {totals['excluded']}" if totals.get("excluded") else "")
    )
    lines.append(
        f"objects: {totals['n_objects']}  captions: {totals['n_captions']}  triplets: {totals['n_triplets']}"
        f"  relations: {totals['n_relations']}  kept: {totals['n_kept']}"
    )
    lines.append("status:")
    lines += [f"  {name:<22} {count}" for name, count in _top(stats["status"], n=len(stats["status"]))]
    kept = stats.get("kept_predicates", {})
    lines.append(f"top predicates (stored / kept), {len(stats['predicates'])} distinct:")
    lines += [f"  {name:<22} {count:>8} / {kept.get(name, 0)}" for name, count in _top(stats["predicates"])]
    lines.append(f"top categories, {len(stats['categories'])} distinct:")
    lines += [f"  {name:<22} {count:>8}" for name, count in _top(stats["categories"])]
    throughput = stats.get("throughput", {})
    lines.append(
        f"throughput: {throughput.get('images_per_worker_second')} images per worker-second "
        f"({throughput.get('worker_seconds')} worker-seconds)"
    )
    seconds = run_seconds(run)
    if seconds:
        lines.append(f"  wall clock: {seconds:.0f} s, {totals['count'] / seconds:.2f} images/s overall")
    for stage, numbers in throughput.get("stages", {}).items():
        lines.append(f"  {stage:<10} {numbers['seconds']:>10} s  {numbers['images_per_second']} images/s")
    retries = stats.get("retries")
    if retries:  # outputs of older versions have none
        splits = ", ".join(f"{stage} {n}" for stage, n in retries["batch_splits"].items() if n) or "none"
        devices = retries.get("devices_lost")  # the pools layout
        lost = f"{devices} attempts lost with a device actor; " if devices else ""
        lines.append(
            f"retries: {retries['shards_retried']} shards retried ({retries['shard_attempts']} attempts), "
            f"{retries['failed_shards']} failed; {retries['workers_replaced']} workers replaced "
            f"({retries['timed_out']} after a time-out); {lost}batch splits: {splits}"
        )
    return "\n".join(lines)


def show_stats(
    out: str | Location, plots_dir: Path | None = None, options: dict[str, Any] | None = None
) -> str:
    """The text summary of an output folder (a path or URL); with `plots_dir`, histogram PNGs there too."""
    out = existing_folder(out, options)
    stats = stats_of(out)
    text = format_stats(stats, load_run(out))
    if plots_dir is not None:
        from sgpipe.tools.plots import write_plots

        written = write_plots(out, stats, Path(plots_dir))
        text += f"\nplots: {', '.join(str(p) for p in written)}"
    return text
