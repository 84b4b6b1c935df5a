"""Training data: WebDataset shards -> model inputs.

Shards are streamed with `webdataset` (shard order shuffled per epoch with a fixed seed, split by
rank and then by DataLoader worker, a seeded shuffle buffer), each opened through `sgpipe.storage`
(a local file, or any fsspec URL such as `s3://` read as a buffered stream), so a run's data order
is a function of (seed, epoch) alone: a resumed run skips the batches it already trained on and
sees exactly what an uninterrupted run would. Each worker's stream cycles through its shards, so every rank
can run the same fixed number of steps per epoch (no DDP hang on uneven data).
"""

from __future__ import annotations

import io
import json
import logging
import random
import tarfile
import zlib
from collections import Counter
from functools import partial
from itertools import islice
from typing import Any, Iterator, Sequence

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from sgpipe.models.verifier.inputs import Example, collate, image_to_pixels, normalise_boxes
from sgpipe.storage import location, open_binary

log = logging.getLogger(__name__)

IGNORE = -1.0  # target value of cells left out of the loss (uncertain pseudo-labels)


class CorruptData:
    """Skips what cannot be read (a truncated shard, a broken member, a record that does not
    decode) with a warning and a count: one bad shard never ends an epoch."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, error: Exception, where: str = "") -> bool:
        self.count += 1
        log.warning(
            "skipping unreadable training data %s(%d so far): %s: %s",
            f"in {where} " if where else "",
            self.count,
            type(error).__name__,
            error,
        )
        return True  # webdataset handler protocol: continue


def stable_seed(*parts: Any) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode())


def split_by_rank(urls: Iterator[Any], rank: int, world_size: int) -> Iterator[Any]:
    """Node splitter with an explicit rank (env-free, so tests can simulate ranks in-process)."""
    yield from islice(urls, rank, None, world_size)


def split_by_worker_id(urls: Iterator[Any], worker: int, num_workers: int) -> Iterator[Any]:
    yield from islice(urls, worker, None, num_workers)


def open_shards(
    sources: Iterator[dict[str, Any]], options: dict[str, Any], handler: CorruptData
) -> Iterator[dict[str, Any]]:
    """webdataset's URL opener, through `sgpipe.storage`: `{url}` -> `{url, stream}`, closed after use."""
    for source in sources:
        try:
            stream = open_binary(location(source["url"], options))
        except Exception as error:  # noqa: BLE001 - an unreadable shard is skipped like a corrupt one
            handler(error, source["url"])
            continue
        try:
            yield {**source, "stream": stream}
        finally:
            stream.close()


def scan_predicates(
    urls: Sequence[str], min_confidence: float, limit: int = 0, options: dict[str, Any] | None = None
) -> dict[str, int]:
    """Predicate -> count of positive relations, read from the shards' JSON members only."""
    counts: Counter[str] = Counter()
    seen = 0
    corrupt = CorruptData()
    for url in urls:
        try:
            with (
                open_binary(location(url, options)) as stream,
                tarfile.open(fileobj=stream, mode="r|") as tar,
            ):
                for member in tar:
                    if not member.name.endswith(".json"):
                        continue
                    try:
                        record = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
                        counts.update(
                            r["predicate"]
                            for r in record.get("relations", [])
                            if (r.get("confidence") or 0.0) >= min_confidence
                        )
                    except (ValueError, KeyError, TypeError, AttributeError) as error:
                        corrupt(error, member.name)
                        continue
                    seen += 1
                    if limit and seen >= limit:
                        return dict(counts.most_common())
        except (tarfile.TarError, OSError, EOFError) as error:
            corrupt(error, url)
    return dict(counts.most_common())


