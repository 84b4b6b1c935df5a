"""Histogram PNGs of an output folder (matplotlib, Agg backend): shared by `sgpipe stats` and the report."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from sgpipe.errors import OK
from sgpipe.output.atomic import atomic_write_bytes
from sgpipe.storage import Location, location, open_binary
from sgpipe.tools.locations import files_matching

TOP = 25
SHARD_PARQUET = re.compile(r"[0-9]{5}\.parquet")


def _figure_png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def _barh(title: str, series: dict[str, dict[str, int]], xlabel: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    first = next(iter(series.values()))
    names = [name for name, _ in sorted(first.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * max(len(names), 3) + 1.2))
    height = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        ax.barh(
            [j + i * height for j in range(len(names))],
            [values.get(n, 0) for n in names],
            height=height,
            label=label,
        )
    ax.set_yticks([j + height * (len(series) - 1) / 2 for j in range(len(names))], names)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if len(series) > 1:
        ax.legend()
    png = _figure_png(fig)
    plt.close(fig)
    return png


def _per_image_counts(out: Location) -> dict[str, list[int]]:
    """Relations per ok image from the parquet status rows (columns only, shard by shard)."""
    import pyarrow.parquet as pq

    counts: dict[str, list[int]] = {"candidates": [], "kept": []}
    for path in files_matching(location(out), SHARD_PARQUET):
        with open_binary(path) as handle:
            table = pq.read_table(handle, columns=["status", "n_candidates", "n_kept"])
        for status, candidates, kept in zip(*(table.column(c).to_pylist() for c in table.column_names)):
            if status == OK:
                counts["candidates"].append(candidates)
                counts["kept"].append(kept)
    return counts


def _histogram(title: str, counts: dict[str, list[int]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    top = max((max(v) for v in counts.values() if v), default=0)
    bins = range(0, top + 2)
    for label, values in counts.items():
        ax.hist(values, bins=bins, alpha=0.6, label=label)
    ax.set_title(title)
    ax.set_xlabel("relations per image")
    ax.set_ylabel("images")
    ax.legend()
    png = _figure_png(fig)
    plt.close(fig)
    return png


def plot_pngs(out: Location, stats: dict[str, Any]) -> dict[str, bytes]:
    """name -> PNG bytes; a plot whose data is empty is left out."""
    plots: dict[str, bytes] = {}
    if stats.get("status"):
        plots["status"] = _barh("images per status", {"images": stats["status"]}, "images")
    if stats.get("predicates"):
        plots["predicates"] = _barh(
            "top predicates",
            {"stored": stats["predicates"], "kept": stats.get("kept_predicates", {})},
            "relations",
        )
    if stats.get("categories"):
        plots["categories"] = _barh("top categories", {"boxes": stats["categories"]}, "boxes")
    counts = _per_image_counts(out)
    if counts["candidates"]:
        plots["relations_per_image"] = _histogram("relations per image (ok images)", counts)
    return plots


def write_plots(out: Location, stats: dict[str, Any], plots_dir: Path) -> list[Path]:
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, png in plot_pngs(out, stats).items():
        path = plots_dir / f"{name}.png"
        atomic_write_bytes(path, png)
        written.append(path)
    return written
