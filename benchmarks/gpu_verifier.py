"""Verifier throughput: sgpipe's batched bf16 path vs a batch-1 fp32 loop (RLIPv2's tagger runs
one image at a time in fp32 and encodes its label texts in every forward).

    python benchmarks/gpu_verifier.py                  # real size (ResNet-50 + RoBERTa-base), CUDA
    python benchmarks/gpu_verifier.py --quick          # tiny model on CPU: a smoke run
    python benchmarks/gpu_verifier.py --images 256 --batch-sizes 16,32,64,128   # batch-size sweep

Random weights (built from configs, nothing downloaded); random images. Each image has 20 boxes
and 10 candidate predicates, and every ordered box pair (20 x 19 = 380) is scored against every
predicate: 3,800 (pair, predicate) scores per image, more than the tag stage's cap would give.
Timed: the model (inputs prepared beforehand), with CUDA synchronised. Needs only torch,
transformers, numpy and PIL.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

PREDICATES = [
    "on",
    "next to",
    "holding",
    "riding",
    "in front of",
    "behind",
    "sitting on",
    "wearing",
    "under",
    "looking at",
    "carrying",
    "near",
]
CATEGORIES = ["person", "dog", "bicycle", "car", "cup", "chair", "table", "horse", "bench", "umbrella"]


def make_examples(n: int, image_size: int, boxes: int, predicates: int, seed: int = 0) -> list:
    from PIL import Image

    from sgpipe.models.verifier import Example, image_to_pixels, normalise_boxes

    rng = np.random.default_rng(seed)
    examples = []
    for i in range(n):
        image = Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
        xy = rng.uniform(0, 400, (boxes, 2))
        wh = rng.uniform(20, 240, (boxes, 2))
        pairs = [(a, b) for a in range(boxes) for b in range(boxes) if a != b]
        examples.append(
            Example(
                image_to_pixels(image, image_size),
                normalise_boxes(np.hstack([xy, wh]), 640, 480),
                [CATEGORIES[int(k)] for k in rng.integers(0, len(CATEGORIES), boxes)],
                pairs,
                list(rng.choice(PREDICATES, predicates, replace=False)),
                key=str(i),
            )
        )
    return examples


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:
    _sync(device)
    started = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model on CPU, a handful of images")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--batch-sizes",
        default="",
        help="also time the fast path at these batch sizes, e.g. 16,32,64 (images: at least the largest)",
    )
    parser.add_argument("--boxes", type=int, default=20)
    parser.add_argument("--predicates", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=0, help="0: the config's (512 for the real size)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    from sgpipe.models.verifier import Verifier, base_config, tiny_config

    if args.quick:
        config, device = tiny_config(), torch.device("cpu")
        args.images, args.batch_size, args.boxes, args.predicates = 2, 2, 4, 3
    else:
        config = base_config(vision_model="", text_model="")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.image_size:
        config.image_size = args.image_size
    torch.manual_seed(0)
    model = Verifier.build(config, pretrained=False).to(device).eval()
    params = sum(p.numel() for p in model.parameters())
    examples = make_examples(args.images, config.image_size, args.boxes, args.predicates)
    warm = examples[: args.batch_size]

    def batched(dtype: str, batch_size: int = args.batch_size):
        for start in range(0, len(examples), batch_size):
            model.score(examples[start : start + batch_size], dtype=dtype)

    def one_by_one_fp32():
        for example in examples:
            model.labels.clear_cache()  # the label texts are encoded in every forward
            model.score([example], dtype="float32")

    fast_dtype = "auto" if device.type == "cuda" else "float32"
    results = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "model": "tiny" if args.quick else "base (ResNet-50 + RoBERTa-base, random weights)",
        "parameters": params,
        "image_size": config.image_size,
        "images": len(examples),
        "boxes_per_image": args.boxes,
        "pairs_per_image": args.boxes * (args.boxes - 1),
        "predicates_per_image": args.predicates,
        "batch_size": args.batch_size,
        "torch": torch.__version__,
    }
    model.score(warm, dtype=fast_dtype)  # warm-up: kernels, allocator, label cache
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = timed(lambda: batched(fast_dtype), device)
    results["batched_" + ("bf16" if device.type == "cuda" else "fp32") + "_images_per_s"] = (
        len(examples) / seconds
    )
    if device.type == "cuda":
        results["batched_bf16_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        seconds = timed(lambda: batched("float32"), device)
        results["batched_fp32_images_per_s"] = len(examples) / seconds
    sweep = {}
    for size in [int(b) for b in args.batch_sizes.split(",") if b.strip()]:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            model.score(examples[:size], dtype=fast_dtype)  # warm-up at this size
            seconds = timed(lambda size=size: batched(fast_dtype, size), device)
        except torch.OutOfMemoryError:
            sweep[size] = "out of memory"
            break
        sweep[size] = {"images_per_s": len(examples) / seconds}
        if device.type == "cuda":
            sweep[size]["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if sweep:
        results["batch_size_sweep"] = sweep
    model.score(warm[:1], dtype="float32")
    seconds = timed(one_by_one_fp32, device)
    results["batch1_fp32_images_per_s"] = len(examples) / seconds
    fast_key = next(k for k in results if k.startswith("batched_") and k.endswith("_images_per_s"))
    results["speedup"] = results[fast_key] / results["batch1_fp32_images_per_s"]
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
