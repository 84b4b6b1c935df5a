"""YAML recipe -> typed config, with `key=value` overrides and validate-all.

Every problem is collected and reported in one `ConfigError` before any work starts: unknown
keys (with the valid choices), wrong types, out-of-range values, missing files. A field's valid
choices or range live on the field itself (`option(default, choices=...)`, `option(default, low=...)`);
`_validate` checks every field from them, then the rules that involve several fields or the disk.
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
from typing import Any, TypeVar

import yaml

from sgpipe.errors import ConfigError, SourceError
from sgpipe.leakage.exclude import load_exclusions
from sgpipe.models.checkpoint import is_checkpoint, not_a_checkpoint
from sgpipe.records import DATASET_NAME_PATTERN
from sgpipe.source.kinds import kind_problems, tar_problems
from sgpipe.storage import location, protocol_of, url_problem
from sgpipe.vocab.rlipv2 import VOCABULARIES as RLIPV2_TABLES
from sgpipe.vocab.rlipv2 import is_table_file, rlipv2_categories

C = TypeVar("C")

DEFAULT_CAPTION_MODEL = "Salesforce/blip-image-captioning-large"
DEFAULT_DETECT_MODEL = "IDEA-Research/grounding-dino-tiny"
DTYPES = ("auto", "float32", "bfloat16", "float16")
SOURCE_KINDS = ("coco", "webdataset", "folder")
DETECT_VOCABULARIES = ("none", "coco", "objects365")  # or a file: one name per line
TAG_VOCABULARIES = ("auto", "coco", "objects365", "none")  # or, for RLIPv2's matching, a paraphrase file


def option(
    default: Any, *, choices: tuple[str, ...] = (), low: float | None = None, high: float | None = None
) -> Any:
    """A config field that carries its valid values: one of `choices`, or within [low, high]
    (either end may be open). `_validate` checks every field that has them."""
    return field(default=default, metadata={"choices": choices, "range": (low, high)})


@dataclass
class SourceConfig:
    # coco: an instances JSON with boxes; webdataset: img2dataset-style tars; folder: image files
    kind: str = option("coco", choices=SOURCE_KINDS)
    name: str = "coco"
    instances: str = ""  # COCO-format instances JSON (a path or an fsspec URL, like the next two)
    images: str = ""  # folder that file_name is resolved under
    captions: str = ""  # optional COCO captions JSON
    storage_options: dict = field(default_factory=dict)  # fsspec options for the URLs of this section
    limit: int = option(0, low=0)  # 0 = every image
    index: str = option("auto", choices=("auto", "pycocotools", "stream"))
    stream_threshold_mb: int = 512  # auto: stream-index files larger than this
    max_pixels: int = option(89_478_485, low=1)  # decompression-bomb guard (PIL's default limit)
    # JSON list of images to leave out (`sgpipe leakage --out`; a path or a URL); status `excluded`
    exclude: str = ""
    # webdataset: tar URLs (brace patterns, or a folder holding them), one output shard per tar
    shards: list = field(default_factory=list)


@dataclass
class CaptionConfig:
    enabled: bool = False
    model: str = DEFAULT_CAPTION_MODEL
    captions_per_image: int = option(10, low=1)
    batch_size: int = option(16, low=1)
    prompt: str = "a picture of "
    decoding: str = option("sample", choices=("sample", "beam"))
    top_p: float = option(0.9, low=0.0, high=1.0)
    max_length: int = 20
    min_length: int = option(5, low=0)
    repetition_penalty: float = 1.1
    num_beams: int = 3
    image_size: int = 384
    dtype: str = option("auto", choices=DTYPES)
    trust_remote_code: bool = False
    # fast: sgpipe's BLIP decoder (same captions, float32 token for token); transformers: its generate
    engine: str = option("fast", choices=("fast", "transformers"))


@dataclass
class ParseConfig:
    spacy_model: str = "en_core_web_sm"
    batch_size: int = option(256, low=1)
    # sng: SceneGraphParser as RLIPv2 called it (pip install 'sgpipe[rlipv2]')
    backend: str = option("rules", choices=("rules", "seq2seq", "sng"))
    # seq2seq only: a text2text model writing FACTUAL-style graphs (lizhuang144/flan-t5-base-VG-factual-sg)
    model: str = ""
    prompt: str = "Generate Scene Graph: "
    num_beams: int = option(1, low=1)  # 1: greedy
    max_new_tokens: int = option(128, low=1)
    dtype: str = option("auto", choices=DTYPES)


SEQ2SEQ_PARSE_KEYS = ("model", "prompt", "num_beams", "max_new_tokens", "dtype")


@dataclass
class DetectConfig:
    """Open-vocabulary boxes for the phrases of each image's triplets (any transformers zero-shot
    object detection model: Grounding DINO, OWLv2, OWL-ViT)."""

    enabled: bool = False
    model: str = DEFAULT_DETECT_MODEL
    box_threshold: float = option(0.35, low=0.0, high=1.0)  # a box's best phrase reaches it
    text_threshold: float = option(0.25, low=0.0, high=1.0)  # a phrase that reaches it found the box
    max_boxes: int = option(50, low=1)  # per image, best scores first
    nms_iou: float = option(0.5, low=0.0, high=1.0)  # per phrase; 1.0 keeps overlapping boxes
    vocabulary: str = "none"  # none | coco | objects365 | a file: names always queried
    batch_size: int = option(8, low=1)
    dtype: str = option("auto", choices=DTYPES)


@dataclass
class TagConfig:
    max_pairs_per_triplet: int = option(8, low=1)
    min_box_area: float = option(16.0, low=0)
    include_crowd: bool = False
    # lexicon matching: auto | coco | objects365 | none; RLIPv2's matching: its coco or objects365 table, or a
    # JSON paraphrase file of one's own (category name -> paraphrases, ids 1..N in the file's order)
    vocabulary: str = "auto"
    embedding_model: str = "minilm"  # "minilm" (shipped offline), a hub id, a folder, or "none"
    # at 0.55 about half the fallback matches on COCO captions were wrong
    embedding_threshold: float = option(0.65, low=0.0, high=1.0)
    # rlipv2: RLIPv2's paraphrase substring matching and every ordered pair of matching boxes
    # (needs vocabulary coco or objects365, RLIPv2's category tables, or a paraphrase file)
    matching: str = option("lexicon", choices=("lexicon", "rlipv2"))


@dataclass
class VerifyConfig:
    enabled: bool = False
    checkpoint: str = ""
    store_threshold: float = option(0.05, low=0.0, high=1.0)
    keep_threshold: float = option(0.20, low=0.0, high=1.0)
    batch_size: int = option(8, low=1)
    dtype: str = option("auto", choices=DTYPES)
    # candidates: the pairs grounding proposed; all_pairs: RLIPv2's every candidate pair x every predicate
    assignment: str = option("candidates", choices=("candidates", "all_pairs"))
    # image: one text list per image; rlipv2: RLIPv2's groups of pairs, texts merged over up to 16
    # groups, every pair x text cell stored above store_threshold (strictly), the best of duplicates
    texts: str = option("image", choices=("image", "rlipv2"))


@dataclass
class OutputConfig:
    dir: str = "out"  # a path or an fsspec URL (s3://bucket/out)
    samples_per_shard: int = option(1000, low=1)
    images: bool = True
    storage_options: dict = field(default_factory=dict)  # fsspec options for a URL dir (endpoint_url...)
    lease_seconds: float = option(60.0, low=3)  # remote dir: a killed run's lease lapses after this


@dataclass
class RunConfig:
    address: str = ""  # empty: RAY_ADDRESS, else a local Ray started in-process
    workers: int = option(0, low=0)  # 0: one per CPU (capped by the number of shards)
    gpus_per_worker: float = option(0.0, low=0)
    cpus_per_worker: float = option(1.0, low=0)
    # a wrong images folder fails ~100%; real datasets a fraction of 1%
    max_error_rate: float = option(0.25, low=0.0, high=1.0)
    min_samples_for_error_rate: int = 100
    # attempts per shard, counted by the driver: worker deaths, timeouts, errors
    shard_attempts: int = option(3, low=1)
    # a shard running longer is abandoned and its worker replaced; 0: derived from the shards done
    # (5x the slowest, at least 300 s; 1800 s while none is done, as first shards load the models)
    shard_timeout_s: float = option(0.0, low=0)
    # a worker not started by then is dropped; its shard goes to others
    placement_timeout_s: float = option(300.0, low=1)
    decode_threads: int = option(4, low=1)
    seed: int = 0
    device: str = option("auto", choices=("auto", "cpu", "cuda"))


@dataclass
class PipelineConfig:
    source: SourceConfig = field(default_factory=SourceConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    parse: ParseConfig = field(default_factory=ParseConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    tag: TagConfig = field(default_factory=TagConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def content_hash(self) -> str:
        """Hash of the keys that decide the shards' bytes; location keys are left out (see
        `location_keys`), so a moved images mount or a different cluster resumes the same output."""
        content = self.to_dict()
        for section, key in location_keys(self):
            content[section].pop(key)
        _hash_exclude_file(content["source"], content["source"].pop("storage_options"))
        _hash_source_kind_and_detect(content, self.source.storage_options)
        if content["parse"]["backend"] != "seq2seq":  # the learned parser's keys matter only when it runs
            for key in SEQ2SEQ_PARSE_KEYS:
                content["parse"].pop(key)
        for section, key, default in DEFAULTS_OUTSIDE_HASH:  # defaults leave the hash as it was
            if content[section][key] == default:
                content[section].pop(key)
        caption = content["caption"]
        if not caption["enabled"] or caption["engine"] == "transformers":  # hashes as before engines
            caption.pop("engine")
        blob = json.dumps(content, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def locations(self) -> dict[str, Any]:
        """The location keys' values, `{"source.images": ..., ...}`: recorded in run.json, not hashed."""
        return {
            f"{section}.{key}": getattr(getattr(self, section), key) for section, key in location_keys(self)
        }


