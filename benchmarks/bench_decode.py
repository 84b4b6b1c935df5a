"""Decode rate per core: read, decode and convert to RGB, as the source's decode stage does.

    python benchmarks/bench_decode.py                      # ../shared/data/coco8 images if present
    python benchmarks/bench_decode.py --images DIR         # any folder of JPEG/PNG files

Without real images it generates 640x480 JPEGs of noise (COCO's usual size; harder to compress than
photos, so a pessimistic figure).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

from PIL import Image

from sgpipe.source.decode import to_rgb

SHARED_COCO8 = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco8" / "images"


def load_images(folder: Path | None) -> tuple[list[bytes], str]:
    folder = folder or (SHARED_COCO8 if SHARED_COCO8.is_dir() else None)
    if folder is not None:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise SystemExit(f"no JPEG or PNG files under {folder}")
        return [p.read_bytes() for p in files], str(folder)
    blobs = []
    for seed in range(8):
        buffer = io.BytesIO()
        Image.effect_noise((640, 480), 40 + seed).convert("RGB").save(buffer, "JPEG", quality=90)
        blobs.append(buffer.getvalue())
    return blobs, "generated 640x480 noise JPEGs"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    blobs, source = load_images(args.images)
    started = time.perf_counter()
    for _ in range(args.rounds):
        for data in blobs:
            image = Image.open(io.BytesIO(data))
            image.load()
            to_rgb(image)
    seconds = time.perf_counter() - started
    n = args.rounds * len(blobs)
    print(
        json.dumps(
            {
                "source": source,
                "images": n,
                "mean_kib": round(sum(map(len, blobs)) / len(blobs) / 1024, 1),
                "images_per_s_one_core": round(n / seconds, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
