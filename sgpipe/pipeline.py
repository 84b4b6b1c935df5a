"""The table of stages: what a recipe runs, in order, and everything the run needs to know about it.

Each entry says its name, when the recipe enables it, how it is built, which models it loads and the
resources one copy needs. Everything that asks "which stages, which models" reads this table: the
shard processor (`build_stages`), the chunk size, the dry-run plan, preflight, run.json's models, the
time estimate, the config hash (`hashed`) and the Ray executor, which sizes its actors by the
declared resources (a stage declaring a GPU is a model stage: on the device actors in the pools
layout). Adding a stage is one entry; builds import lazily, so a worker loads only what it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sgpipe.config import SEQ2SEQ_PARSE_KEYS, PipelineConfig
from sgpipe.stages.base import Resources, Stage

CHUNK_SIZE = 64  # images decoded and held at once: bounds memory, fixes batch composition


@dataclass(frozen=True)
class ModelRef:
    """A model a stage loads, as run.json records it (`key`: `id`) and preflight checks it."""

    key: str  # its name in run.json's `models`: "captioner", "verifier", ...
    role: str  # how problems name it: "caption", "text embedding", ...
    id: str  # hub id or folder, as configured
    kind: str  # how preflight checks it: "transformers" | "checkpoint" | "spacy" | "embedding"


def _no_models(config: PipelineConfig) -> list[ModelRef]:
    return []


def _whole_section(config: PipelineConfig, section: dict[str, Any]) -> dict[str, Any] | None:
    return section


def only_when_enabled(config: PipelineConfig, section: dict[str, Any]) -> dict[str, Any] | None:
    """The hash rule for a stage added later: its section counts only when it runs, so the hashes of
    recipes written before it existed stay the same."""
    return section if section.get("enabled") else None


@dataclass(frozen=True)
class StageSpec:
    name: str  # the stage's name (`Stage.name`): timings, batch splits, provenance
    section: str  # the config section it reads ("" for none of its own)
    enabled: Callable[[PipelineConfig], bool]
    build: Callable[[PipelineConfig, list[str]], Stage]  # (config, category names) -> a stage, not set up
    resources: Resources = Resources()  # one copy's needs; gpus > 0: a model stage (a device's work)
    models: Callable[[PipelineConfig], list[ModelRef]] = _no_models
    batch: Callable[[PipelineConfig], int] | None = None  # a model batch that a chunk must hold whole
    hashed: Callable[[PipelineConfig, dict[str, Any]], dict[str, Any] | None] = _whole_section
    label: str = ""  # how the estimate names it ("the seq2seq parser"); default: its name
    concurrent: bool = True  # a device actor may run two chunks through it at once (no per-call state)

    @property
    def on_device(self) -> bool:
        return self.resources.gpus > 0


def _decode(config: PipelineConfig, categories: list[str]) -> Stage:
    from sgpipe.source.decode import DecodeStage
    from sgpipe.storage import location

    source = config.source
    return DecodeStage(
        location(source.images, source.storage_options),
        source.max_pixels,
        config.run.decode_threads,
        keep_bytes=config.output.images,
    )


def _caption(config: PipelineConfig, categories: list[str]) -> Stage:
    from sgpipe.stages.caption import CaptionStage

    return CaptionStage(config.caption, device=config.run.device, seed=config.run.seed)


def _parse_rules(config: PipelineConfig, categories: list[str]) -> Stage:
    from sgpipe.stages.parse import ParseStage

    return ParseStage(config.parse)


def _parse_seq2seq(config: PipelineConfig, categories: list[str]) -> Stage:
    from sgpipe.stages.parse_seq2seq import Seq2SeqParseStage

    return Seq2SeqParseStage(config.parse, device=config.run.device)


def _tag(config: PipelineConfig, categories: list[str]) -> Stage:
    from sgpipe.stages.tag import TagStage

    return TagStage(config.tag, categories)


def _verify(config: PipelineConfig, categories: list[str]) -> Stage:
    from sgpipe.stages.verify import VerifyStage

    return VerifyStage(config.verify, device=config.run.device)


def _spacy(config: PipelineConfig) -> ModelRef:
    return ModelRef("spacy", "parse.spacy_model", config.parse.spacy_model, "spacy")


def _without(section: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in keys}


STAGES: tuple[StageSpec, ...] = (
    StageSpec("decode", "", lambda c: True, _decode),
    StageSpec(
        "caption",
        "caption",
        lambda c: c.caption.enabled,
        _caption,
        Resources(cpus=1.0, gpus=1.0),
        models=lambda c: [ModelRef("captioner", "caption", c.caption.model, "transformers")],
        batch=lambda c: c.caption.batch_size,
    ),
    StageSpec(
        "parse",
        "parse",
        lambda c: c.parse.backend == "rules",
        _parse_rules,
        models=lambda c: [_spacy(c)],
        # the learned parser's keys matter only when it runs: the rules' hash stays as it was
        hashed=lambda c, s: _without(s, "backend", *SEQ2SEQ_PARSE_KEYS),
    ),
    StageSpec(
        "parse",
        "parse",
        lambda c: c.parse.backend == "seq2seq",
        _parse_seq2seq,
        Resources(cpus=1.0, gpus=1.0),
        models=lambda c: [ModelRef("parser", "parse", c.parse.model, "transformers"), _spacy(c)],
        label="the seq2seq parser",
        concurrent=False,  # its spaCy resolver is not shared between threads
    ),
    StageSpec(
        "tag",
        "tag",
        lambda c: True,
        _tag,
        models=lambda c: [ModelRef("embedding", "text embedding", c.tag.embedding_model, "embedding")],
    ),
    StageSpec(
        "verify",
        "verify",
        lambda c: c.verify.enabled,
        _verify,
        Resources(cpus=1.0, gpus=1.0),
        models=lambda c: [ModelRef("verifier", "verifier", c.verify.checkpoint, "checkpoint")],
        batch=lambda c: c.verify.batch_size,
        # the default assignment leaves the hash as it was before the key existed
        hashed=lambda c, s: _without(s, "assignment") if s["assignment"] == "candidates" else s,
    ),
)


def enabled_specs(config: PipelineConfig, names: tuple[str, ...] | None = None) -> list[StageSpec]:
    """The recipe's stages in order (only those named in `names`, when given)."""
    return [s for s in STAGES if s.enabled(config) and (names is None or s.name in names)]