# Keys added after the first recipes: at their default they are not hashed, so older output folders resume.
DEFAULTS_OUTSIDE_HASH = (
    ("parse", "backend", "rules"),
    ("verify", "assignment", "candidates"),
    ("tag", "matching", "lexicon"),
    ("verify", "texts", "image"),
)


# Keys that say where things are or how the work is placed, never what the shards hold: the images
# folder (the bytes written are the files' own, whatever mount they are read from), the output folder,
# and every `run.*` key but `run.seed` (cluster address, workers, resources, error-rate stop, retries).
# The annotation and captions files stay hashed: their path stands for the dataset they hold.
CONTENT_RUN_KEYS = ("seed",)


def location_keys(config: PipelineConfig) -> list[tuple[str, str]]:
    run_keys = [("run", f.name) for f in dataclasses.fields(config.run) if f.name not in CONTENT_RUN_KEYS]
    output_keys = [("output", "dir"), ("output", "storage_options"), ("output", "lease_seconds")]
    return [("source", "images"), *output_keys, *run_keys]


def _hash_exclude_file(source: dict[str, Any], options: dict[str, Any]) -> None:
    """The excluded images decide the shards, not the file's name: hash its bytes (no key without one)."""
    path = source.pop("exclude")
    if path:
        try:
            source["exclude_md5"] = hashlib.md5(location(path, options).read_bytes()).hexdigest()
        except OSError:
            source["exclude_md5"] = path


