"""How busy the pipeline keeps a GPU, with the GPU simulated: today's flat layout against device pools.

    python benchmarks/bench_gpu_worker.py --images 3072 --device-scale 1 2 4
    python benchmarks/bench_gpu_worker.py --quick          # a small smoke run

This machine has no GPU. Every host-side step is real (real Ray actors, JPEG decoding, spaCy parsing of
10 captions per image, tagging, each model stage's own input preparation, atomic shard writing) and
only the forward passes are replaced, by holding a device lock for the time they take on an H200
(docs/BENCHMARKS.md: BLIP-large, 10 captions, bf16 batch 128: 181.3 images/s; the base verifier:
154.0 images/s), times `--device-scale` (2: a GPU half as fast, so the CPUs have room to spare).
The lock is one file: every process that holds a "model" (flat workers, a device actor's threads)
takes turns on the one simulated GPU, as CUDA time-slices them.

Layouts, each in the same run on the same Ray (8 logical CPUs, 1 GPU; the machine's own cores are
what the host work shares), chunks of 64 images (the recipes' caption batch), 4 chunks per shard:
  flat k    k workers share the GPU (run.gpus_per_worker 1/k), each running every stage in turn: the
            recipes' layout before, k = 3
  pools k   one device actor holds both models and serves k shard actors (decode, parse, tag, write),
            two chunks in flight per shard actor, two calls at once on the device (one's input
            preparation overlaps the other's forward pass)
Busy share: the time the lock was held over the span from the first simulated forward pass to the
end of the last one (so the workers' start-up is left out and their drain at the end is in), from
the lock's own log; images/s over the same span. 100% means the GPU never waits on the host.
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

CAPTION_IMAGES_PER_S = {64: 160.2, 128: 181.3}  # H200, bf16, by batch (docs/benchmarks/caption.md)
VERIFY_IMAGES_PER_S = 154.0  # H200, bf16 autocast (docs/benchmarks/verifier.md)
CAPTIONS_PER_IMAGE = 10
OPENINGS = ("", "a photo of ", "an image of ", "a picture with ")
RAY_CPUS = 8  # logical: a device actor (2, as its two model stages declare) and up to six shard actors


class SimulatedDevice:
    """One GPU: an exclusive file lock held for a forward pass's time; each hold is logged."""

    def __init__(self, lock_path: str, scale: float):
        self.lock_path = lock_path
        self.scale = scale

    def run(self, seconds: float) -> None:
        with open(self.lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                started = time.time()
                time.sleep(seconds * self.scale)
                with open(f"{self.lock_path}.busy", "a") as log:
                    log.write(f"{started} {time.time()}\n")
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class SimulatedCaption(Stage):
    name = "caption"

    def __init__(self, device: SimulatedDevice, batch_size: int):
        super().__init__(batch_size)
        self.device = device

    def process(self, samples: list[Sample]) -> None:
        from sgpipe.models.pixels import to_tensor

        images = [s.image for s in samples if s.image is not None]
        [to_tensor(image) for image in images]  # the host's part: a uint8 tensor per image
        self.device.run(len(images) / CAPTION_IMAGES_PER_S[self.batch_size])
        for sample in samples:  # the world's captions stand in for the model's: 10 per image, no others
            said = [c.text for c in sample.captions] or ["a picture"]
            sample.captions = [
                # distinct texts, as sampled captions mostly are (the parse stage parses a text once)
                Caption(k, f"{OPENINGS[k // len(said) % len(OPENINGS)]}{said[k % len(said)]}", "model")
                for k in range(CAPTIONS_PER_IMAGE)
            ]


class SimulatedVerify(Stage):
    name = "verify"

    def __init__(self, device: SimulatedDevice, batch_size: int):
        super().__init__(batch_size)
        self.device = device

    def process(self, samples: list[Sample]) -> None:
        from sgpipe.models.pixels import to_tensor
        from sgpipe.stages.verify import candidate_example

        todo = [s for s in samples if s.relations and s.image is not None]
        for sample in todo:  # the verify stage's host work before the model
            candidate_example(sample, to_tensor(sample.image))
        self.device.run(len(samples) / VERIFY_IMAGES_PER_S)
        for sample in todo:
            for relation in sample.relations:
                relation.confidence, relation.kept = 0.5, True


def simulated_stages(config, categories, lock_path: str, scale: float) -> list[Stage]:
    """The recipe's stages with its two model stages simulated (same names: the device's in pools)."""
    from sgpipe.pipeline import build_stages

    device = SimulatedDevice(lock_path, scale)
    batch = config.caption.batch_size
    simulated = {"caption": SimulatedCaption(device, batch), "verify": SimulatedVerify(device, 16)}
    return [simulated.get(stage.name, stage) for stage in build_stages(config, categories)]


def device_span(log: Path, images: int) -> dict:
    """From the lock's log: the share of the span (first hold's start to last hold's end) it was held,
    and the images per second of that span."""
    holds = [tuple(map(float, line.split())) for line in log.read_text().splitlines()]
    span = holds[-1][1] - holds[0][0]
    return {
        "images_per_s": round(images / span, 1),
        "busy_share": round(sum(end - start for start, end in holds) / span, 3),
    }


def run_layout(
    world: Path,
    models: dict[str, str],
    out: Path,
    layout: str,
    workers: int,
    scale: float,
    args: argparse.Namespace,
) -> dict:
    from sgpipe.config import build_config
    from sgpipe.run import RunOptions, run_pipeline

    placement = {"executor": "ray", "layout": layout, "workers": workers, "decode_threads": 2}
    if layout == "flat":
        placement |= {"gpus_per_worker": 1 / workers, "cpus_per_worker": 1}
    else:
        placement |= {"devices": 1, "cpus_per_worker": 1}
    config = build_config(
        {
            "source": {
                "name": "synth",
                "instances": str(world / "annotations/instances.json"),
                "images": str(world / "images"),
                "captions": str(world / "annotations/captions.json"),  # replaced by SimulatedCaption
            },
            # enabled so the table makes them model stages; the models are simulated, never loaded
            "caption": {"enabled": True, "model": models["caption"], "batch_size": args.caption_batch},
            "verify": {"enabled": True, "checkpoint": models["verify"], "batch_size": 16},
            "output": {"dir": str(out), "samples_per_shard": args.samples_per_shard},
            "run": placement,
        }
    )
    lock = out.parent / f"{out.name}.device.lock"
    factory = functools.partial(simulated_stages, lock_path=str(lock), scale=scale)
    metrics = out.parent / f"{out.name}.metrics.jsonl"
    started = time.time()
    run_pipeline(config, RunOptions(progress=False, metrics_path=str(metrics)), stage_factory=factory)
    ended = time.time()
    images = json.loads(metrics.read_text().splitlines()[-1])["images"]
    device_s = scale / CAPTION_IMAGES_PER_S[args.caption_batch] + scale / VERIFY_IMAGES_PER_S
    return {
        "layout": f"flat {workers}" if layout == "flat" else f"pools (1 device, {workers} shard actors)",
        "device_scale": scale,
        "images": images,
        **device_span(Path(f"{lock}.busy"), images),
        "images_per_s_wall": round(images / (ended - started), 1),
        "device_bound_images_per_s": round(1 / device_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=3072)
    parser.add_argument("--image-size", type=int, default=640, help="synthetic images are square")
    parser.add_argument(
        "--caption-batch",
        type=int,
        default=64,
        choices=sorted(CAPTION_IMAGES_PER_S),
        help="the recipes' caption batch, hence the chunk",
    )
    parser.add_argument("--samples-per-shard", type=int, default=256, help="four chunks of 64 per shard")
    parser.add_argument("--device-scale", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--flat-workers", type=int, nargs="+", default=[3], help="workers per GPU")
    parser.add_argument("--shard-actors", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON summary here")
    args = parser.parse_args()
    if args.quick:
        args.images, args.image_size, args.samples_per_shard = 64, 160, 8
        args.device_scale, args.flat_workers, args.shard_actors = [1.0], [2], [2]
    import ray

    from sgpipe.synth.world import generate_world
    from tests.helpers.tiny_models import build_tiny_blip, save_tiny_verifier

    work = args.work or Path(tempfile.mkdtemp(prefix="sgpipe-gpu-worker-"))
    world = work / "world"
    if not (world / "annotations/instances.json").exists():
        generate_world(world, n_images=args.images, seed=5, image_size=args.image_size)
    models = {
        "caption": str(build_tiny_blip(work / "blip")),
        "verify": str(save_tiny_verifier(work / "verifier")),
    }
    ray.init(
        num_cpus=RAY_CPUS, num_gpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False
    )
    results = []
    try:
        for scale in args.device_scale:
            runs = [("flat", k) for k in args.flat_workers] + [("pools", k) for k in args.shard_actors]
            for layout, workers in runs:
                out = work / f"out-{layout}-{workers}-x{scale:g}"
                if out.exists():  # a rerun in the same --work folder starts clean (a resume would skip)
                    shutil.rmtree(out)
                for stale in (f"{out.name}.metrics.jsonl", f"{out.name}.device.lock.busy"):
                    (work / stale).unlink(missing_ok=True)
                results.append(run_layout(world, models, out, layout, workers, scale, args))
                print(json.dumps(results[-1]), flush=True)
    finally:
        ray.shutdown()
    summary = {"results": results, "machine_cores": os.cpu_count(), "ray_cpus": RAY_CPUS}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
