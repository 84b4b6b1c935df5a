"""Training recipe: YAML -> `TrainConfig`, `--set section.key=value` overrides, validate-all
(every problem reported at once, with the valid choices), as `sgpipe.config` does for pipelines."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sgpipe.config import _check_range, _choices, build_sections, read_recipe
from sgpipe.errors import ConfigError
from sgpipe.models.checkpoint import is_checkpoint, not_a_checkpoint


@dataclass
class ModelSection:
    preset: str = "small"  # tiny | small | base
    init: str = ""  # a checkpoint folder to start from (fine-tuning); empty: a fresh model
    options: dict = field(default_factory=dict)  # VerifierConfig fields over the preset, e.g. {d_model: 96}


@dataclass
class DataSection:
    train: str = ""  # shards: a folder, a .tar or a brace pattern
    eval: str = ""  # held-out shards (optional)
    batch_size: int = 16
    num_workers: int = 2
    shuffle_buffer: int = 200
    negative_predicates: int = 3  # other predicates of the vocabulary per image, frequency-weighted
    negative_pairs: int = 2  # other ordered box pairs per image
    max_pairs: int = 32
    min_confidence: float = 0.5  # relations at or above: positives (ground truth is 1.0)
    max_negative_confidence: float = 0.0  # at or below: explicit negatives; between: left out
    vocab_scan_samples: int = 0  # records read to build the predicate vocabulary (0: all)
    storage_options: dict = field(default_factory=dict)  # fsspec options for URL shards (endpoint_url...)


@dataclass
class OptimSection:
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_accum: int = 1
    epochs: int = 1
    steps_per_epoch: int = 0  # 0: samples // (world_size * batch_size * grad_accum)
    max_steps: int = 0  # 0: epochs * steps_per_epoch
    max_seconds: float = 0.0  # 0: no time budget
    clip_grad: float = 1.0


@dataclass
class RunSection:
    out: str = "runs/verifier"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto (bf16 on CUDA) | float32 | bfloat16
    log_every: int = 10
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    eval_every: int = 0  # 0: only at the end
    eval_samples: int = 0  # 0: every held-out sample
    keep_threshold: float = 0.2
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


def _validate(config: TrainConfig, problems: list[str], check_paths: bool) -> None:
    from sgpipe.models.verifier.config import PRESETS, VerifierConfig

    m, d, o, r = config.model, config.data, config.optim, config.run
    if m.preset not in PRESETS:
        problems.append(f"model.preset: {m.preset!r} is not valid. {_choices(PRESETS)}")
    known = {f.name for f in dataclasses.fields(VerifierConfig)} - {"preset", "predicate_frequencies"}
    for key in sorted(set(m.options) - known):
        problems.append(f"model.options: unknown verifier option {key!r}. {_choices(known)}")
    if check_paths and m.init and not is_checkpoint(m.init):
        problems.append(not_a_checkpoint("model.init", m.init))
    if not d.train:
        problems.append("data.train: required (training shards: a folder, a .tar or a brace pattern)")
    if check_paths:
        from sgpipe.errors import SgpipeError
        from sgpipe.shards import expand_urls
        from sgpipe.storage import url_problem

        for key in ("train", "eval"):
            spec = getattr(d, key)
            problem = url_problem(spec, f"data.{key}")
            if problem:
                problems.append(problem)
            elif spec:
                try:
                    expand_urls(spec, d.storage_options)
                except SgpipeError as error:
                    problems.append(f"data.{key}: {error}")
                except OSError as error:  # credentials, endpoint, network
                    problems.append(f"data.{key}: cannot reach {spec!r}: {type(error).__name__}: {error}")
    for where, value, low in (
        ("data.batch_size", d.batch_size, 1),
        ("data.num_workers", d.num_workers, 0),
        ("data.shuffle_buffer", d.shuffle_buffer, 0),
        ("data.negative_predicates", d.negative_predicates, 0),
        ("data.negative_pairs", d.negative_pairs, 0),
        ("data.max_pairs", d.max_pairs, 1),
        ("optim.lr", o.lr, 0.0),
        ("optim.warmup_steps", o.warmup_steps, 0),
        ("optim.grad_accum", o.grad_accum, 1),
        ("optim.epochs", o.epochs, 1),
        ("optim.steps_per_epoch", o.steps_per_epoch, 0),
        ("optim.max_steps", o.max_steps, 0),
        ("optim.max_seconds", o.max_seconds, 0),
        ("run.log_every", r.log_every, 1),
        ("run.checkpoint_every", r.checkpoint_every, 0),
        ("run.keep_checkpoints", r.keep_checkpoints, 1),
        ("run.eval_every", r.eval_every, 0),
    ):
        _check_range(problems, where, value, low)
    _check_range(problems, "data.min_confidence", d.min_confidence, 0.0, 1.0)
    if d.max_negative_confidence >= d.min_confidence:
        problems.append("data.max_negative_confidence must be below data.min_confidence")
    _check_range(problems, "run.keep_threshold", r.keep_threshold, 0.0, 1.0)
    for where, value, choices in (
        ("run.device", r.device, ("auto", "cpu", "cuda")),
        ("run.dtype", r.dtype, ("auto", "float32", "bfloat16")),
    ):
        if value not in choices:
            problems.append(f"{where}: {value!r} is not valid. {_choices(choices)}")
    if not r.out:
        problems.append("run.out: required")


def load_train_config(
    path: str | Path | None, overrides: typing.Sequence[str] = (), check_paths: bool = True
) -> TrainConfig:
    """Build and validate; one ConfigError lists every problem. Relative paths in a recipe are
    relative to the recipe file when they exist there."""
    problems: list[str] = []
    config = build_sections(TrainConfig, read_recipe(path, PATH_KEYS), overrides, problems)
    _validate(config, problems, check_paths)
    if problems:
        raise ConfigError(problems)
    return config


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
