"""`sgpipe run RECIPE --redo-failed`: which complete shards are redone, and how they are reopened.

A sample's failure is retryable when a rerun can turn it into `ok` without any change to the config:

- `failed_missing`, `failed_decode`: a flaky or wrongly mounted images folder, a file still being copied
  or truncated by a failed transfer (a tar too). The file can come back whole (or `source.images` can be
  pointed at the right mount: a location key, outside the config hash).
- `failed_caption`, `failed_parse`, `failed_detect`, `failed_tag`, `failed_verify`: a stage raised even on
  the sample alone (an out-of-memory on a busy GPU, a device error, a model file read during an outage).

Not retryable, because the same inputs under the same config give the same verdict every time:
`failed_duplicate_id` (decided by the annotation file, which is hashed), `failed_too_large` (the image's
declared size against `source.max_pixels`, read from a header that decoded fine) and
`failed_size_mismatch` (a readable image whose size contradicts its annotation: a data error, not a
transient one). A fixed annotation file is a new config, hence a new output folder.

A shard is redone whole, not sample by sample: every shard's bytes are then those a first run would have
written with the same inputs (the same batches through the same stages), with no argument needed about
batch composition. Shards whose samples are all `ok` or only non-retryable are not touched.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from sgpipe import errors
from sgpipe.output.atomic import fsync_folder
from sgpipe.output.writer import is_shard_complete, shard_paths
from sgpipe.storage import Location

log = logging.getLogger(__name__)
RETRYABLE_STATUSES = frozenset(
    {
        errors.FAILED_MISSING,
        errors.FAILED_DECODE,
        errors.FAILED_CAPTION,
        errors.FAILED_PARSE,
        errors.FAILED_DETECT,
        errors.FAILED_TAG,
        errors.FAILED_VERIFY,
    }
)

# the error-rate stop's advice: with the cause fixed, this is the command that redoes the failed samples
REDO_ADVICE = (
    "Complete shards are kept; fix the cause (a corrected source.images is allowed: it is outside the "
    "config hash) and rerun with --redo-failed to redo their failed samples"
)


def retryable_count(shard_stats: dict) -> int:
    return sum(n for status, n in shard_stats.get("status", {}).items() if status in RETRYABLE_STATUSES)


def shards_to_redo(out_dir: Location, selected: list[int], names: set[str] | None = None) -> list[int]:
    """The complete shards among `selected` holding at least one retryable failure (`names`: the
    output folder's one listing, on an object store)."""
    redo = []
    failures: Counter[str] = Counter()
    for index in selected:
        if not is_shard_complete(out_dir, index, names):
            continue
        stats = json.loads(shard_paths(out_dir, index)["stats"].read_text())
        if retryable_count(stats):
            redo.append(index)
            failures.update({k: v for k, v in stats["status"].items() if k in RETRYABLE_STATUSES})
    if redo:
        counts = dict(sorted(failures.items()))
        log.info("redoing %d complete shard(s) with retryable failures %s", len(redo), counts)
    return redo


def reopen_shard(out_dir: Location, index: int) -> None:
    """Make a complete shard incomplete by removing its marker first, durably.

    The writer then replaces the tar and parquet and writes a new marker last; a kill at any point
    leaves either the old complete shard or an incomplete one that any rerun redoes, never a marker
    over a new tar and an old parquet."""
    shard_paths(out_dir, index)["stats"].unlink(missing_ok=True)
    if isinstance(out_dir, Path):  # an object store's delete is durable when it returns
        fsync_folder(out_dir)
