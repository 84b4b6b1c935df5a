"""A time estimate for `sgpipe run --dry-run`, from the rates measured in docs/BENCHMARKS.md.

A worker runs its stages one after another on each chunk: per image it spends `device` seconds in
its model stages and `host` seconds in the rest (decoding, model inputs, parsing, tagging, writing),
and its GPU waits during the host part. With k workers sharing a GPU (`run.gpus_per_worker` 1/k),
one worker's host part overlaps another's model stages, so a GPU runs at
min(1 / device, k / (device + host)) images/s; the node's cores also bound the host work. In the
pools layout one device actor per GPU holds the model stages and is fed by shard actors, so a GPU
runs at min(1 / device, cores / host). The stages come from the table (`sgpipe.pipeline`); those
with no measured rate on the chosen device are named instead of guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sgpipe.config import PipelineConfig
from sgpipe.pipeline import enabled_specs

# Real-size models on one H200 in bf16 (gpu_caption.py, gpu_verifier.py): images/s with the GPU alone.
GPU_IMAGES_PER_S = {"caption": 181.0, "verify": 154.0}  # BLIP-large, 10 captions, batch 128; verifier base
CAPTION_IMAGES_PER_S_BY_BATCH = {32: 120.1, 64: 160.2, 128: 181.3, 256: 189.4, 512: 204.1}
# Host milliseconds per image on one core of the development machine: decoding COCO JPEGs
# (bench_decode.py); the model stages' host part, pixels being resized on the GPU, and tagging
# (bench_gpu_worker.py); writing JPEGs and records (bench_io.py). The derivations: docs/BENCHMARKS.md.
HOST_MS_PER_IMAGE = {"decode": 2.0, "caption": 1.5, "tag": 0.8, "verify": 1.7, "write": 1.5}
PARSE_MS_PER_CAPTION = 0.6  # spaCy small on COCO captions (10.3 words): bench_parse.py --coco-captions
PARSE_MS_PER_CAPTION_SNG = 4.6  # SceneGraphParser (parse.backend sng), same benchmark: 218 captions/s
FILE_CAPTIONS_PER_IMAGE = 5  # COCO captions files hold about five per image


@dataclass
class Estimate:
    images_per_s: float | None
    bottleneck: str
    missing: list[str]

    def describe(self, n_images: int | None) -> str:
        if self.images_per_s is None:
            return f"time estimate: none ({', '.join(self.missing)} not benchmarked on this device)"
        if n_images is None:  # tars are counted as they are read
            return f"time estimate: {self.images_per_s:.0f} images/s (bound by {self.bottleneck})"
        hours = n_images / self.images_per_s / 3600
        return (
            f"time estimate: {self.images_per_s:.0f} images/s, {hours:.2f} h for {n_images} images "
            f"(bound by {self.bottleneck}; from docs/BENCHMARKS.md rates)"
        )


def host_seconds_per_image(config: PipelineConfig) -> float:
    """One worker's host time per image, model stages' input preparation included."""
    captions = (config.caption.captions_per_image if config.caption.enabled else 0) + (
        FILE_CAPTIONS_PER_IMAGE if config.source.captions else 0
    )
    host = [s.name for s in enabled_specs(config) if s.name in HOST_MS_PER_IMAGE] + ["write"]
    parse_ms = PARSE_MS_PER_CAPTION_SNG if config.parse.backend == "sng" else PARSE_MS_PER_CAPTION
    return (sum(HOST_MS_PER_IMAGE[s] for s in host) + parse_ms * captions) / 1000.0


def gpu_images_per_s(config: PipelineConfig, stage: str) -> float:
    """The measured rate of a model stage; the captioner's at the largest measured batch that
    does not exceed `caption.batch_size` (below 32: the batch-32 rate, an overestimate)."""
    if stage != "caption":
        return GPU_IMAGES_PER_S[stage]
    batches = [b for b in CAPTION_IMAGES_PER_S_BY_BATCH if b <= config.caption.batch_size]
    return CAPTION_IMAGES_PER_S_BY_BATCH[max(batches, default=min(CAPTION_IMAGES_PER_S_BY_BATCH))]


def _unmeasured(config: PipelineConfig, gpus: float) -> list[str]:
    """The stages with no measured rate for this run: named instead of guessed."""
    missing = []
    for spec in enabled_specs(config):
        label = spec.label or spec.name
        if spec.on_device and spec.name not in GPU_IMAGES_PER_S:
            missing.append(label)
        elif spec.on_device and gpus <= 0:
            missing.append(f"{label} on CPU")
        elif not spec.on_device and spec.name not in HOST_MS_PER_IMAGE and spec.name != "parse":
            missing.append(label)
    return missing


def estimate(config: PipelineConfig, workers: int, cpus: float, gpus: float, pools: bool = False) -> Estimate:
    """Images/s of a run with `workers` actors over `cpus` cores and `gpus` GPUs in all; `pools`:
    the model stages on device actors, one per GPU, fed by the workers (shard actors)."""
    missing = _unmeasured(config, gpus)
    if missing:
        return Estimate(None, "", missing)
    model_stages = [s.name for s in enabled_specs(config) if s.on_device]
    host = host_seconds_per_image(config)
    cores = max(cpus, 1.0)
    if not model_stages:
        rates = {"the workers' serial work": min(workers, cores) / host, "CPU cores": cores / host}
    else:
        device = sum(1.0 / gpu_images_per_s(config, s) for s in model_stages)
        rates = {f"the GPU ({'+'.join(model_stages)})": gpus / device, "CPU cores": cores / host}
        if not pools:  # a worker's GPU waits while it does its host work
            rates[f"the workers' serial work ({workers / gpus:g} per GPU)"] = workers / (device + host)
    bottleneck = min(rates, key=rates.get)
    return Estimate(rates[bottleneck], bottleneck, [])
