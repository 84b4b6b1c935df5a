"""The perceptual-hash threshold of `sgpipe leakage`, measured: false negatives on near-copies, false
positives on distinct images, per threshold; and the speed of hashing and of matching.

    python benchmarks/bench_leakage.py --images 300 --seed 0
    python benchmarks/bench_leakage.py --photos /work/shared/data/coco8/images/train --photos DIR ...

Positives: every base image against each of its copies in `sgpipe.leakage.copies.COPIES` (re-encoded
at JPEG qualities 90-30 and as PNG, resized x0.25-x1.5, cropped 2-6% centred or 4% from one corner,
and a combination). Negatives: every pair of distinct base images. Base images are a synthetic world
(`sgpipe synth`: scenes of the same flat shapes on similar noisy backgrounds, which look more alike
than photos do) and, with --photos, real photos. The distances are those `sgpipe leakage` computes
(`sgpipe.leakage.hashing.hash_bytes`).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sgpipe.leakage.copies import COPIES
from sgpipe.leakage.hashing import bounded_map, hash_bytes, hash_file
from sgpipe.leakage.match import WORDS, nearest, to_words
from sgpipe.leakage.scan import DEFAULT_MAX_DISTANCE
from sgpipe.records import IMAGE_EXTENSIONS
from sgpipe.synth.world import generate_world

SHOWN = (DEFAULT_MAX_DISTANCE - 8, DEFAULT_MAX_DISTANCE, DEFAULT_MAX_DISTANCE + 8)  # per-kind miss rates


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def base_images(args: argparse.Namespace, tmp: Path) -> dict[str, list[Path]]:
    generate_world(tmp / "world", args.images, seed=args.seed, image_size=args.image_size)
    sets = {"synthetic": sorted((tmp / "world" / "images").glob("*.jpg"))}
    if args.negative_images:
        generate_world(
            tmp / "more",
            args.negative_images,
            seed=args.seed + 1,
            image_size=args.image_size,
            first_image_id=args.images + 1,
        )
        sets["more synthetic"] = sorted((tmp / "more" / "images").glob("*.jpg"))
    photos = [
        p
        for folder in args.photos
        for p in sorted(Path(folder).rglob("*"))
        if p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS
    ]
    if photos:
        sets["photos"] = photos
    return sets


def measure_positives(files: list[Path], originals: list[int]) -> dict[str, list[int]]:
    """Distances of each copy kind to its original."""
    positives: dict[str, list[int]] = {name: [] for name in COPIES}
    for path, original in zip(files, originals):
        image = Image.open(path)
        image.load()
        for name, make in COPIES.items():
            positives[name].append(distance(original, hash_bytes(make(image)).phash))
    return positives


def pair_distances(hashes: list[int]) -> np.ndarray:
    """Distances of every pair of distinct images (vectorised: millions of pairs in seconds)."""
    words = to_words(hashes)
    parts = []
    for row in range(len(words) - 1):
        parts.append(np.bitwise_count(words[row] ^ words[row + 1 :]).sum(axis=1))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def print_quality(label: str, positives: dict[str, list[int]], negatives: np.ndarray, top: int) -> None:
    all_positives = np.array([d for values in positives.values() for d in values])
    neg = negatives
    print(f"\n## {label}: {len(all_positives)} copy pairs, {len(neg)} distinct pairs")
    print(f"copy kind                    mean  max  missed at {', '.join(map(str, SHOWN))}")
    for name, values in positives.items():
        missed = "  ".join(f"{np.mean(np.array(values) > t):.3f}" for t in SHOWN)
        print(f"  {name:26s} {np.mean(values):5.1f} {max(values):4d}  {missed}")
    print(
        f"distinct pairs: min {neg.min()}, 0.1% {np.percentile(neg, 0.1):.0f}, "
        f"1% {np.percentile(neg, 1):.0f}, median {np.median(neg):.0f}"
    )
    print("threshold  false_negatives  false_positives (per pair)")
    for t in sorted(set(range(0, top + 1, 8)) | set(SHOWN)):
        fn = float(np.mean(all_positives > t))
        fp = float(np.mean(neg <= t))
        print(
            f"  {t:3d}      {fn:8.4f} ({int(np.sum(all_positives > t))})   {fp:.2e} ({int(np.sum(neg <= t))})"
        )


def measure_speed(files: list[Path], threads: int, n: int, m: int) -> None:
    """Wall-clock rates, and CPU time (all threads) per unit: the latter holds on a shared machine."""
    started, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in bounded_map(hash_file, files, threads))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"\nhashing {count} files of {files[0].parent}: {count / seconds:.0f} images/s with {threads} threads, "
        f"{1000 * cpu / count:.2f} ms CPU per image"
    )
    rng = np.random.default_rng(0)
    queries = rng.integers(0, 2**63, size=(n, WORDS), dtype=np.uint64)
    index = rng.integers(0, 2**63, size=(m, WORDS), dtype=np.uint64)
    for t in (1, threads):
        started, cpu = time.perf_counter(), time.process_time()
        nearest(queries, index, 64, threads=t)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(
            f"matching {n} x {m} hashes, {t} thread(s): {n * m / seconds / 1e9:.2f} billion pairs/s "
            f"({seconds:.2f} s), {n * m / cpu / 1e9:.2f} billion pairs per CPU-second"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=300, help="synthetic base images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--negative-images",
        type=int,
        default=0,
        help="more synthetic images, for distinct pairs only (n images: n^2/2 pairs)",
    )
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--photos", action="append", default=[], help="a folder of real photos (repeatable)")
    parser.add_argument("--top", type=int, default=100, help="largest threshold printed")
    parser.add_argument("--speed-only", action="store_true", help="skip the threshold measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--match-n", type=int, default=20_000, help="source hashes in the speed test")
    parser.add_argument("--match-m", type=int, default=50_000, help="evaluation hashes in the speed test")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        sets = base_images(args, Path(tmp))
        if args.speed_only:
            measure_speed(sets["synthetic"], args.threads, args.match_n, args.match_m)
            return
        hashes = {label: [hash_file(p).phash for p in files] for label, files in sets.items()}
        synthetic_negatives = pair_distances(hashes["synthetic"] + hashes.get("more synthetic", []))
        n_synthetic = len(hashes["synthetic"]) + len(hashes.get("more synthetic", []))
        positives = measure_positives(sets["synthetic"], hashes["synthetic"])
        print_quality(
            f"synthetic ({n_synthetic} images, copies of {args.images})",
            positives,
            synthetic_negatives,
            args.top,
        )
        if "photos" in sets:
            positives = measure_positives(sets["photos"], hashes["photos"])
            print_quality(
                f"photos ({len(sets['photos'])} images)",
                positives,
                pair_distances(hashes["photos"]),
                args.top,
            )
        measure_speed(sets["synthetic"], args.threads, args.match_n, args.match_m)


if __name__ == "__main__":
    main()
