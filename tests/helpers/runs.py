"""Run configs for end-to-end tests on the tiny COCO fixture."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from sgpipe import errors
from sgpipe.config import PipelineConfig, build_config
from sgpipe.pipeline import build_stages
from sgpipe.records import Caption, Sample
from sgpipe.run import RunOptions
from sgpipe.run.identity import config_hash
from sgpipe.run.processor import ShardJob, ShardProcessor
from sgpipe.run.sources import PlannedSource
from sgpipe.stages.base import Stage


QUIET = RunOptions(progress=False)  # no progress lines in test output


def planned_processor(
    config: PipelineConfig, stages: list[Stage] | None = None, **kwargs: object
) -> ShardProcessor:
    """A `ShardProcessor` for `config`'s source, planned into its output folder (no run around it)."""
    source = PlannedSource(config)
    plan = source.plan()
    job = ShardJob(plan.dataset, tuple(plan.categories), source, config_hash=config_hash(config))
    return ShardProcessor(config, job, stages, **kwargs)


def tiny_run_config(paths: dict[str, Path], out: Path, **overrides: object) -> PipelineConfig:
    """Captions from the file, no models beyond spaCy; one worker (run.executor auto: this process,
    no Ray). Tests of the Ray executor pass `run__executor="ray"` and their worker count."""
    raw = {
        "source": {
            "name": "t",
            "instances": str(paths["instances"]),
            "images": str(paths["images"]),
            "captions": str(paths["captions"]),
        },
        "output": {"dir": str(out), "samples_per_shard": 2},
        # the fixtures hold deliberately broken images: 2 of 5 fail, above the 0.25 default
        "run": {"workers": 1, "decode_threads": 2, "max_error_rate": 0.5},
        "tag": {"embedding_model": "none"},
    }
    settings = [f"{key}={value}" for key, value in overrides.items()]
    return build_config(raw, [s.replace("__", ".", 1) for s in settings])


def with_tiny_models(blip: object, verifier: object) -> dict[str, object]:
    """`tiny_run_config` overrides that run every model stage: the tiny BLIP's two short sampled captions
    per image (beside the file's) and the tiny verifier, storing every candidate."""
    return {
        "caption__enabled": True,
        "caption__model": str(blip),
        "caption__captions_per_image": 2,
        "caption__max_length": 8,
        "caption__min_length": 2,
        "verify__enabled": True,
        "verify__checkpoint": str(verifier),
        "verify__store_threshold": 0.0,
    }


MARKER_CAPTION = "a cat on a mat from the factory"


class MarkerStage(Stage):
    """Stands in for a model stage: one recognisable caption per image."""

    name = "marker"

    def process(self, samples: list[Sample]) -> None:
        for sample in samples:
            sample.captions.append(Caption(99, MARKER_CAPTION, "model"))


