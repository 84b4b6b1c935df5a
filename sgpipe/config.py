"""YAML recipe -> typed config, with `key=value` overrides and validate-all.

Every problem is collected and reported in one `ConfigError` before any work starts: unknown
keys (with the valid choices), wrong types, out-of-range values, missing files.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sgpipe.errors import ConfigError
from sgpipe.records import DATASET_NAME_PATTERN

DEFAULT_CAPTION_MODEL = "Salesforce/blip-image-captioning-large"


@dataclass
class SourceConfig:
    name: str = "coco"
    instances: str = ""  # COCO-format instances JSON
    images: str = ""  # folder that file_name is resolved under
    captions: str = ""  # optional COCO captions JSON
    limit: int = 0  # 0 = every image
    index: str = "auto"  # auto | pycocotools | stream
    stream_threshold_mb: int = 512  # auto: stream-index files larger than this
    max_pixels: int = 89_478_485  # decompression-bomb guard (PIL's default limit)


@dataclass
class CaptionConfig:
    enabled: bool = False
    model: str = DEFAULT_CAPTION_MODEL
    captions_per_image: int = 10
    batch_size: int = 16
    prompt: str = "a picture of "
    decoding: str = "sample"  # sample | beam
    top_p: float = 0.9
    max_length: int = 20
    min_length: int = 5
    repetition_penalty: float = 1.1
    num_beams: int = 3
    image_size: int = 384
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    trust_remote_code: bool = False


@dataclass
class ParseConfig:
    spacy_model: str = "en_core_web_sm"
    batch_size: int = 256


@dataclass
class TagConfig:
    max_pairs_per_triplet: int = 8
    min_box_area: float = 16.0
    include_crowd: bool = False
    vocabulary: str = "auto"  # auto | coco | objects365 | none
    embedding_model: str = "minilm"  # "minilm" (shipped offline), a hub id, a folder, or "none"
    embedding_threshold: float = 0.65  # at 0.55 about half the fallback matches on COCO captions were wrong


@dataclass
class VerifyConfig:
    enabled: bool = False
    checkpoint: str = ""
    store_threshold: float = 0.05
    keep_threshold: float = 0.20
    batch_size: int = 8
    dtype: str = "auto"


@dataclass
class OutputConfig:
    dir: str = "out"
    samples_per_shard: int = 1000
    images: bool = True


@dataclass
class RunConfig:
    address: str = ""  # empty: RAY_ADDRESS, else a local Ray started in-process
    workers: int = 0  # 0: one per CPU (capped by the number of shards)
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    max_error_rate: float = 0.25  # a wrong images folder fails ~100%; real datasets a fraction of 1%
    min_samples_for_error_rate: int = 100
    shard_attempts: int = 3  # attempts per shard, counted by the driver: worker deaths, timeouts, errors
    # a shard running longer is abandoned and its worker replaced; 0: derived from the shards done
    # (5x the slowest, at least 300 s; 1800 s while none is done, as first shards load the models)
    shard_timeout_s: float = 0.0
    placement_timeout_s: float = 300.0  # a worker not started by then is dropped; its shard goes to others
    decode_threads: int = 4
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class PipelineConfig:
    source: SourceConfig = field(default_factory=SourceConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    parse: ParseConfig = field(default_factory=ParseConfig)
    tag: TagConfig = field(default_factory=TagConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def content_hash(self) -> str:
        """Hash of what decides the shards' content; run-placement keys (address, workers) excluded."""
        content = self.to_dict()
        scheduling = ("shard_attempts", "shard_timeout_s", "placement_timeout_s")
        placement = ("address", "workers", "gpus_per_worker", "cpus_per_worker", "decode_threads", "device")
        for key in placement + scheduling:
            content["run"].pop(key)
        content["output"].pop("dir")
        blob = json.dumps(content, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


SECTIONS: dict[str, type] = {f.name: f.type for f in dataclasses.fields(PipelineConfig)}
SECTIONS = {name: typing.get_type_hints(PipelineConfig)[name] for name in SECTIONS}


def _choices(names: typing.Iterable[str]) -> str:
    return "Choose from: " + ", ".join(sorted(names))


def _coerce(value: Any, kind: Any, where: str, problems: list[str]) -> Any:
    """Check `value` against the annotated type; strings from `--set` are parsed as YAML first."""
    if kind is dict:
        if isinstance(value, dict):
            return dict(value)
        problems.append(f"{where}: expected a mapping, got {value!r}")
        return None
    if kind is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
        except ValueError:
            pass
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
        if value is None:
            return ""
    problems.append(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    return None


def fill_sections(config: Any, raw: dict[str, Any], problems: list[str]) -> None:
    """Set `raw`'s `section: {key: value}` entries on the dataclass `config`, collecting every problem."""
    sections = typing.get_type_hints(type(config))
    for section_name, section_values in raw.items():
        if section_name not in sections:
            hint = difflib.get_close_matches(section_name, sections, n=1)
            problems.append(
                f"unknown section {section_name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f". {_choices(sections)}"
            )
            continue
        if section_values is None:
            continue
        if not isinstance(section_values, dict):
            problems.append(f"{section_name}: expected a mapping of keys, got {section_values!r}")
            continue
        section = getattr(config, section_name)
        hints = typing.get_type_hints(type(section))
        for key, value in section_values.items():
            where = f"{section_name}.{key}"
            if key not in hints:
                hint = difflib.get_close_matches(key, hints, n=1)
                problems.append(
                    f"unknown key {where!r}"
                    + (f" (did you mean '{section_name}.{hint[0]}'?)" if hint else "")
                    + f". {_choices(hints)}"
                )
                continue
            coerced = _coerce(value, hints[key], where, problems)
            if coerced is not None:
                setattr(section, key, coerced)


def _build(raw: dict[str, Any], problems: list[str]) -> PipelineConfig:
    config = PipelineConfig()
    fill_sections(config, raw, problems)
    return config


def _check_choice(problems: list[str], where: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        problems.append(f"{where}: {value!r} is not valid. {_choices(choices)}")


def _check_range(
    problems: list[str], where: str, value: float, low: float, high: float | None = None
) -> None:
    if value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        problems.append(f"{where}: {value} must be {span}")


def _validate(config: PipelineConfig, problems: list[str], check_paths: bool) -> None:
    src, cap, tag, ver, out, run = (
        config.source,
        config.caption,
        config.tag,
        config.verify,
        config.output,
        config.run,
    )
    if not DATASET_NAME_PATTERN.match(src.name or ""):
        problems.append(f"source.name: {src.name!r} may hold letters, digits and '_' only")
    _check_choice(problems, "source.index", src.index, ("auto", "pycocotools", "stream"))
    _check_range(problems, "source.limit", src.limit, 0)
    _check_range(problems, "source.max_pixels", src.max_pixels, 1)
    if not src.instances:
        problems.append("source.instances: required (a COCO-format instances JSON)")
    if not src.images:
        problems.append("source.images: required (the folder that file_name is resolved under)")
    if check_paths:
        if src.instances and not Path(src.instances).is_file():
            problems.append(f"source.instances: no such file {src.instances!r}")
        if src.images and not Path(src.images).is_dir():
            problems.append(f"source.images: no such folder {src.images!r}")
        if src.captions and not Path(src.captions).is_file():
            problems.append(f"source.captions: no such file {src.captions!r}")
    if not cap.enabled and not src.captions:
        problems.append(
            "caption: with caption.enabled false, source.captions must name a COCO captions JSON "
            "(otherwise images have no captions to parse)"
        )
    _check_choice(problems, "caption.decoding", cap.decoding, ("sample", "beam"))
    _check_choice(problems, "caption.dtype", cap.dtype, ("auto", "float32", "bfloat16", "float16"))
    _check_range(problems, "caption.captions_per_image", cap.captions_per_image, 1)
    _check_range(problems, "caption.batch_size", cap.batch_size, 1)
    _check_range(problems, "caption.top_p", cap.top_p, 0.0, 1.0)
    _check_range(problems, "caption.min_length", cap.min_length, 0)
    if cap.max_length <= cap.min_length:
        problems.append(
            f"caption.max_length: {cap.max_length} must exceed caption.min_length {cap.min_length}"
        )
    _check_range(problems, "parse.batch_size", config.parse.batch_size, 1)
    _check_range(problems, "tag.max_pairs_per_triplet", tag.max_pairs_per_triplet, 1)
    _check_range(problems, "tag.min_box_area", tag.min_box_area, 0)
    _check_choice(problems, "tag.vocabulary", tag.vocabulary, ("auto", "coco", "objects365", "none"))
    _check_range(problems, "tag.embedding_threshold", tag.embedding_threshold, 0.0, 1.0)
    _check_range(problems, "verify.store_threshold", ver.store_threshold, 0.0, 1.0)
    _check_range(problems, "verify.keep_threshold", ver.keep_threshold, 0.0, 1.0)
    if ver.keep_threshold < ver.store_threshold:
        problems.append(
            f"verify.keep_threshold {ver.keep_threshold} is below "
            f"verify.store_threshold {ver.store_threshold}: "
            "relations are kept only among those stored"
        )
    _check_choice(problems, "verify.dtype", ver.dtype, ("auto", "float32", "bfloat16", "float16"))
    if ver.enabled and check_paths and not _is_checkpoint(ver.checkpoint):
        problems.append(
            f"verify.checkpoint: {ver.checkpoint!r} is not a verifier checkpoint folder (config.json + "
            "model.safetensors). Train one: `sgpipe convert vg --images VG/images --scene-graphs "
            "VG/scene_graphs.json --out vg-shards` then `sgpipe train pipelines/train_base.yaml --set "
            "data.train=vg-shards` (offline: `sgpipe synth`, `sgpipe convert synth` and "
            "pipelines/train_small.yaml), and pass its OUT/final folder; "
            "or run with --set verify.enabled=false to write unverified candidates"
        )
    if not out.dir:
        problems.append("output.dir: required")
    _check_range(problems, "output.samples_per_shard", out.samples_per_shard, 1)
    _check_range(problems, "run.workers", run.workers, 0)
    _check_range(problems, "run.gpus_per_worker", run.gpus_per_worker, 0)
    _check_range(problems, "run.cpus_per_worker", run.cpus_per_worker, 0)
    _check_range(problems, "run.max_error_rate", run.max_error_rate, 0.0, 1.0)
    _check_range(problems, "run.decode_threads", run.decode_threads, 1)
    _check_range(problems, "run.shard_attempts", run.shard_attempts, 1)
    _check_range(problems, "run.shard_timeout_s", run.shard_timeout_s, 0)
    _check_range(problems, "run.placement_timeout_s", run.placement_timeout_s, 1)
    _check_choice(problems, "run.device", run.device, ("auto", "cpu", "cuda"))


def _is_checkpoint(path: str) -> bool:
    folder = Path(path) if path else None
    return bool(folder and (folder / "config.json").is_file() and (folder / "model.safetensors").is_file())


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError([f"override {text!r}: expected section.key=value"])
    key, _, value = text.partition("=")
    parsed = yaml.safe_load(value) if value.strip() else ""
    return key.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: typing.Sequence[str], problems: list[str]) -> None:
    for text in overrides:
        try:
            path, value = parse_override(text)
        except ConfigError as error:
            problems.extend(error.problems)
            continue
        if len(path) != 2:
            problems.append(f"override {text!r}: keys have the form section.key")
            continue
        section = raw.setdefault(path[0], {})
        if not isinstance(section, dict):
            problems.append(f"override {text!r}: {path[0]} is not a section")
            continue
        # a key that wants a string keeps the text as typed ("00001" stays "00001", not 1)
        section[path[1]] = text.partition("=")[2] if _wants_str(path) else value


def _wants_str(path: list[str]) -> bool:
    section_type = SECTIONS.get(path[0])
    if section_type is None:
        return False
    return typing.get_type_hints(section_type).get(path[1]) is str


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Relative paths in a recipe are relative to the recipe file, as users expect."""
    for section, key in (
        ("source", "instances"),
        ("source", "images"),
        ("source", "captions"),
        ("verify", "checkpoint"),
    ):
        value = (raw.get(section) or {}).get(key)
        if (
            isinstance(value, str)
            and value
            and not os.path.isabs(value)
            and not value.startswith(("s3:", "gs:"))
        ):
            candidate = base / value
            if candidate.exists():
                raw[section][key] = str(candidate)


def load_raw(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError([f"cannot read config {str(path)!r}: {error.strerror}"]) from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError([f"{path}: not valid YAML: {error}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping of sections at the top level"])
    return raw


def build_config(
    raw: dict[str, Any], overrides: typing.Sequence[str] = (), check_paths: bool = True
) -> PipelineConfig:
    """Build and validate; raises one ConfigError listing every problem."""
    raw = json.loads(json.dumps(raw))  # a private deep copy
    problems: list[str] = []
    apply_overrides(raw, overrides, problems)
    config = _build(raw, problems)
    _validate(config, problems, check_paths)
    if problems:
        raise ConfigError(problems)
    return config


def load_config(
    path: str | Path | None, overrides: typing.Sequence[str] = (), check_paths: bool = True
) -> PipelineConfig:
    raw = load_raw(path) if path else {}
    if path:
        _resolve_paths(raw, Path(path).resolve().parent)
    return build_config(raw, overrides, check_paths)
