"""A time estimate for `sgpipe run --dry-run`, from the rates measured in docs/BENCHMARKS.md.

Each stage's rate (images/s) is multiplied by the units that run it (GPUs or CPU cores); the slowest
stage bounds the run, and the GPU stages share their GPU. Stages with no measured rate on the chosen
device are named instead of guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sgpipe.config import PipelineConfig

# Measured (docs/BENCHMARKS.md): real-size models on one H200 in bf16; CPU rates per core on the
# 2-core development machine.
GPU_IMAGES_PER_S = {"caption": 181.0, "verify": 154.0}  # BLIP-large, 10 captions, batch 128; verifier base
CPU_IMAGES_PER_S = {"decode": 500.0, "tag": 1000.0}  # bench_decode.py (COCO JPEGs), bench_tag_synth.py
PARSE_CAPTIONS_PER_S = 2500.0  # per core, spaCy small
FILE_CAPTIONS_PER_IMAGE = 5  # COCO captions files hold about five per image


@dataclass
class Estimate:
    images_per_s: float | None
    bottleneck: str
    missing: list[str]

    def describe(self, n_images: int) -> str:
        if self.images_per_s is None:
            return f"time estimate: none ({', '.join(self.missing)} not benchmarked on this device)"
        hours = n_images / self.images_per_s / 3600
        text = (
            f"time estimate: {self.images_per_s:.0f} images/s, {hours:.2f} h for {n_images} images "
            f"(bound by {self.bottleneck}; from docs/BENCHMARKS.md rates)"
        )
        return text + (f"; not included: {', '.join(self.missing)}" if self.missing else "")


def estimate(config: PipelineConfig, workers: int, cpus: float, gpus: float) -> Estimate:
    """Images/s of a run with `workers` actors over `cpus` cores and `gpus` GPUs in all."""
    captions = (config.caption.captions_per_image if config.caption.enabled else 0) + (
        FILE_CAPTIONS_PER_IMAGE if config.source.captions else 0
    )
    rates = {name: rate * cpus for name, rate in CPU_IMAGES_PER_S.items()}
    rates["parse"] = PARSE_CAPTIONS_PER_S / max(captions, 1) * cpus
    gpu_stages = [
        s for s, on in (("caption", config.caption.enabled), ("verify", config.verify.enabled)) if on
    ]
    missing = []
    if gpu_stages and gpus <= 0:
        missing = [f"{stage} on CPU" for stage in gpu_stages]
    elif gpu_stages:
        # the model stages share each GPU: their times per image add up
        rates["+".join(gpu_stages)] = gpus / sum(1.0 / GPU_IMAGES_PER_S[s] for s in gpu_stages)
    if missing and config.caption.enabled:
        return Estimate(None, "", missing)
    bottleneck = min(rates, key=rates.get)
    return Estimate(rates[bottleneck], bottleneck, missing)
