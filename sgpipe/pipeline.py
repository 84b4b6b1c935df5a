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
    images = source.images if source.kind != "webdataset" else ""  # tars carry their images
    return DecodeStage(
        location(images, source.storage_options) if images else None,
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


def _parse_sng(config: PipelineConfig, categories: list[str]) -> Stage:
    from sgpipe.stages.parse_sng import SngParseStage

    return SngParseStage(config.parse)


def _detect(config: PipelineConfig, categories: list[str]) -> Stage:
    from sgpipe.stages.detect import DetectStage

    return DetectStage(config.detect, device=config.run.device)


def _tag(config: PipelineConfig, categories: list[str]) -> Stage:
    from sgpipe.stages.tag import TagStage

    if config.detect.enabled:  # the phrases always asked about ground like category names
        from sgpipe.stages.detect import query_vocabulary

        categories = list(dict.fromkeys(categories + query_vocabulary(config.detect.vocabulary)))
    return TagStage(config.tag, categories)


def _tag_rlipv2(config: PipelineConfig, categories: list[str]) -> Stage:
    from sgpipe.stages.tag_rlipv2 import RLIPv2TagStage

    return RLIPv2TagStage(config.tag)


def _verify(config: PipelineConfig, categories: list[str]) -> Stage:
    from sgpipe.stages.verify import VerifyStage

    return VerifyStage(config.verify, device=config.run.device, vocabulary=config.tag.vocabulary)


def _spacy(config: PipelineConfig) -> ModelRef:
    return ModelRef("spacy", "parse.spacy_model", config.parse.spacy_model, "spacy")


def _without(section: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in keys}


def _at_default(section: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`section` without the keys that hold their default: keys added after the first recipes, so
    the hashes of recipes that never set them stay as they were."""
    return {k: v for k, v in section.items() if not (k in defaults and v == defaults[k])}


def _file_md5(path: str) -> str:
    """A file that decides the shards counts by its bytes, not its name (as the exclude file)."""
    import hashlib

    from sgpipe.storage import location

    try:
        return hashlib.md5(location(path).read_bytes()).hexdigest()
    except OSError:
        return path


def _caption_hashed(config: PipelineConfig, section: dict[str, Any]) -> dict[str, Any]:
    # the engine counts only when captions are made, and `transformers` hashes as before engines
    return _without(section, "engine") if not section["enabled"] or section["engine"] == "transformers" else section


def _detect_hashed(config: PipelineConfig, section: dict[str, Any]) -> dict[str, Any] | None:
    from sgpipe.config import DETECT_VOCABULARIES

    if not section["enabled"]:
        return None
    if section["vocabulary"] not in DETECT_VOCABULARIES:
        return {**section, "vocabulary": _file_md5(section["vocabulary"])}
    return section


def _tag_hashed(config: PipelineConfig, section: dict[str, Any]) -> dict[str, Any]:
    from sgpipe.vocab.rlipv2 import is_table_file

    section = _at_default(section, {"matching": "lexicon"})
    if is_table_file(section["vocabulary"]):  # the table decides the candidates, not the file's name
        section = {**section, "vocabulary": _file_md5(section["vocabulary"])}
    return section


def _detect_models(config: PipelineConfig) -> list[ModelRef]:
    return [ModelRef("detector", "detect", config.detect.model, "transformers")]


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
        hashed=_caption_hashed,
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
        "parse",
        "parse",
        lambda c: c.parse.backend == "sng",
        _parse_sng,
        models=lambda c: [ModelRef("sng", "parse", "sng_parser", "sng"), _spacy(c)],
        hashed=lambda c, s: _without(s, *SEQ2SEQ_PARSE_KEYS),
        label="SceneGraphParser",
    ),
    StageSpec(
        "detect",
        "detect",
        lambda c: c.detect.enabled,
        _detect,
        Resources(cpus=1.0, gpus=1.0),
        models=_detect_models,
        batch=lambda c: c.detect.batch_size,
        hashed=_detect_hashed,  # a run without it hashes as before the stage existed
        label="the detect stage",
    ),
    StageSpec(
        "tag",
        "tag",
        lambda c: c.tag.matching == "lexicon",
        _tag,
        models=lambda c: [ModelRef("embedding", "text embedding", c.tag.embedding_model, "embedding")],
        hashed=_tag_hashed,
    ),
    StageSpec("tag", "tag", lambda c: c.tag.matching == "rlipv2", _tag_rlipv2, hashed=_tag_hashed),
    StageSpec(
        "verify",
        "verify",
        lambda c: c.verify.enabled,
        _verify,
        Resources(cpus=1.0, gpus=1.0),
        models=lambda c: [ModelRef("verifier", "verifier", c.verify.checkpoint, "checkpoint")],
        batch=lambda c: c.verify.batch_size,
        # the defaults of keys added later leave the hash as it was before they existed
        hashed=lambda c, s: _at_default(s, {"assignment": "candidates", "texts": "image"}),
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


def device_stage_names(config: PipelineConfig, names: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The model stages (a GPU declared) of those the run executes (`names`; None: the recipe's): the
    device actors' work in the pools layout."""
    return tuple(s.name for s in enabled_specs(config, names) if s.on_device)


def worker_resources(config: PipelineConfig) -> Resources:
    """What one worker running every stage one after another needs: the most any of them declares."""
    specs = enabled_specs(config)
    return Resources(
        cpus=max((s.resources.cpus for s in specs), default=1.0),
        gpus=max((s.resources.gpus for s in specs), default=0.0),
    )