def _hash_source_kind_and_detect(content: dict[str, Any], options: dict[str, Any]) -> None:
    """COCO sources and runs without the detect stage keep the hash they had before these keys
    existed; a vocabulary file (the detector's, or RLIPv2's matching's paraphrases) is hashed by its
    bytes, as the exclude file."""
    if content["source"]["kind"] == "coco":
        content["source"].pop("kind")
        content["source"].pop("shards")
    elif content["source"]["kind"] == "webdataset":  # one output shard per tar, whatever this says
        content["output"].pop("samples_per_shard")
    tag = content["tag"]
    if is_table_file(tag["vocabulary"]):  # the table decides the candidates, not the file's name
        try:
            tag["vocabulary"] = hashlib.md5(location(tag["vocabulary"]).read_bytes()).hexdigest()
        except OSError:
            pass
    detect = content.pop("detect")
    if detect["enabled"]:
        if detect["vocabulary"] not in DETECT_VOCABULARIES:
            try:
                detect["vocabulary"] = hashlib.md5(location(detect["vocabulary"]).read_bytes()).hexdigest()
            except OSError:
                pass
        content["detect"] = detect


def _choices(names: typing.Iterable[str]) -> str:
    return "Choose from: " + ", ".join(sorted(names))


def _coerce(value: Any, kind: Any, where: str, problems: list[str]) -> Any:
    """Check `value` against the annotated type; strings from `--set` are parsed as YAML first."""
    if kind is dict:
        if isinstance(value, dict):
            return dict(value)
        problems.append(f"{where}: expected a mapping, got {value!r}")
        return None
    if kind is list:  # a list of strings; one string is a list of one (tuples from Python too)
        items = [value] if isinstance(value, str) else value
        if isinstance(items, (list, tuple)) and all(isinstance(v, str) for v in items):
            return list(items)
        problems.append(f"{where}: expected a string or a list of strings, got {value!r}")
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


