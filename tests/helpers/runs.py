"""Run configs for end-to-end tests on the tiny COCO fixture."""

from __future__ import annotations

from pathlib import Path

from sgpipe.config import PipelineConfig, build_config


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
