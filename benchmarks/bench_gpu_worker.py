"""A GPU worker's host side: how much of the GPU the pipeline keeps busy, with the GPU simulated.

    python benchmarks/bench_gpu_worker.py --images 1280

A worker runs its stages one after another on each chunk, so whatever the host does per image
(decoding, preparing model inputs, parsing, tagging, writing) is time its GPU waits, unless a second
worker shares the GPU. This machine has no GPU; the benchmark keeps every host-side step real (real
Ray, JPEG decoding, spaCy parsing, tagging, shard writing, and each model stage's own input
preparation) and replaces only the forward passes by holding a cross-process "device" lock for the
time they take on an H200 (docs/BENCHMARKS.md: BLIP-large, 10 captions, bf16 batch 128: 181.3
images/s; verifier base: 154.0 images/s). The captions come from the synthetic world, 10 per image,
so parsing does the work of 10 model captions.

Two things vary, each against the other in the same run:
  inputs   "processor": model inputs prepared on the host as before (transformers' BLIP processor,
           the verifier's PIL resize); "device": the host only makes uint8 tensors, and resizing
           runs on the GPU (sgpipe.models.pixels; the simulated device time covers it).
  sharing  1, 2 or 3 workers per GPU (run.gpus_per_worker 1, 0.5, 0.33).
Device occupancy = simulated GPU seconds / wall seconds, in steady state (after every worker's
first shard). 100% means the GPU never waits on the host.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from sgpipe.records import Caption, Sample  # noqa: E402
from sgpipe.stages.base import Stage  # noqa: E402

CAPTION_IMAGES_PER_S = 181.3  # H200, bf16, batch 128 (docs/benchmarks/caption.md)
VERIFY_IMAGES_PER_S = 154.0  # H200, bf16 autocast (docs/benchmarks/verifier.md)
CAPTIONS_PER_IMAGE = 10
OPENINGS = ("", "a photo of ", "an image of ", "a picture with ")


class SimulatedDevice:
    """One GPU shared by worker processes: an exclusive file lock held for the forward pass's time."""

    def __init__(self, lock_path: str):
        self.lock_path = lock_path

    def run(self, seconds: float) -> None:
        with open(self.lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                time.sleep(seconds)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class SimulatedCaption(Stage):
    name = "caption"

    def __init__(self, device: SimulatedDevice, inputs: str, batch_size: int):
        super().__init__(batch_size)
        self.device, self.inputs = device, inputs
        self.processor = None

    def setup(self) -> None:
        from transformers import BlipImageProcessor

        self.processor = BlipImageProcessor(size={"height": 384, "width": 384})  # BLIP-large's

    def process(self, samples: list[Sample]) -> None:
        from sgpipe.models.pixels import to_tensor

        images = [s.image for s in samples if s.image is not None]
        if self.inputs == "processor":
            self.processor(images=images, return_tensors="pt")
        else:
            [to_tensor(image) for image in images]
        self.device.run(len(images) / CAPTION_IMAGES_PER_S)
        for sample in samples:  # the world's captions stand in for the model's: 10 per image, no others
            said = [c.text for c in sample.captions] or ["a picture"]
            sample.captions = [
                # distinct texts, as sampled captions mostly are (the parse stage parses a text once)
                Caption(k, f"{OPENINGS[k // len(said) % len(OPENINGS)]}{said[k % len(said)]}", "model")
                for k in range(CAPTIONS_PER_IMAGE)
            ]


class SimulatedVerify(Stage):
    name = "verify"

    def __init__(self, device: SimulatedDevice, inputs: str, batch_size: int, image_size: int = 512):
        super().__init__(batch_size)
        self.device, self.inputs, self.image_size = device, inputs, image_size

    def process(self, samples: list[Sample]) -> None:
        from sgpipe.models.pixels import to_tensor
        from sgpipe.models.verifier import image_to_pixels
        from sgpipe.stages.verify import candidate_example

        todo = [s for s in samples if s.relations and s.image is not None]
        # the verify stage's host work before the model (collation is inside the measured H200 rate)
        for sample in todo:
            if self.inputs == "processor":
                candidate_example(sample, image_to_pixels(sample.image, self.image_size))
            else:
                candidate_example(sample, to_tensor(sample.image))
        self.device.run(len(samples) / VERIFY_IMAGES_PER_S)
        for sample in todo:
            for relation in sample.relations:
                relation.confidence, relation.kept = 0.5, True


def simulated_stages(config, categories, lock_path: str, inputs: str) -> list[Stage]:
    from sgpipe.pipeline import build_stages

    device = SimulatedDevice(lock_path)
    decode, parse, tag = build_stages(config, categories)  # caption and verify are off in the config
    return [
        decode,
        SimulatedCaption(device, inputs, batch_size=128),
        parse,
        tag,
        SimulatedVerify(device, inputs, batch_size=16),
    ]


def stage_milliseconds(out: Path) -> dict[str, float]:
    """Each stage's worker time per image, over every shard but each worker's first; the model
    stages' figures include their simulated device time (and, with shared GPUs, lock waits)."""
    from sgpipe.output.writer import read_shard_stats

    shards = read_shard_stats(out)[1:]
    images = sum(s["count"] for s in shards)
    totals: dict[str, float] = {}
    for shard in shards:
        for name, seconds in shard["timings"]["stages"].items():
            totals[name] = totals.get(name, 0.0) + seconds
    return {name: round(1000 * seconds / images, 2) for name, seconds in totals.items()}


def run(world: Path, out: Path, inputs: str, workers_per_gpu: int, samples_per_shard: int = 128) -> dict:
    import ray

    from sgpipe.config import build_config
    from sgpipe.run import RunOptions, run_pipeline

    config = build_config(
        {
            "source": {
                "name": "synth",
                "instances": str(world / "annotations/instances.json"),
                "images": str(world / "images"),
                "captions": str(world / "annotations/captions.json"),  # replaced by SimulatedCaption
            },
            "output": {"dir": str(out), "samples_per_shard": samples_per_shard},
            "run": {
                "workers": workers_per_gpu,
                "gpus_per_worker": 1 / workers_per_gpu,
                "cpus_per_worker": 2 / workers_per_gpu,  # this machine has 2 cores
                "decode_threads": 2,
            },
        }
    )
    factory = functools.partial(
        simulated_stages,
        lock_path=str(out.parent / f"{out.name}.device.lock"),
        inputs=inputs,
    )
    metrics = out.parent / f"{out.name}.metrics.jsonl"
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        started = time.time()
        run_pipeline(config, RunOptions(progress=False, metrics_path=str(metrics)), stage_factory=factory)
        ended = time.time()
    finally:
        ray.shutdown()
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    images = lines[-1]["images"]
    # steady state: from the moment every worker has finished one shard (models loaded, caches warm)
    warm = lines[workers_per_gpu - 1]
    steady_images = images - warm["images"]
    steady_seconds = lines[-1]["time"] - warm["time"]
    device_seconds_per_image = 1 / CAPTION_IMAGES_PER_S + 1 / VERIFY_IMAGES_PER_S
    if steady_images <= 0 or steady_seconds <= 0:
        raise SystemExit(
            f"too few shards for a steady state with {workers_per_gpu} workers: pass more --images"
        )
    steady_rate = steady_images / steady_seconds
    return {
        "stage_ms_per_image": stage_milliseconds(out),
        "inputs": inputs,
        "workers_per_gpu": workers_per_gpu,
        "images": images,
        "images_per_s_wall": round(images / (ended - started), 1),
        "images_per_s_steady": round(steady_rate, 1),
        "gpu_occupancy_steady": round(steady_rate * device_seconds_per_image, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1280)
    parser.add_argument("--image-size", type=int, default=640, help="synthetic images are square")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON summary here")
    parser.add_argument("--workers-per-gpu", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--samples-per-shard", type=int, default=128, help="the chunk: caption batch 128")
    args = parser.parse_args()
    from sgpipe.synth.world import generate_world

    work = args.work or Path(tempfile.mkdtemp(prefix="sgpipe-gpu-worker-"))
    world = work / "world"
    if not (world / "annotations/instances.json").exists():
        generate_world(world, n_images=args.images, seed=5, image_size=args.image_size)
    results = []
    for inputs in ("processor", "device"):
        for workers_per_gpu in args.workers_per_gpu:
            out = work / f"out-{inputs}-{workers_per_gpu}"
            if out.exists():  # a rerun in the same --work folder starts clean (a resume would skip shards)
                shutil.rmtree(out)
                (work / f"{out.name}.metrics.jsonl").unlink(missing_ok=True)
            results.append(run(world, out, inputs, workers_per_gpu, args.samples_per_shard))
            print(json.dumps(results[-1]), flush=True)
    device_bound = 1 / (1 / CAPTION_IMAGES_PER_S + 1 / VERIFY_IMAGES_PER_S)
    summary = {
        "device_bound_images_per_s": round(device_bound, 1),
        "results": results,
        "machine_cores": os.cpu_count(),
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