def _unknown(kind: str, name: str, known: typing.Iterable[str], section: str = "") -> str:
    """`unknown key 'run.wrkers' (did you mean 'run.workers'?). Choose from: ...`"""
    prefix = f"{section}." if section else ""
    hint = difflib.get_close_matches(name, list(known), n=1)
    return (
        f"unknown {kind} {prefix + name!r}"
        + (f" (did you mean {prefix + hint[0]!r}?)" if hint else "")
        + f". {_choices(known)}"
    )


def fill_sections(config: Any, raw: dict[str, Any], problems: list[str]) -> None:
    """Set `raw`'s `section: {key: value}` entries on the dataclass `config`, collecting every problem."""
    sections = typing.get_type_hints(type(config))
    for section_name, section_values in raw.items():
        if section_name not in sections:
            problems.append(_unknown("section", section_name, sections))
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
                problems.append(_unknown("key", key, hints, section_name))
                continue
            coerced = _coerce(value, hints[key], where, problems)
            if coerced is not None:
                setattr(section, key, coerced)


def build_sections(
    config_type: type[C], raw: dict[str, Any], overrides: typing.Sequence[str], problems: list[str]
) -> C:
    """A fresh `config_type` filled from a private copy of `raw` with `overrides` on top; every
    problem is collected in `problems` (shared by the pipeline and the training config)."""
    raw = json.loads(json.dumps(raw))
    apply_overrides(raw, overrides, problems, typing.get_type_hints(config_type))
    config = config_type()
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


def check_fields(section: Any, prefix: str, problems: list[str]) -> None:
    """Each field of the dataclass `section` against the choices and range declared on it."""
    for spec in dataclasses.fields(section):
        where, value = f"{prefix}.{spec.name}", getattr(section, spec.name)
        if spec.metadata.get("choices"):
            _check_choice(problems, where, value, spec.metadata["choices"])
        low, high = spec.metadata.get("range", (None, None))
        if low is not None:
            _check_range(problems, where, value, low, high)


def _validate(config: PipelineConfig, problems: list[str], check_paths: bool) -> None:
    """Every field's declared choices and range, then the rules across fields and on the disk."""
    for section in dataclasses.fields(config):
        check_fields(getattr(config, section.name), section.name, problems)
    _check_source(config, problems, check_paths)
    _check_caption_lengths(config.caption, problems)
    _check_parse(config.parse, problems)
    _check_detect(config.detect, problems, check_paths)
    _check_verify(config.verify, problems, check_paths)
    _check_rlipv2_flow(config, problems, check_paths)
    if not config.output.dir:
        problems.append("output.dir: required")


def _check_source(config: PipelineConfig, problems: list[str], check_paths: bool) -> None:
    src = config.source
    if not DATASET_NAME_PATTERN.fullmatch(src.name or ""):
        problems.append(f"source.name: {src.name!r} may hold letters, digits and '_' only")
    problems += kind_problems(src)
    bad_urls = _check_urls(config, problems)
    if check_paths:
        for key, kind in (("instances", "file"), ("images", "folder"), ("captions", "file")):
            if getattr(src, key) and f"source.{key}" not in bad_urls:
                _check_source_path(problems, f"source.{key}", getattr(src, key), kind, src.storage_options)
        if src.exclude and "source.exclude" not in bad_urls:
            _check_exclude_file(src, problems)
        if src.shards and "source.shards" not in bad_urls:
            problems += tar_problems(src)
    if src.kind == "coco" and not config.caption.enabled and not src.captions:
        problems.append(
            "caption: with caption.enabled false, source.captions must name a COCO captions JSON "
            "(otherwise images have no captions to parse)"
        )


