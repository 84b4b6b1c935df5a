"""`sgpipe compare` at scale: time and memory of comparing two RLIPv2-style label files.

Writes two label JSONs of `--images` images (12 boxes, `--relations` relations each, 300 relation texts):
B is A with 10% of the relations removed, 10% added, confidences moved by up to 0.05, boxes written
back through float32 as RLIPv2 does. Then runs the comparison in a fresh process, which reports its
wall time and its peak resident memory beyond what the imports took: that is what holding A costs.

    python benchmarks/bench_compare.py --images 20000 --relations 25     # 500k relations a side
    python benchmarks/bench_compare.py --quick                           # tiny, seconds
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [f"relation {i}" for i in range(300)]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _f32(value: float) -> float:
    import numpy as np

    return float(np.float32(value))


def write_labels(path_a: Path, path_b: Path, n_images: int, n_relations: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    total = 0
    with open(path_a, "w") as a, open(path_b, "w") as b:
        a.write("[")
        b.write("[")
        for image_id in range(1, n_images + 1):
            boxes = [
                [rng.uniform(0, 500), rng.uniform(0, 400), rng.uniform(5, 100), rng.uniform(5, 100)]
                for _ in range(12)
            ]
            objects_a = [
                {"object_id": k, "x": x, "y": y, "w": w, "h": h, "names": "thing"}
                for k, (x, y, w, h) in enumerate(boxes)
            ]
            objects_b = [
                {**o, **{c: _f32(o[c]) for c in "xywh"}, "object_id": 10_000 + o["object_id"]}
                for o in objects_a
            ]
            rels = [
                (rng.randrange(12), rng.randrange(12), rng.choice(TEXTS), rng.uniform(0.05, 1))
                for _ in range(n_relations)
            ]
            rel_a = [
                {"subject_id": s, "object_id": o, "predicate": t, "confidence": c} for s, o, t, c in rels
            ]
            rel_b = [
                {
                    "subject_id": 10_000 + s,
                    "object_id": 10_000 + o,
                    "predicate": t,
                    "confidence": min(1.0, c + rng.uniform(-0.05, 0.05)),
                }
                for s, o, t, c in rels
                if rng.random() > 0.1
            ]
            rel_b += [
                {
                    "subject_id": 10_000 + rng.randrange(12),
                    "object_id": 10_000 + rng.randrange(12),
                    "predicate": rng.choice(TEXTS),
                    "confidence": 0.5,
                }
                for _ in range(n_relations // 10)
            ]
            item = {"image_id": image_id, "dataset": "coco2017", "data_split": "train2017"}
            sep = "," if image_id > 1 else ""
            a.write(sep + json.dumps({**item, "objects": objects_a, "relationships": rel_a}))
            b.write(sep + json.dumps({**item, "objects": objects_b, "relationships": rel_b}))
            total += len(rel_a)
        a.write("]")
        b.write("]")
    return total


def run_compare(path_a: str, path_b: str) -> dict:
    """In this (fresh) process: the comparison's wall time and its memory beyond the imports."""
    from sgpipe.tools.compare import compare_corpora

    baseline = _peak_rss_mib()
    start = time.perf_counter()
    result = compare_corpora(path_a, path_b, min_confidence=0.05)
    seconds = time.perf_counter() - start
    held = result["a"]["relations"]
    extra = _peak_rss_mib() - baseline
    return {
        "relations_a": held,
        "relations_b": result["b"]["relations"],
        "both": result["relations"]["both"],
        "pearson": result["confidence"]["pearson"],
        "seconds": round(seconds, 2),
        "relations_per_second": round((held + result["b"]["relations"]) / seconds),
        "peak_rss_beyond_imports_mib": round(extra, 1),
        "bytes_per_relation_of_a": round(extra * 2**20 / held) if held else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--relations", type=int, default=25, help="relations per image in A")
    parser.add_argument("--quick", action="store_true", help="200 images x 10 relations")
    parser.add_argument("--compare-only", nargs=2, metavar=("A", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compare_only:
        print(json.dumps(run_compare(*args.compare_only)))
        return
    n_images, n_relations = (200, 10) if args.quick else (args.images, args.relations)
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as work:
        path_a, path_b = Path(work) / "a.json", Path(work) / "b.json"
        write_labels(path_a, path_b, n_images, n_relations)
        child = subprocess.run(
            [sys.executable, __file__, "--compare-only", str(path_a), str(path_b)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        )
        numbers = json.loads(child.stdout.strip().splitlines()[-1])
        numbers.update(images=n_images, file_mib_a=round(path_a.stat().st_size / 2**20, 1))
    print(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
