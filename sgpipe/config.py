"""The pipeline's config: typed sections, and the rules a recipe's values must follow.

Fields and the rules that span fields only: nothing here reads a file, a URL or a model folder. A
field's valid choices or range live on the field itself (`option(default, choices=...)`,
`option(default, low=...)`, checked by `sgpipe.fields.check_fields`); `validate` adds the rules
across fields. Whether paths, URLs, checkpoints and the exclude file are there is the preflight's
business (`sgpipe.run.preflight`); the CLI reports its problems together with these, once.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sgpipe.errors import ConfigError
from sgpipe.fields import build_sections, check_fields, choices_text, option
from sgpipe.recipe import read_recipe
from sgpipe.records import DATASET_NAME_PATTERN
from sgpipe.vocab.rlipv2 import VOCABULARIES as RLIPV2_TABLES
from sgpipe.vocab.rlipv2 import is_table_file

DEFAULT_CAPTION_MODEL = "Salesforce/blip-image-captioning-large"
DEFAULT_DETECT_MODEL = "IDEA-Research/grounding-dino-tiny"
DTYPES = ("auto", "float32", "bfloat16", "float16")
SOURCE_KINDS = ("coco", "webdataset", "folder")
DETECT_VOCABULARIES = ("none", "coco", "objects365")  # or a file: one name per line
TAG_VOCABULARIES = ("auto", "coco", "objects365", "none")  # or, for RLIPv2's matching, a paraphrase file


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
    # auto: in this process (no Ray) when one worker does the run and no cluster is named; else ray
    executor: str = option("auto", choices=("auto", "local", "ray"))
    # ray: flat (each worker runs every stage) or pools (one device actor per GPU holds the model
    # stages and serves shard actors); auto: pools for a recipe with a model stage on a cluster with GPUs
    layout: str = option("auto", choices=("auto", "flat", "pools"))
    devices: int = option(0, low=0)  # pools: device actors; 0: one per GPU (one without GPUs)
    workers: int = option(0, low=0)  # 0: as many as the CPUs (and GPUs) hold, capped by the shards
    gpus_per_worker: float = option(0.0, low=0)  # flat layout: a worker's share of a GPU
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

    def locations(self) -> dict[str, Any]:
        """The location keys' values, `{"source.images": ..., ...}`: recorded in run.json, not hashed."""
        return {
            f"{section}.{key}": getattr(getattr(self, section), key) for section, key in location_keys(self)
        }


# Keys that say where things are or how the work is placed, never what the shards hold: the images
# folder (the bytes written are the files' own, whatever mount they are read from), the output folder,
# and every `run.*` key but `run.seed` (cluster address, executor, layout, workers, resources,
# error-rate stop, retries). The annotation and captions files stay hashed: their path stands for the
# dataset they hold. The hash itself: `sgpipe.run.identity`.
CONTENT_RUN_KEYS = ("seed",)


def location_keys(config: PipelineConfig) -> list[tuple[str, str]]:
    run_keys = [("run", f.name) for f in dataclasses.fields(config.run) if f.name not in CONTENT_RUN_KEYS]
    output_keys = [("output", "dir"), ("output", "storage_options"), ("output", "lease_seconds")]
    return [("source", "images"), *output_keys, *run_keys]


def validate(
    config: PipelineConfig, problems: list[str], sections: typing.Iterable[str] | None = None
) -> None:
    """Every field's declared choices and range, then the rules across fields (of `sections` only,
    when given: `sgpipe reverify` uses the verify, output and run sections alone)."""
    names = list(sections) if sections is not None else [f.name for f in dataclasses.fields(config)]
    for name in names:
        check_fields(getattr(config, name), name, problems)
        if name in _RULES:
            _RULES[name](config, problems)


# what each source.kind needs; a key of another kind is an error rather than silently ignored
KIND_REQUIRES = {
    "coco": {"instances": "a COCO-format instances JSON", "images": "the folder file_name is under"},
    "webdataset": {"shards": "tar URLs: a brace pattern (/data/{00000..00099}.tar), a list, a folder"},
    "folder": {"images": "the folder whose images (and NAME.txt alt texts) are read"},
}
KIND_OF_KEY = {"instances": "coco", "captions": "coco", "shards": "webdataset"}


