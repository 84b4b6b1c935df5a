"""`sgpipe leakage`: which source images are also evaluation images, by id, bytes or perceptual hash.

The source is read the way `sgpipe run` reads it: the recipe's `source` section is planned by
`source/plan.py` (into a temporary folder, so a live run's plan is never touched), its shards are
read by `source/readers.py` (a webdataset tar streamed once) and file names are resolved by
`source/decode.py`'s rules. Source files are hashed in threads with a bounded window and
matched block by block against the evaluation hashes, so memory holds the evaluation set and one
block, whatever the source's size.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from sgpipe.config import PipelineConfig
from sgpipe.errors import SgpipeError
from sgpipe.leakage.against import EvaluationSet, load_evaluation
from sgpipe.leakage.hashing import HASH_BITS, FileHashes, bounded_map, hash_bytes, hash_file
from sgpipe.leakage.match import nearest, to_words
from sgpipe.output.atomic import write_json_atomic
from sgpipe.records import ImageEntry
from sgpipe.source.decode import read_remote_image, resolve_image_path
from sgpipe.source.plan import build_plan
from sgpipe.source.readers import ShardItem, ShardReader
from sgpipe.storage import Location, RemotePath, location, url_problem

log = logging.getLogger(__name__)

# Largest Hamming distance (of the hash's 256 bits) reported as a copy, measured by
# benchmarks/bench_leakage.py (docs/BENCHMARKS.md): re-encoded and resized copies lie within 38,
# centred crops of 2-4% within 52, 93% of 6% crops within 56; none of 2M pairs of distinct synthetic
# scenes (the same shapes on the same kind of background) came within 56, 7 within 64. Distinct
# images average 128. Over N x M pairs the false-positive tail matters more than a few crops.
DEFAULT_MAX_DISTANCE = 56
MATCH_BLOCK = 4096  # source images matched against the evaluation hashes at once
PROGRESS_EVERY_S = 30.0
SEEN = ("source_hashed", "source_missing", "source_unreadable")


@dataclass(frozen=True, slots=True)
class SourceImage:
    entry: ImageEntry
    found: bool
    hashes: FileHashes | None


def check_source_paths(config: PipelineConfig) -> None:
    """The source's instances file and images folder (or its tars), local or any fsspec URL, as
    `sgpipe run` checks them."""
    from sgpipe.run.preflight import path_problem, tar_problems

    problems: list[str] = []
    src = config.source
    keys = {"coco": (("instances", "file"), ("images", "folder")), "folder": (("images", "folder"),)}
    for key, kind in keys.get(src.kind, ()):
        where, url = f"source.{key}", getattr(src, key)
        problem = url_problem(url, where) or path_problem(where, url, kind, src.storage_options)
        if problem:
            problems.append(problem)
    if src.kind == "webdataset":
        problems += tar_problems(src)
    if problems:
        raise SgpipeError("; ".join(problems))


def _source_entries(config: PipelineConfig, plan_dir: Path, counters: Counter) -> Iterator[ShardItem]:
    plan = build_plan(config.source, config.output.samples_per_shard, plan_dir)
    reader = ShardReader(config.source, plan_dir, alt_texts=False)
    for index in range(plan.n_shards):
        for entry, image in reader.items(index):
            if entry.duplicate:  # a repeated id: its first entry stands for it
                counters["source_duplicates"] += 1
                continue
            yield entry, image


def _hash_source(item: ShardItem, root: Location | None) -> SourceImage:
    """The image the source carries (a tar's), else the file under the decode stage's name rules: a
    local file, or an object fetched by name."""
    entry, image = item
    if image is not None:
        return SourceImage(entry, True, hash_bytes(image))
    if root is None or entry.failure:  # an item without its image
        return SourceImage(entry, False, None)
    if isinstance(root, RemotePath):
        data, _ = read_remote_image(root, entry.file_name)
        return SourceImage(entry, data is not None, hash_bytes(data) if data is not None else None)
    path, _ = resolve_image_path(root, entry.file_name)
    return SourceImage(entry, path is not None, hash_file(path) if path is not None else None)


def _match(image: SourceImage, evaluation: EvaluationSet, phash_index: int, distance: int) -> dict | None:
    """The strongest evidence for one source image: same bytes, same id, then nearest phash."""
    base: dict[str, Any] = {"image_id": image.entry.image_id, "file_name": image.entry.file_name}
    hashes = image.hashes
    if hashes is not None and hashes.md5 in evaluation.md5s:
        return {**base, "how": "bytes", "against": evaluation.md5s[hashes.md5], "distance": 0}
    if image.entry.image_id in evaluation.ids:
        return {**base, "how": "id", "against": evaluation.ids[image.entry.image_id], "distance": None}
    if phash_index >= 0:
        return {**base, "how": "phash", "against": evaluation.phash_files[phash_index], "distance": distance}
    return None


def _count(image: SourceImage, counters: Counter) -> None:
    if not image.found:
        counters["source_missing"] += 1
    elif image.hashes is None or image.hashes.phash is None:
        counters["source_unreadable"] += 1
    else:
        counters["source_hashed"] += 1


def find_leakage(
    config: PipelineConfig,
    against: list[str],
    out: Path,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    threads: int = 4,
) -> str:
    """Write the matched source images to `out` (a JSON list) and return a summary."""
    if not 0 <= max_distance <= HASH_BITS:
        raise SgpipeError(f"--max-distance {max_distance}: must be in [0, {HASH_BITS}] (bits of the hash)")
    check_source_paths(config)
    evaluation = load_evaluation(against, threads)
    index = evaluation.phash_words()
    counters: Counter = Counter(evaluation.counters)
    matches: list[dict] = []
    images = config.source.images if config.source.kind != "webdataset" else ""
    root = location(images, config.source.storage_options) if images else None
    last_log = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sgpipe-leakage-plan-") as plan_dir:
        entries = _source_entries(config, Path(plan_dir), counters)
        hashed = bounded_map(lambda item: _hash_source(item, root), entries, threads)
        while block := list(islice(hashed, MATCH_BLOCK)):
            usable = [i for i, image in enumerate(block) if image.hashes and image.hashes.phash is not None]
            queries = to_words([block[i].hashes.phash for i in usable])  # type: ignore[union-attr,misc]
            found, distances = nearest(queries, index, max_distance, threads)
            nearest_of = {i: (int(found[k]), int(distances[k])) for k, i in enumerate(usable)}
            for i, image in enumerate(block):
                _count(image, counters)
                match = _match(image, evaluation, *nearest_of.get(i, (-1, -1)))
                if match is not None:
                    matches.append(match)
                    counters[f"matched_{match['how']}"] += 1
            if time.monotonic() - last_log >= PROGRESS_EVERY_S:
                last_log = time.monotonic()
                log.info(
                    "leakage: %d source images read, %d matched", sum(map(counters.get, SEEN)), len(matches)
                )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, matches)
    return summarize(matches, counters, evaluation, max_distance, out)


def summarize(
    matches: list[dict], counters: Counter, evaluation: EvaluationSet, max_distance: int, out: Path
) -> str:
    lines = [
        (
            f"evaluation: {counters['against_ids']} image ids from JSON, {counters['against_images']} "
            f"images hashed, {counters['against_unreadable']} unreadable files skipped"
        ),
        (
            f"source: {counters['source_hashed']} images hashed, {counters['source_missing']} missing, "
            f"{counters['source_unreadable']} unreadable, {counters['source_duplicates']} repeated ids"
        ),
        (
            f"matched {len(matches)} source images: {counters['matched_bytes']} by bytes, "
            f"{counters['matched_id']} by id, {counters['matched_phash']} by perceptual hash "
            f"(distance <= {max_distance} of {HASH_BITS} bits)"
        ),
        f"wrote {out} (pass it as source.exclude to leave these images out of a run)",
    ]
    distances = [m["distance"] for m in matches if m["how"] == "phash"]
    if distances:
        # false matches pile up just under the threshold: a heavy last bin says lower --max-distance
        bins = Counter(min(d // 16, max_distance // 16) for d in distances)
        lines.insert(
            -1,
            "perceptual-hash matches by distance: "
            + ", ".join(
                f"{16 * b}-{min(16 * b + 15, max_distance)}: {bins[b]}" for b in range(max_distance // 16 + 1)
            ),
        )
    if evaluation.unreadable:
        lines.insert(1, "unreadable evaluation files, e.g. " + "; ".join(evaluation.unreadable))
    return "\n".join(lines)