def _check_detect(detect: DetectConfig, problems: list[str], check_paths: bool) -> None:
    if not detect.enabled:
        return
    if not detect.model:
        problems.append(
            f"detect.model: required with detect.enabled (a hub id or folder: {DEFAULT_DETECT_MODEL})"
        )
    vocabulary = detect.vocabulary
    if vocabulary not in DETECT_VOCABULARIES and check_paths and not location(vocabulary).is_file():
        problems.append(
            f"detect.vocabulary: {vocabulary!r} is neither a file (one name per line) nor one of "
            f"{', '.join(DETECT_VOCABULARIES)}"
        )


def _check_caption_lengths(cap: CaptionConfig, problems: list[str]) -> None:
    if cap.max_length <= cap.min_length:
        problems.append(
            f"caption.max_length: {cap.max_length} must exceed caption.min_length {cap.min_length}"
        )


def _check_parse(parse: ParseConfig, problems: list[str]) -> None:
    if parse.backend == "seq2seq" and not parse.model:
        problems.append(
            "parse.model: required with parse.backend seq2seq (a hub id or folder of a text2text model "
            "writing FACTUAL-style graphs, e.g. lizhuang144/flan-t5-base-VG-factual-sg)"
        )


def _check_verify(ver: VerifyConfig, problems: list[str], check_paths: bool) -> None:
    if ver.keep_threshold < ver.store_threshold:
        problems.append(
            f"verify.keep_threshold {ver.keep_threshold} is below "
            f"verify.store_threshold {ver.store_threshold}: "
            "relations are kept only among those stored"
        )
    if ver.enabled and check_paths and not is_checkpoint(ver.checkpoint):
        problems.append(
            not_a_checkpoint("verify.checkpoint", ver.checkpoint)
            + "; or run with --set verify.enabled=false to write unverified candidates"
        )


def _check_rlipv2_flow(config: PipelineConfig, problems: list[str], check_paths: bool) -> None:
    """RLIPv2's matching and its text batches read a category table: RLIPv2's COCO or Objects365 one, or a
    paraphrase file (its R-Tagger: preflight). Lexicon matching takes no paraphrase file."""
    vocabulary = config.tag.vocabulary
    chosen = (("tag.matching", config.tag.matching), ("verify.texts", config.verify.texts))
    rlipv2 = [where for where, value in chosen if value == "rlipv2"]
    if is_table_file(vocabulary):
        if not rlipv2:
            problems.append(
                f"tag.vocabulary: {vocabulary!r} is a paraphrase file, the table of tag.matching rlipv2; "
                f"with lexicon matching {_choices(TAG_VOCABULARIES)}"
            )
        elif check_paths:
            try:
                rlipv2_categories(vocabulary)
            except ValueError as error:
                problems.append(str(error))
        return
    if vocabulary not in TAG_VOCABULARIES and not rlipv2:
        problems.append(f"tag.vocabulary: {vocabulary!r} is not valid. {_choices(TAG_VOCABULARIES)}")
    what = {"tag.matching": "matched against its", "verify.texts": "reads its"}
    for where in rlipv2:
        if vocabulary not in RLIPV2_TABLES:
            problems.append(
                f"tag.vocabulary: {vocabulary!r} with {where} rlipv2; RLIPv2 {what[where]} COCO or "
                "Objects365 category table. Choose from: coco, objects365, or a JSON paraphrase file "
                "(name -> paraphrases)"
            )


def _check_urls(config: PipelineConfig, problems: list[str]) -> set[str]:
    """Unknown protocols and missing fsspec backends, named with the package to install."""
    bad = set()
    for where, url in (
        ("source.instances", config.source.instances),
        ("source.images", config.source.images),
        ("source.captions", config.source.captions),
        ("source.exclude", config.source.exclude),
        ("output.dir", config.output.dir),
        *(("source.shards", url) for url in config.source.shards),
    ):
        problem = url_problem(url, where)
        if problem:
            problems.append(problem)
            bad.add(where)
    return bad


def _check_source_path(
    problems: list[str], where: str, url: str, kind: str, options: dict, hint: str = ""
) -> bool:
    """Whether the file or folder `url` is there; a problem (ending with `hint`) when it is not."""
    path = location(url, options)
    if isinstance(path, Path):
        found = path.is_dir() if kind == "folder" else path.is_file()
    elif kind == "folder":  # an object store has no folders to check, and listing one is what we avoid
        return True
    else:
        try:
            found = path.is_file()
        except Exception as error:  # noqa: BLE001 - credentials, endpoint, network: all said the same way
            problems.append(f"{where}: cannot reach {url!r}: {type(error).__name__}: {error}")
            return False
    if not found:
        problems.append(f"{where}: no such {kind} {url!r}{hint}")
    return found


