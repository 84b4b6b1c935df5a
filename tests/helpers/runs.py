"""Run configs for end-to-end tests on the tiny COCO fixture."""

from __future__ import annotations

import time
from pathlib import Path

from sgpipe.config import PipelineConfig, build_config
from sgpipe.pipeline import build_stages
from sgpipe.records import Caption, Sample
from sgpipe.stages.base import Stage


def tiny_run_config(paths: dict[str, Path], out: Path, **overrides: object) -> PipelineConfig:
    """Captions from the file, no models beyond spaCy and the shipped MiniLM; 2 workers."""
    raw = {
        "source": {
            "name": "t",
            "instances": str(paths["instances"]),
            "images": str(paths["images"]),
            "captions": str(paths["captions"]),
        },
        "output": {"dir": str(out), "samples_per_shard": 2},
        # the fixtures hold deliberately broken images: 2 of 5 fail, above the 0.25 default
        "run": {"workers": 2, "decode_threads": 2, "max_error_rate": 0.5},
        "tag": {"embedding_model": "none"},
    }
    settings = [f"{key}={value}" for key, value in overrides.items()]
    return build_config(raw, [s.replace("__", ".", 1) for s in settings])


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

    def process(self, samples: list[Sample]) -> None:
        time.sleep(0.25)


def stages_with_a_pause(config: PipelineConfig, categories: list[str]) -> list[Stage]:
    """The recipe's stages, then `PauseStage`: the same shard bytes, written more slowly."""
    return build_stages(config, categories) + [PauseStage()]