def stages_with_a_marker(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    """The recipe's stages with `MarkerStage` after decode (a `run_pipeline` stage factory)."""
    stages = build_stages(config, categories)
    return stages[:1] + [MarkerStage()] + stages[1:]


class PauseStage(Stage):
    """Adds time to every batch and nothing to the records (kill-timing tests)."""

    name = "pause"
    pause_s = 0.25

    def process(self, samples: list[Sample]) -> None:
        time.sleep(self.pause_s)


class LongPauseStage(PauseStage):
    pause_s = 2.0


def stages_with_a_pause(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    """The recipe's stages, then `PauseStage`: the same shard bytes, written more slowly."""
    return build_stages(config, categories) + [PauseStage()]


def stages_with_a_long_pause(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    """As `stages_with_a_pause`, 2 s a batch: a run that a signal surely meets mid-way."""
    return build_stages(config, categories) + [LongPauseStage()]


def leave_pid(folder: Path) -> Path:
    """This process's id as an empty file in `folder` (how a stage tells a test where it ran)."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / str(os.getpid())
    marker.touch()
    return marker


class BusyPidStage(PauseStage):
    """`PauseStage` that also leaves its process id in `OUTPUT_DIR/../busy/`: a worker known to
    have processed a batch, so past its start-up (a worker killed while Ray creates its actor
    is silently replaced by Ray itself, and tests that count losses need real ones)."""

    name = "busy"

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def process(self, samples: list[Sample]) -> None:
        leave_pid(self.folder)
        super().process(samples)


def stages_that_show_busy_pids(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    return build_stages(config, categories) + [BusyPidStage(Path(config.output.dir).parent / "busy")]


class InFlightPidStage(BusyPidStage):
    """A 1 s pause whose process id sits in `OUTPUT_DIR/../in_flight/` only while it pauses: a worker
    seen there is mid-shard, a second at least before it can commit (tests that freeze a worker must
    meet it before its shard is written, or there is nothing left to time out)."""

    name = "in_flight"
    pause_s = 1.0

    def process(self, samples: list[Sample]) -> None:
        marker = leave_pid(self.folder)
        try:
            time.sleep(self.pause_s)
        finally:
            marker.unlink(missing_ok=True)


def stages_that_show_in_flight_pids(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    return build_stages(config, categories) + [InFlightPidStage(Path(config.output.dir).parent / "in_flight")]


POISON_IMAGE_ID = 20


class PoisonStage(Stage):
    """Kills its own worker process whenever its batch holds image `POISON_IMAGE_ID`: a shard
    that takes down every worker it is given (a native crash, an out-of-memory kill)."""

    name = "poison"

    def process(self, samples: list[Sample]) -> None:
        if any(s.image_id == POISON_IMAGE_ID for s in samples):
            os.kill(os.getpid(), signal.SIGKILL)


def stages_with_a_poison(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    return build_stages(config, categories) + [PoisonStage()]


FLAKY_IMAGE_ID = 50


def flaky_flag(images: Path) -> Path:
    """While this file lies beside the images folder, `FlakyStage` fails image `FLAKY_IMAGE_ID`."""
    return Path(images).parent / f"fail-image-{FLAKY_IMAGE_ID}"


class FlakyStage(Stage):
    """A stage failure that a later run no longer meets (an out-of-memory, a device error): raises on
    every batch holding image `FLAKY_IMAGE_ID` while `flaky_flag` exists, so that image alone gets
    `failed_caption` (placed before the caption stage)."""

    name = "flaky"
    failure_status = errors.FAILED_CAPTION

    def __init__(self, flag: Path):
        super().__init__()
        self.flag = flag

    def process(self, samples: list[Sample]) -> None:
        if self.flag.exists() and any(s.image_id == FLAKY_IMAGE_ID for s in samples):
            raise RuntimeError("CUDA out of memory (a stand-in)")


def stages_with_a_flaky_stage(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    stages = build_stages(config, categories)
    return stages[:1] + [FlakyStage(flaky_flag(Path(config.source.images)))] + stages[1:]


SLOW_IMAGE_ID = 20


class SlowImageStage(Stage):
    """Before decoding (so every sample is still ok): ten minutes on the batch of `SLOW_IMAGE_ID`,
    nothing on the others. Its shard is surely in flight when the others are done."""

    name = "slow"

    def process(self, samples: list[Sample]) -> None:
        if any(s.image_id == SLOW_IMAGE_ID for s in samples):
            time.sleep(600)


def stages_with_a_slow_image(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    return [SlowImageStage()] + build_stages(config, categories)


def our_worker_pids(actor: str = "ShardWorker") -> list[int]:
    """Process ids of the `actor` workers (`ShardWorker`, `DeviceWorker`) of the Ray instances this
    process started: Ray titles a worker after its actor class, and the worker descends from our
    raylet. Other Ray instances on the machine are never touched."""
    me = os.getpid()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if not handle.read().startswith(f"ray::{actor}".encode()):
                    continue
            if me in _ancestors(int(entry)):
                pids.append(int(entry))
        except OSError:
            continue
    return sorted(pids)


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        with open(f"/proc/{pid}/stat") as handle:
            pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        chain.append(pid)
    return chain


class SlowCaption(Stage):
    """Stands in for the captioner on a device actor (its name makes it the recipe's model stage):
    one marker caption per image, 0.4 s a batch, and its process id left in `busy/` like
    `BusyPidStage`'s, so a test knows the device actor has served a chunk."""

    name = "caption"

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def process(self, samples: list[Sample]) -> None:
        leave_pid(self.folder)
        time.sleep(0.4)
        for sample in samples:
            sample.captions.append(Caption(99, MARKER_CAPTION, "model"))


def stages_with_a_slow_device(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    """The recipe's stages, its captioner replaced by `SlowCaption` (caption.enabled must be true)."""
    busy = Path(config.output.dir).parent / "busy"
    return [SlowCaption(busy) if s.name == "caption" else s for s in build_stages(config, categories)]