def _check_exclude_file(src: SourceConfig, problems: list[str]) -> None:
    """`source.exclude` is there and holds a list of image ids."""
    hint = " (write one with `sgpipe leakage`)"
    if _check_source_path(problems, "source.exclude", src.exclude, "file", src.storage_options, hint):
        try:
            load_exclusions(src.exclude, src.storage_options)
        except SourceError as error:
            problems.append(str(error))


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError([f"override {text!r}: expected section.key=value"])
    key, _, value = text.partition("=")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:  # not YAML ("{00000..00009}.tar", a path with a bracket): the text as typed
        parsed = value
    return key.strip().split("."), parsed


def apply_overrides(
    raw: dict[str, Any], overrides: typing.Sequence[str], problems: list[str], sections: dict[str, Any]
) -> None:
    """Set `section.key=value` overrides in `raw`; `section.key.name=value` sets one entry of a
    mapping-valued key (`model.options.d_model=96`). `sections`: section name -> its dataclass."""
    for text in overrides:
        try:
            path, value = parse_override(text)
        except ConfigError as error:
            problems.extend(error.problems)
            continue
        hints = typing.get_type_hints(sections[path[0]]) if path[0] in sections else {}
        kind = hints.get(path[1]) if len(path) > 1 else None
        if len(path) != 2 and not (len(path) == 3 and kind is dict):
            problems.append(f"override {text!r}: keys have the form section.key")
            continue
        section = raw.setdefault(path[0], {})
        if not isinstance(section, dict):
            problems.append(f"override {text!r}: {path[0]} is not a section")
            continue
        if len(path) == 3:
            mapping = section.setdefault(path[1], {})
            if not isinstance(mapping, dict):
                problems.append(f"override {text!r}: {path[0]}.{path[1]} is not a mapping")
                continue
            mapping[path[2]] = value
            continue
        # a key that wants a string keeps the text as typed ("00001" stays "00001", not 1), and so does
        # a list key given one item ("{00000..00009}.tar" is a brace pattern, not a YAML mapping)
        typed = text.partition("=")[2]
        as_typed = kind is str or (kind is list and not typed.lstrip().startswith("["))
        section[path[1]] = typed if as_typed else value


PATH_KEYS = (
    ("source", "instances"),
    ("source", "images"),
    ("source", "captions"),
    ("source", "exclude"),
    ("source", "shards"),
    ("verify", "checkpoint"),
    ("parse", "model"),
    ("detect", "model"),
    ("detect", "vocabulary"),
)


def resolve_paths(raw: dict[str, Any], base: Path, keys: typing.Iterable[tuple[str, str]]) -> None:
    """Relative paths in a recipe are relative to the recipe file, as users expect (when they exist
    there; object-store URLs are left alone)."""
    def resolved(value: Any) -> Any:
        if isinstance(value, str) and value and not os.path.isabs(value) and not protocol_of(value):
            candidate = base / value
            # a brace pattern resolves by its folder (`tars/{00000..00009}.tar`)
            if candidate.exists() or ("{" in value and candidate.parent.is_dir()):
                return str(candidate)
        return value

    for section, key in keys:
        values = raw.get(section)
        value = values.get(key) if isinstance(values, dict) else None
        if isinstance(value, list):
            values[key] = [resolved(item) for item in value]
        elif value is not None:
            values[key] = resolved(value)


def read_recipe(path: str | Path | None, path_keys: typing.Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A recipe's raw sections with its relative paths resolved; no recipe: no sections."""
    if not path:
        return {}
    raw = load_raw(path)
    resolve_paths(raw, Path(path).resolve().parent, path_keys)
    return raw


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
    problems: list[str] = []
    config = build_sections(PipelineConfig, raw, overrides, problems)
    _validate(config, problems, check_paths)
    if problems:
        raise ConfigError(problems)
    return config


def load_config(
    path: str | Path | None, overrides: typing.Sequence[str] = (), check_paths: bool = True
) -> PipelineConfig:
    return build_config(read_recipe(path, PATH_KEYS), overrides, check_paths)
