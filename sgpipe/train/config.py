"""Training recipe: YAML -> `TrainConfig`, `--set section.key=value` overrides, validate-all
(every problem reported at once, with the valid choices), with the same field helpers as the
pipeline's config (`sgpipe.fields`); whether the shards and the checkpoint are there is
`sgpipe.train.preflight`'s to check."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sgpipe.errors import ConfigError
from sgpipe.fields import build_sections, check_choice, check_fields, choices_text, option
from sgpipe.recipe import read_recipe


@dataclass
class ModelSection:
    preset: str = "small"  # tiny | small | base (checked against the verifier's presets)
    init: str = ""  # a checkpoint folder to start from (fine-tuning); empty: a fresh model
    options: dict = field(default_factory=dict)  # VerifierConfig fields over the preset, e.g. {d_model: 96}


@dataclass
class DataSection:
    train: str = ""  # shards: a folder, a .tar or a brace pattern
    eval: str = ""  # held-out shards (optional)
    batch_size: int = option(16, low=1)
    num_workers: int = option(2, low=0)
    shuffle_buffer: int = option(200, low=0)
    negative_predicates: int = option(3, low=0)  # other predicates of the vocabulary, frequency-weighted
    negative_pairs: int = option(2, low=0)  # other ordered box pairs per image
    max_pairs: int = option(32, low=1)
    min_confidence: float = option(0.5, low=0.0, high=1.0)  # relations at or above: positives (truth is 1.0)
    max_negative_confidence: float = 0.0  # at or below: explicit negatives; between: left out
    vocab_scan_samples: int = 0  # records read to build the predicate vocabulary (0: all)
    storage_options: dict = field(default_factory=dict)  # fsspec options for URL shards (endpoint_url...)


@dataclass
class OptimSection:
    lr: float = option(3e-4, low=0.0)
    weight_decay: float = 0.01
    warmup_steps: int = option(50, low=0)
    grad_accum: int = option(1, low=1)
    epochs: int = option(1, low=1)
    steps_per_epoch: int = option(0, low=0)  # 0: samples // (world_size * batch_size * grad_accum)
    max_steps: int = option(0, low=0)  # 0: epochs * steps_per_epoch
    max_seconds: float = option(0.0, low=0)  # 0: no time budget
    clip_grad: float = 1.0


@dataclass
class RunSection:
    out: str = "runs/verifier"
    seed: int = 0
    device: str = option("auto", choices=("auto", "cpu", "cuda"))
    dtype: str = option("auto", choices=("auto", "float32", "bfloat16"))  # auto: bf16 on CUDA
    log_every: int = option(10, low=1)
    checkpoint_every: int = option(200, low=0)
    keep_checkpoints: int = option(2, low=1)
    eval_every: int = option(0, low=0)  # 0: only at the end
    eval_samples: int = 0  # 0: every held-out sample
    keep_threshold: float = option(0.2, low=0.0, high=1.0)
    resume: bool = True  # continue from the newest checkpoint under `out`


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PATH_KEYS = (("data", "train"), ("data", "eval"), ("model", "init"))


def validate(config: TrainConfig, problems: list[str]) -> None:
    """Every field's declared choices and range, then the rules across fields."""
    from sgpipe.models.verifier.config import PRESETS, VerifierConfig

    for section in dataclasses.fields(config):
        check_fields(getattr(config, section.name), section.name, problems)
    m, d = config.model, config.data
    check_choice(problems, "model.preset", m.preset, PRESETS)
    known = {f.name for f in dataclasses.fields(VerifierConfig)} - {"preset", "predicate_frequencies"}
    for key in sorted(set(m.options) - known):
        problems.append(f"model.options: unknown verifier option {key!r}. {choices_text(known)}")
    if not d.train:
        problems.append("data.train: required (training shards: a folder, a .tar or a brace pattern)")
    if d.max_negative_confidence >= d.min_confidence:
        problems.append("data.max_negative_confidence must be below data.min_confidence")
    if not config.run.out:
        problems.append("run.out: required")


def load_train_config(
    path: str | Path | None, overrides: typing.Sequence[str] = (), check_paths: bool = True
) -> TrainConfig:
    """Build and validate; one ConfigError lists every problem, the shards' and checkpoint's (with
    `check_paths`, `sgpipe.train.preflight`) among them. Relative paths in a recipe are relative to
    the recipe file when they exist there."""
    problems: list[str] = []
    config = build_sections(TrainConfig, read_recipe(path, PATH_KEYS), overrides, problems)
    validate(config, problems)
    if check_paths:
        from sgpipe.train.preflight import world_problems

        problems += world_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
