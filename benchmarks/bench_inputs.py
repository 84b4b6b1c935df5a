"""Host cost of preparing model inputs, per image: on the host (transformers' BLIP processor, the
verifier's PIL resize) against sgpipe's path (a uint8 tensor on the host, resized on the device).

    python benchmarks/bench_inputs.py --images 64

One core (torch threads 1), COCO-sized 640 x 480 images, best of 3 passes. The device path's resize is
also timed on the CPU, for CPU-only runs; on a GPU it runs there instead of on the host.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402


def best_ms_per_image(work, images: list, repeats: int = 3) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        work(images)
        timings.append(time.perf_counter() - started)
    return round(1000 * min(timings) / len(images), 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    from transformers import BlipImageProcessor

    from sgpipe.models.pixels import resize_batch, to_tensor
    from sgpipe.models.verifier import image_to_pixels

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).filter(ImageFilter.BoxBlur(2))
        for _ in range(args.images)
    ]
    blip = BlipImageProcessor(size={"height": 384, "width": 384})  # BLIP-large's processor settings
    results = {
        "caption_inputs_on_host_ms": best_ms_per_image(
            lambda ims: blip(images=ims, return_tensors="pt"), images
        ),
        "verifier_inputs_on_host_ms": best_ms_per_image(
            lambda ims: [image_to_pixels(i, 512) for i in ims], images
        ),
        "uint8_tensor_ms": best_ms_per_image(lambda ims: [to_tensor(i) for i in ims], images),
    }
    tensors = [to_tensor(i) for i in images]
    results["cpu_resize_bicubic_384_ms"] = best_ms_per_image(
        lambda ts: resize_batch(ts, (384, 384), "bicubic", "cpu"), tensors
    )
    results["cpu_resize_bilinear_512_ms"] = best_ms_per_image(
        lambda ts: resize_batch(ts, (512, 512), "bilinear", "cpu"), tensors
    )
    host_before = results["caption_inputs_on_host_ms"] + results["verifier_inputs_on_host_ms"]
    results["host_ms_before"] = round(host_before, 2)
    results["host_ms_now_with_a_gpu"] = round(2 * results["uint8_tensor_ms"], 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