def _check_source(config: PipelineConfig, problems: list[str]) -> None:
    src = config.source
    if not DATASET_NAME_PATTERN.fullmatch(src.name or ""):
        problems.append(f"source.name: {src.name!r} may hold letters, digits and '_' only")
    for key, what in KIND_REQUIRES.get(src.kind, {}).items():
        if not getattr(src, key):
            problems.append(f"source.{key}: required with source.kind {src.kind} ({what})")
    for key, kind in KIND_OF_KEY.items():
        if kind != src.kind and getattr(src, key):
            problems.append(f"source.{key}: not used with source.kind {src.kind}; remove it")
    if src.kind == "coco" and not config.caption.enabled and not src.captions:
        problems.append(
            "caption: with caption.enabled false, source.captions must name a COCO captions JSON "
            "(otherwise images have no captions to parse)"
        )


def _check_detect(detect: DetectConfig, problems: list[str]) -> None:
    if detect.enabled and not detect.model:
        problems.append(
            f"detect.model: required with detect.enabled (a hub id or folder: {DEFAULT_DETECT_MODEL})"
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


def _check_verify(ver: VerifyConfig, problems: list[str]) -> None:
    if ver.keep_threshold < ver.store_threshold:
        problems.append(
            f"verify.keep_threshold {ver.keep_threshold} is below "
            f"verify.store_threshold {ver.store_threshold}: "
            "relations are kept only among those stored"
        )


def _check_run(run: RunConfig, problems: list[str]) -> None:
    if run.executor == "local":
        if run.workers > 1:
            problems.append(
                f"run.workers: {run.workers} with run.executor local, which runs one shard at a time in "
                "this process; set run.executor ray (or auto) for more workers"
            )
        if run.address:
            problems.append("run.address: a cluster address with run.executor local; set run.executor ray")
        if run.layout == "pools":
            problems.append("run.layout: pools is a Ray layout; set run.executor ray (or auto)")


def _check_rlipv2_flow(config: PipelineConfig, problems: list[str]) -> None:
    """RLIPv2's matching and its text batches read a category table: RLIPv2's COCO or Objects365 one, or a
    paraphrase file (read by the preflight). Lexicon matching takes no paraphrase file."""
    vocabulary = config.tag.vocabulary
    chosen = (("tag.matching", config.tag.matching), ("verify.texts", config.verify.texts))
    rlipv2 = [where for where, value in chosen if value == "rlipv2"]
    if is_table_file(vocabulary):
        if not rlipv2:
            problems.append(
                f"tag.vocabulary: {vocabulary!r} is a paraphrase file, the table of tag.matching rlipv2; "
                f"with lexicon matching {choices_text(TAG_VOCABULARIES)}"
            )
        return
    if vocabulary not in TAG_VOCABULARIES and not rlipv2:
        problems.append(f"tag.vocabulary: {vocabulary!r} is not valid. {choices_text(TAG_VOCABULARIES)}")
    what = {"tag.matching": "matched against its", "verify.texts": "reads its"}
    for where in rlipv2:
        if vocabulary not in RLIPV2_TABLES:
            problems.append(
                f"tag.vocabulary: {vocabulary!r} with {where} rlipv2; RLIPv2 {what[where]} COCO or "
                "Objects365 category table. Choose from: coco, objects365, or a JSON paraphrase file "
                "(name -> paraphrases)"
            )


def _check_output(config: PipelineConfig, problems: list[str]) -> None:
    if not config.output.dir:
        problems.append("output.dir: required")


_RULES = {
    "source": _check_source,
    "caption": lambda config, problems: _check_caption_lengths(config.caption, problems),
    "parse": lambda config, problems: _check_parse(config.parse, problems),
    "detect": lambda config, problems: _check_detect(config.detect, problems),
    "tag": _check_rlipv2_flow,
    "verify": lambda config, problems: _check_verify(config.verify, problems),
    "output": _check_output,
    "run": lambda config, problems: _check_run(config.run, problems),
}


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


def read_config(
    path: str | Path | None, overrides: typing.Sequence[str] = ()
) -> tuple[PipelineConfig | None, list[str]]:
    """The config and every problem of its fields and rules, without raising (no config when the
    recipe cannot be read): the CLI adds the preflight's problems and reports them all at once."""
    problems: list[str] = []
    try:
        raw = read_recipe(path, PATH_KEYS)
    except ConfigError as error:
        return None, error.problems
    config = build_sections(PipelineConfig, raw, overrides, problems)
    validate(config, problems)
    return config, problems


def build_config(raw: dict[str, Any], overrides: typing.Sequence[str] = ()) -> PipelineConfig:
    """Build and validate; raises one ConfigError listing every problem."""
    problems: list[str] = []
    config = build_sections(PipelineConfig, raw, overrides, problems)
    validate(config, problems)
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path | None, overrides: typing.Sequence[str] = ()) -> PipelineConfig:
    return build_config(read_recipe(path, PATH_KEYS), overrides)