class PredicateSampler:
    """Frequency-weighted negative predicates (w ~ count^power), without replacement."""

    def __init__(self, frequencies: dict[str, int], power: float = 0.5):
        self.names = sorted(frequencies)
        self.weights = np.array([max(frequencies[n], 1) ** power for n in self.names], dtype=np.float64)

    def sample(self, rng: random.Random, k: int, exclude: set[str]) -> list[str]:
        pool = [(n, w) for n, w in zip(self.names, self.weights) if n not in exclude]
        out: list[str] = []
        while pool and len(out) < k:
            total = sum(w for _, w in pool)
            pick = rng.random() * total
            for i, (name, w) in enumerate(pool):
                pick -= w
                if pick <= 0 or i == len(pool) - 1:
                    out.append(name)
                    pool.pop(i)
                    break
        return out


def relation_truth(relation: dict[str, Any], min_confidence: float, max_negative_confidence: float) -> float:
    """1 true, 0 false, IGNORE for confidences between the two thresholds."""
    confidence = relation.get("confidence")
    confidence = 0.0 if confidence is None else float(confidence)
    if confidence >= min_confidence:
        return 1.0
    return 0.0 if confidence <= max_negative_confidence else IGNORE


def decode_image(image_bytes: bytes | None) -> Any:
    from PIL import Image

    if image_bytes is None:
        raise ValueError("sample has no image bytes (label-only shards cannot train the verifier)")
    return Image.open(io.BytesIO(image_bytes)).convert("RGB")


def record_example(
    record: dict[str, Any],
    image: Any,
    image_size: int,
    *,
    min_confidence: float = 0.5,
    max_negative_confidence: float = 0.0,
    sampler: PredicateSampler | None = None,
    rng: random.Random | None = None,
    negative_predicates: int = 0,
    negative_pairs: int = 0,
    max_pairs: int = 64,
    predicates: Sequence[str] | None = None,
    blank: bool = False,
) -> Example:
    """A scene-graph record -> one `Example`: its relations' pairs (+ sampled other box pairs) x its
    predicates (+ frequency-sampled other predicates, or the fixed `predicates` list)."""
    rng = rng or random.Random(0)
    boxes = record["objects"]
    index = {b["id"]: i for i, b in enumerate(boxes)}
    truth: dict[tuple[int, int, str], float] = {}
    for r in record.get("relations", []):
        if r["subject_id"] in index and r["object_id"] in index and r["subject_id"] != r["object_id"]:
            key = (index[r["subject_id"]], index[r["object_id"]], r["predicate"])
            truth[key] = max(
                truth.get(key, IGNORE), relation_truth(r, min_confidence, max_negative_confidence)
            )
    pairs = list(dict.fromkeys((s, o) for s, o, _ in truth))
    if negative_pairs:
        others = [
            (s, o) for s in range(len(boxes)) for o in range(len(boxes)) if s != o and (s, o) not in pairs
        ]
        pairs += rng.sample(others, min(negative_pairs, len(others)))
    if len(pairs) > max_pairs:
        positive = [p for p in pairs if any(truth.get((*p, x)) == 1.0 for x in {k[2] for k in truth})]
        rest = [p for p in pairs if p not in positive]
        pairs = (positive + rng.sample(rest, len(rest)))[:max_pairs]
    if predicates is None:
        names = list(dict.fromkeys(x for _, _, x in truth))
        if sampler is not None and negative_predicates:
            names += sampler.sample(rng, negative_predicates, set(names))
    else:
        names = list(predicates)
    targets = np.zeros((len(pairs), len(names)), dtype=np.float32)
    pair_pos = {p: i for i, p in enumerate(pairs)}
    name_pos = {n: j for j, n in enumerate(names)}
    for (s, o, name), value in truth.items():
        if (s, o) in pair_pos and name in name_pos:
            targets[pair_pos[(s, o)], name_pos[name]] = value
    if blank:
        from PIL import Image

        image = Image.new("RGB", image.size, (124, 116, 104))  # the ImageNet mean: zero after normalising
    return Example(
        pixels=image_to_pixels(image, image_size),
        boxes=normalise_boxes([b["bbox"] for b in boxes], record["width"], record["height"]),
        box_labels=[b["category"] for b in boxes],
        pairs=pairs,
        predicates=names,
        targets=targets,
        key=record["key"],
    )


