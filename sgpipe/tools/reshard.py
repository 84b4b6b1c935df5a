"""`sgpipe reshard`: rewrite shards into equal-size ones (every shard holds N samples, the last the rest).

Tar members are copied byte for byte (records are not re-encoded), in the writer's tar format (fixed
mtimes, sorted-by-input order), so a resharded sample reads back exactly as it was written. Each new
shard gets fresh parquet rows (ok samples only: failures were never in the tars) and `_stats.json`;
then shardindex.json and stats.json are rebuilt. One output shard is held in memory at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sgpipe.errors import SgpipeError
from sgpipe.records import Sample
from sgpipe.shards import KeyMembers, expand_urls, iter_key_members
from sgpipe.storage import Location
from sgpipe.tools.locations import new_corpus_folder


def write_copied_shard(out: Location, index: int, group: list[KeyMembers]) -> dict:
    """One shard from copied members: tar, parquet rows, `_stats.json` (last), as write_shard does."""
    from sgpipe.output.writer import commit_shard

    samples = [Sample.from_record(item.record()) for item in group]
    return commit_shard(out, index, (member for item in group for member in item.members), samples)


def reshard(
    source: str | Path, out: str | Location, samples_per_shard: int, options: dict[str, Any] | None = None
) -> str:
    """Rewrite the shards at `source` into `out`, `samples_per_shard` each (the last may hold fewer);
    both may be paths or fsspec URLs (read and written with the fsspec `options`)."""
    from sgpipe.output.finalize import finalize_outputs

    if samples_per_shard < 1:
        raise SgpipeError(f"--samples-per-shard must be >= 1, got {samples_per_shard}")
    urls = expand_urls(source, options)
    out = new_corpus_folder(out, options)
    group: list[KeyMembers] = []
    sizes: list[int] = []
    datasets: set[str] = set()
    skipped = 0
    for item in iter_key_members(urls, options):
        record = item.record()
        if record is None:
            skipped += 1  # an image without its record cannot be described in the parquet
            continue
        datasets.add(record.get("dataset", "unknown"))
        group.append(item)
        if len(group) == samples_per_shard:
            write_copied_shard(out, len(sizes), group)
            sizes.append(len(group))
            group = []
    if group:
        write_copied_shard(out, len(sizes), group)
        sizes.append(len(group))
    if not sizes:
        raise SgpipeError(f"no samples in {source}")
    finalize_outputs(out, "+".join(sorted(datasets)))
    summary = f"wrote {len(sizes)} shards, {sum(sizes)} samples, {samples_per_shard} per shard to {out}"
    if sizes[-1] != samples_per_shard:
        summary += f"; the last shard holds {sizes[-1]}"
    if skipped:
        summary += f"; skipped {skipped} keys without a .json record"
    return summary
