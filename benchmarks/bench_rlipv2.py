"""RLIPv2's formats at scale: `convert rlipv2` and `export --format rlipv2`, time and peak memory.

    python benchmarks/bench_rlipv2.py --images 20000 100000 --work /tmp/rlipv2-bench

For each size, writes an Objects365-style pseudo-label file like RLIPv2's (15 boxes and 8 relations per
image, global object ids, float boxes; streamed to disk), whose `image_id_to_filepath.json` points every
id at one of 16 small JPEGs, then runs in fresh processes: the conversion into shards (images
included) and the export of those shards back to RLIPv2's JSON. Reports wall time, images/s and peak
resident memory (ru_maxrss of that process alone): memory that does not grow with the file size is the
streaming claim (what grows: the image id -> path map and the set of seen ids, about 100 bytes per image).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

CONVERT = """
import json, resource, sys, time
from pathlib import Path
from sgpipe.tools.convert_rlipv2 import convert_rlipv2
started = time.perf_counter()
convert_rlipv2(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), samples_per_shard=1000)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

EXPORT = """
import json, resource, sys, time
from pathlib import Path
from sgpipe.tools.export import export
started = time.perf_counter()
export(Path(sys.argv[1]), "rlipv2", Path(sys.argv[2]), min_confidence=0.05)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

NAMES = ["person", "car", "chair", "cup", "bottle", "dog", "table", "bench", "handbag", "umbrella"]
PREDICATES = ["on", "next to", "holding", "sitting on", "wearing", "behind", "in front of", "riding"]


def write_images(root: Path, n_files: int = 16) -> list[str]:
    from PIL import Image

    paths = []
    for i in range(n_files):
        relative = f"train/patch{i}/objects365_v2_{i:08d}.jpg"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (640, 480), (i * 15, 90, 150)).save(root / relative, quality=80)
        paths.append(relative)
    return paths


def write_labels(path: Path, root: Path, n_images: int, seed: int = 0) -> float:
    """Stream RLIPv2-style items and the id -> path map to disk; returns the label file's size in MiB."""
    rng = random.Random(seed)
    files = write_images(root)
    object_id = 20_000_000
    with open(path, "w") as handle, open(root / "image_id_to_filepath.json", "w") as paths:
        handle.write("[")
        paths.write("{")
        for i in range(n_images):
            image_id = i + 1
            objects = []
            for _ in range(15):
                x, y = rng.uniform(0, 560), rng.uniform(0, 400)
                objects.append(
                    {"object_id": object_id, "x": x, "y": y, "w": rng.uniform(5, 80), "h": rng.uniform(5, 80),
                     "names": rng.choice(NAMES)}
                )  # fmt: skip
                object_id += 1
            relationships = [
                {"relationship_id": image_id * 10 + r, "predicate": rng.choice(PREDICATES),
                 "subject_id": rng.choice(objects)["object_id"], "object_id": rng.choice(objects)["object_id"],
                 "confidence": rng.uniform(0.2, 0.6)}
                for r in range(8)
            ]  # fmt: skip
            item = {"image_id": image_id, "dataset": "o365", "data_split": "train",
                    "objects": objects, "relationships": relationships}  # fmt: skip
            handle.write(("," if i else "") + json.dumps(item))
            paths.write(
                ("," if i else "") + json.dumps(str(image_id)) + ": " + json.dumps(files[i % len(files)])
            )
        handle.write("]")
        paths.write("}")
    return path.stat().st_size / 2**20


def run(snippet: str, *args: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", snippet, *map(str, args)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rlipv2-bench"))
    parser.add_argument("--out", type=Path, help="Also write the results as JSON here.")
    args = parser.parse_args()
    results = []
    for n_images in args.images:
        work = args.work / str(n_images)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        started = time.perf_counter()
        size = write_labels(work / "labels.json", work / "Objects365", n_images)
        print(f"{n_images} images: {size:.0f} MiB of labels written in {time.perf_counter() - started:.0f} s")
        convert = run(CONVERT, work / "labels.json", work / "Objects365", work / "shards")
        export = run(EXPORT, work / "shards", work / "export.json")
        row = {
            "images": n_images,
            "labels_mib": round(size, 1),
            "convert_seconds": round(convert["seconds"], 1),
            "convert_images_per_second": round(n_images / convert["seconds"], 1),
            "convert_peak_rss_mib": round(convert["peak_rss_mib"], 1),
            "export_seconds": round(export["seconds"], 1),
            "export_images_per_second": round(n_images / export["seconds"], 1),
            "export_peak_rss_mib": round(export["peak_rss_mib"], 1),
        }
        print(json.dumps(row))
        results.append(row)
    if args.out:
        args.out.write_text(json.dumps({"results": results}, indent=1))


if __name__ == "__main__":
    main()