class ShardStream(IterableDataset):
    """Collated training batches from shards; one pass or cycling (`passes=None`).

    Order: global shard order shuffled by (seed, epoch) -> `split_by_rank` -> split by worker ->
    seeded shuffle buffer. `skip_batches` batches (counted on this rank's loader, whose workers are
    read round-robin) are dropped before decoding: that is how a resumed run continues mid-epoch.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        rank: int,
        world_size: int,
        seed: int,
        epoch: int,
        batch_size: int,
        image_size: int,
        frequencies: dict[str, int],
        shuffle_buffer: int = 100,
        skip_batches: int = 0,
        passes: int | None = None,
        example_args: dict[str, Any] | None = None,
        storage_options: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.urls = list(urls)
        self.rank, self.world_size, self.seed, self.epoch = rank, world_size, seed, epoch
        self.batch_size, self.image_size = batch_size, image_size
        self.frequencies = frequencies
        self.shuffle_buffer, self.skip_batches, self.passes = shuffle_buffer, skip_batches, passes
        self.example_args = example_args or {}
        self.storage_options = dict(storage_options or {})
        self.corrupt = CorruptData()

    def _raw(self, worker: int, num_workers: int, passes: int | None) -> Iterator[dict[str, Any]]:
        import webdataset as wds
        from webdataset.tariterators import group_by_keys, tar_file_expander

        pass_index = 0
        while passes is None or pass_index < passes:
            urls = list(self.urls)
            random.Random(stable_seed(self.seed, self.epoch, pass_index)).shuffle(urls)
            # webdataset.WebDataset's stages, with shards opened through sgpipe.storage
            stages = [
                wds.SimpleShardList(urls),
                partial(split_by_rank, rank=self.rank, world_size=self.world_size),
                partial(split_by_worker_id, worker=worker, num_workers=num_workers),
                partial(open_shards, options=self.storage_options, handler=self.corrupt),
                partial(tar_file_expander, handler=self.corrupt),
                partial(group_by_keys, handler=self.corrupt),
            ]
            if self.shuffle_buffer > 0:
                seed = stable_seed(self.seed, self.epoch, pass_index, self.rank, worker)
                stages.append(wds.shuffle(self.shuffle_buffer, seed=seed))
            dataset = wds.DataPipeline(*stages)
            count = 0
            for sample in dataset:
                count += 1
                yield sample
            if count == 0:
                return  # no shard for this worker: an empty stream, not an endless loop
            pass_index += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        real, workers = (info.id, info.num_workers) if info else (0, 1)
        # The loader reads its workers round-robin from worker 0. After skipping k batches the next
        # one belonged to worker k % n, so real worker w plays the part of worker (w + k) % n and
        # skips the batches that part produced among the first k.
        worker = (real + self.skip_batches) % workers
        skip = max(0, -(-(self.skip_batches - worker) // workers)) * self.batch_size
        sampler = PredicateSampler(self.frequencies)
        batch: list[Example] = []
        for sample in islice(self._raw(worker, workers, self.passes), skip, None):
            try:
                record = json.loads(sample["json"])
                image_key = next((k for k in ("jpg", "jpeg", "png", "webp") if k in sample), None)
                image = decode_image(sample.get(image_key) if image_key else None)
                rng = random.Random(stable_seed(self.seed, self.epoch, record["key"]))
                example = record_example(
                    record, image, self.image_size, sampler=sampler, rng=rng, **self.example_args
                )
            except Exception as error:  # noqa: BLE001 - any unreadable sample is skipped, never fatal
                self.corrupt(error, sample.get("__key__", ""))
                continue
            batch.append(example)
            if len(batch) == self.batch_size:
                yield collate(batch)
                batch = []
        if batch:
            yield collate(batch)
