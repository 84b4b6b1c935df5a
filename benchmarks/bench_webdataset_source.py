"""The webdataset source alone against webdataset itself, on the same img2dataset-style tars (CPU).

    python benchmarks/bench_webdataset_source.py                       # 4 tars x 250 images, 256 px
    python benchmarks/bench_webdataset_source.py --tars 8 --per-tar 500 --size 384 --rounds 7

Both read every tar front to back and end with each item's image decoded to RGB, its alt text and its
metadata in hand:

  webdataset  `wds.WebDataset(urls, shardshuffle=False).decode("pilrgb")`: one process, PIL decoding.
  sgpipe      what a worker does before its models: `ShardReader.items` (the tar streamed, items
              grouped, alt text and metadata parsed) -> `entry_to_sample` -> the decode stage, in the
              processor's 64-image chunks. With `run.decode_threads` 1 (one thread, as webdataset) and
              with the default 4 (what a worker runs).

Images are written as img2dataset writes them (`KEY.jpg`, `KEY.txt`, `KEY.json`) by webdataset's own
TarWriter: JPEGs of a smooth gradient with noise (photos compress between flat colour and pure noise),
quality 90. Rounds alternate between the readers; the median round of each is reported, with their ratio,
in images per second of wall time and per CPU-second of the process (on a machine shared with other jobs
the second is the steadier).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sgpipe.config import SourceConfig
from sgpipe.pipeline import CHUNK_SIZE
from sgpipe.run.sources import entry_to_sample
from sgpipe.source.decode import DecodeStage
from sgpipe.source.plan import build_plan
from sgpipe.source.readers import ShardReader


def photo_like(size: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([(x + seed) % 256, (y * 2 + seed) % 256, (x + y) % 256], axis=-1).astype(np.float32)
    pixels = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_tars(folder: Path, tars: int, per_tar: int, size: int) -> list[str]:
    import webdataset as wds

    images = [photo_like(size, seed) for seed in range(16)]
    urls = []
    for shard in range(tars):
        path = folder / f"{shard:05d}.tar"
        with wds.TarWriter(str(path)) as writer:
            for index in range(per_tar):
                key = f"{shard:05d}{index:04d}"
                meta = {"url": f"https://example.com/{key}.jpg", "key": key, "status": "success",
                        "width": size, "height": size, "caption": "a man riding a horse on the beach"}
                writer.write({"__key__": key, "jpg": images[(shard + index) % 16],
                              "txt": "a man riding a horse on the beach", "json": json.dumps(meta)})
        urls.append(str(path))
    return urls


def read_with_webdataset(urls: list[str]) -> int:
    import webdataset as wds

    count = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pilrgb"):
        assert sample["jpg"].mode == "RGB" and sample["txt"] and sample["json"]["key"]
        count += 1
    return count


def read_with_sgpipe(source: SourceConfig, plan_dir: Path, n_shards: int, threads: int) -> int:
    stage = DecodeStage(None, max_pixels=89_478_485, threads=threads, keep_bytes=True)
    stage.setup()
    reader = ShardReader(source, plan_dir)
    count = 0
    try:
        for index in range(n_shards):
            samples = [entry_to_sample(e, "bench", None, image) for e, image in reader.items(index)]
            for start in range(0, len(samples), CHUNK_SIZE):
                chunk = samples[start : start + CHUNK_SIZE]
                stage(chunk)
                for sample in chunk:
                    assert sample.ok and sample.image.mode == "RGB" and sample.captions and sample.metadata
                    sample.image = None  # as the processor drops pixels once a chunk is through
                count += len(chunk)
    finally:
        stage.teardown()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tars", type=int, default=4)
    parser.add_argument("--per-tar", type=int, default=250)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (img2dataset's resize)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-wds-") as folder:
        urls = write_tars(Path(folder), args.tars, args.per_tar, args.size)
        source = SourceConfig(kind="webdataset", name="bench", shards=urls)
        plan = build_plan(source, 1000, Path(folder) / "plan")
        readers = {
            "webdataset": lambda: read_with_webdataset(urls),
            "sgpipe_1_thread": lambda: read_with_sgpipe(source, Path(folder) / "plan", plan.n_shards, 1),
            "sgpipe_4_threads": lambda: read_with_sgpipe(source, Path(folder) / "plan", plan.n_shards, 4),
        }
        n = args.tars * args.per_tar
        rates: dict[str, list[float]] = {name: [] for name in readers}
        cpu_rates: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(args.rounds + 1):  # the first round warms the page cache and is not counted
            for name, read in readers.items():
                started, cpu_started = time.perf_counter(), time.process_time()
                assert read() == n
                rates[name].append(n / (time.perf_counter() - started))
                cpu_rates[name].append(n / (time.process_time() - cpu_started))
        medians = {name: round(statistics.median(values[1:]), 1) for name, values in rates.items()}
        cpu = {name: round(statistics.median(values[1:]), 1) for name, values in cpu_rates.items()}
        mean_item = sum(Path(u).stat().st_size for u in urls) / n
    print(json.dumps({
        "images": n, "tars": args.tars, "image_side": args.size, "mean_item_bytes": round(mean_item),
        "rounds": args.rounds, "images_per_s_median": medians,
        "ratio_1_thread": round(medians["sgpipe_1_thread"] / medians["webdataset"], 3),
        "ratio_4_threads": round(medians["sgpipe_4_threads"] / medians["webdataset"], 3),
        # per CPU-second of this process (all its threads): what a busy machine's other jobs do not skew
        "images_per_cpu_s_median": cpu,
        "cpu_ratio_1_thread": round(cpu["sgpipe_1_thread"] / cpu["webdataset"], 3),
    }, indent=2))


if __name__ == "__main__":
    main()
