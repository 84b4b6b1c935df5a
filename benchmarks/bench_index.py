"""Objects365-scale indexing: peak memory and time to index a generated COCO-format file.

    python benchmarks/bench_index.py --images 1700000 --boxes 25000000 --work /tmp/o365-bench

Writes a synthetic instances JSON of the given size (streamed to disk, keys in Objects365's order:
images, annotations, categories), then runs the streaming index in a fresh process and reports its
wall time and peak resident memory (ru_maxrss of that process alone).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

INDEX_SNIPPET = """
import json, resource, sys, time
from pathlib import Path
from sgpipe.config import SourceConfig
from sgpipe.source.plan import build_plan
started = time.perf_counter()
config = SourceConfig(name="o365", instances=sys.argv[1], images="/", index="stream")
plan = build_plan(config, int(sys.argv[3]), Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - started, "shards": plan.n_shards, "images": plan.n_images,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_instances(path: Path, n_images: int, n_boxes: int, seed: int = 0) -> float:
    """Stream a COCO-format file to disk; returns its size in GiB."""
    rng = random.Random(seed)
    with open(path, "w") as handle:
        handle.write('{"images": [')
        for i in range(n_images):
            sep = "," if i else ""
            handle.write(
                f'{sep}{{"id": {i + 1}, '
                f'"file_name": "images/v2/patch{i % 51}/objects365_v2_{i + 1:08d}.jpg", '
                f'"width": 1024, "height": 768}}'
            )
        handle.write('], "annotations": [')
        for a in range(n_boxes):
            sep = "," if a else ""
            image_id = rng.randint(1, n_images)
            x, y = rng.uniform(0, 900), rng.uniform(0, 600)
            handle.write(
                f'{sep}{{"id": {a + 1}, "image_id": {image_id}, "category_id": {rng.randint(1, 365)}, '
                f'"bbox": [{x:.2f}, {y:.2f}, {rng.uniform(1, 120):.2f}, {rng.uniform(1, 160):.2f}], '
                f'"area": 100.0, "iscrowd": 0, "isfake": 0}}'
            )
        categories = [{"id": c, "name": f"category {c}", "supercategory": "thing"} for c in range(1, 366)]
        handle.write('], "categories": ' + json.dumps(categories) + "}")
    return path.stat().st_size / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=170_000)
    parser.add_argument("--boxes", type=int, default=2_500_000)
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sgpipe-index-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    instances = args.work / "instances.json"
    started = time.perf_counter()
    size_gib = write_instances(instances, args.images, args.boxes)
    print(
        f"generated {args.images} images, {args.boxes} boxes: {size_gib:.2f} GiB in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            INDEX_SNIPPET,
            str(instances),
            str(args.work / "plan"),
            str(args.samples_per_shard),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        json.dumps(
            {
                "images": args.images,
                "boxes": args.boxes,
                "file_gib": round(size_gib, 2),
                "index_seconds": round(measured["seconds"], 1),
                "shards": measured["shards"],
                "peak_rss_mib": round(measured["peak_rss_mib"]),
                "boxes_per_second": round(args.boxes / measured["seconds"]),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