def build_stages(
    config: PipelineConfig, categories: list[str], names: tuple[str, ...] | None = None
) -> list[Stage]:
    """The recipe's stages in order, built but not set up (cheap: no model loads). Each carries
    the resources its table entry declares."""
    stages = []
    for spec in enabled_specs(config, names):
        stage = spec.build(config, list(categories))
        stage.resources = spec.resources
        stages.append(stage)
    return stages


def recipe_models(config: PipelineConfig, names: tuple[str, ...] | None = None) -> list[ModelRef]:
    """Every model the recipe's stages load, in stage order."""
    return [model for spec in enabled_specs(config, names) for model in spec.models(config)]


def chunk_size(config: PipelineConfig) -> int:
    """Images per chunk: at least `CHUNK_SIZE`, and never fewer than a model stage's batch, or the
    GPU would only ever see chunk-sized batches (larger caption batches run faster: docs/BENCHMARKS.md)."""
    return max([CHUNK_SIZE] + [s.batch(config) for s in enabled_specs(config) if s.batch is not None])


def device_stage_names(config: PipelineConfig) -> tuple[str, ...]:
    """The model stages (a GPU declared): the device actors' work in the pools layout."""
    return tuple(s.name for s in enabled_specs(config) if s.on_device)


def worker_resources(config: PipelineConfig) -> Resources:
    """What one worker running every stage one after another needs: the most any of them declares."""
    specs = enabled_specs(config)
    return Resources(
        cpus=max((s.resources.cpus for s in specs), default=1.0),
        gpus=max((s.resources.gpus for s in specs), default=0.0),
    )
