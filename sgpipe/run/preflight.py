"""The world a config points at, checked on the driver before any work starts: URLs (a known
protocol with its fsspec backend installed), the source's files, folders and tars, the exclude file,
the vocabulary files, and every model the run's stages load (the table's `models`: a verifier checkpoint, a transformers
folder or hub id, the text embedder, a spaCy pipeline; `sgpipe.run.model_checks`).

Every problem is one line and all of them come in one error. `checked_config` is what the command
line uses: the config's own problems (`sgpipe.config`) and these, reported together, once.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from sgpipe.config import PipelineConfig, SourceConfig, read_config
from sgpipe.errors import ConfigError, ModelNotAvailableError, PreflightError, SgpipeError, SourceError
from sgpipe.models.checkpoint import is_checkpoint, not_a_checkpoint
from sgpipe.pipeline import ModelRef, recipe_models
from sgpipe.run.model_checks import model_problems, sng_problems, spacy_problem
from sgpipe.storage import is_remote, location, url_problem

SOURCE_PATHS = (("instances", "file"), ("images", "folder"), ("captions", "file"))


def url_problems(config: PipelineConfig, reads_source: bool = True) -> tuple[list[str], set[str]]:
    """Unknown protocols and missing fsspec backends, named with the package to install; and the
    keys whose URL cannot be used (not checked further)."""
    problems, bad = [], set()
    keys = [("output.dir", config.output.dir)]
    if reads_source:
        keys += [(f"source.{key}", getattr(config.source, key)) for key, _ in SOURCE_PATHS]
        keys.append(("source.exclude", config.source.exclude))
        keys += [("source.shards", url) for url in config.source.shards]
    for where, url in keys:
        problem = url_problem(url, where)
        if problem:
            problems.append(problem)
            bad.add(where)
    return problems, bad


def path_problem(where: str, url: str, kind: str, options: dict, hint: str = "") -> str | None:
    """Why the file or folder `url` is not there (ending with `hint`); None when it is."""
    path = location(url, options)
    if isinstance(path, Path):
        found = path.is_dir() if kind == "folder" else path.is_file()
    elif kind == "folder":  # an object store has no folders to check, and listing one is what we avoid
        return None
    else:
        try:
            found = path.is_file()
        except Exception as error:  # noqa: BLE001 - credentials, endpoint, network: all said the same way
            return f"{where}: cannot reach {url!r}: {type(error).__name__}: {error}"
    return None if found else f"{where}: no such {kind} {url!r}{hint}"


def source_problems(config: PipelineConfig, bad_urls: set[str]) -> list[str]:
    """The source's files and folder are there; the exclude file holds a list of image ids."""
    src, problems = config.source, []
    for key, kind in SOURCE_PATHS:
        if getattr(src, key) and f"source.{key}" not in bad_urls:
            problem = path_problem(f"source.{key}", getattr(src, key), kind, src.storage_options)
            problems += [problem] if problem else []
    if src.exclude and "source.exclude" not in bad_urls:
        hint = " (write one with `sgpipe leakage`)"
        problem = path_problem("source.exclude", src.exclude, "file", src.storage_options, hint)
        if problem:
            return problems + [problem]
        from sgpipe.leakage.exclude import load_exclusions

        try:
            load_exclusions(src.exclude, src.storage_options)
        except SourceError as error:
            problems.append(str(error))
    if src.shards and "source.shards" not in bad_urls:
        problems += tar_problems(src)
    return problems


def tar_problems(src: SourceConfig) -> list[str]:
    """Each local `source.shards` item names tars that are there. Remote ones are not listed here: the
    plan lists a remote folder once, and the workers meet the tars."""
    from sgpipe.shards import expand_urls

    problems = []
    for item in src.shards:
        if is_remote(item):
            continue
        try:
            expand_urls(item, src.storage_options)
        except SgpipeError as error:
            problems.append(f"source.shards: {error}")
    return problems


def vocabulary_problems(config: PipelineConfig, stage_names: tuple[str, ...] | None = None) -> list[str]:
    """The files a recipe names as vocabularies are there and readable: the detector's list of names,
    RLIPv2's matching's paraphrase table; and RLIPv2's text batches need RLIPv2's R-Tagger. Only for
    the stages that run (`stage_names`; None: all): a reverify reads no detector vocabulary."""
    from sgpipe.config import DETECT_VOCABULARIES
    from sgpipe.vocab.rlipv2 import is_table_file, rlipv2_categories

    def runs(stage: str) -> bool:
        return stage_names is None or stage in stage_names

    problems = []
    detect = config.detect
    if runs("detect") and detect.enabled and detect.vocabulary not in DETECT_VOCABULARIES:
        if path_problem("detect.vocabulary", detect.vocabulary, "file", {}):
            problems.append(
                f"detect.vocabulary: {detect.vocabulary!r} is neither a file (one name per line) nor one of "
                f"{', '.join(DETECT_VOCABULARIES)}"
            )
    matching, texts = config.tag.matching == "rlipv2", config.verify.texts == "rlipv2"
    rlipv2 = (runs("tag") and matching) or (runs("verify") and texts)
    if rlipv2 and is_table_file(config.tag.vocabulary):
        try:
            rlipv2_categories(config.tag.vocabulary)
        except ValueError as error:
            problems.append(str(error))
    verify = config.verify
    if runs("verify") and verify.enabled and verify.texts == "rlipv2" and is_checkpoint(verify.checkpoint):
        from sgpipe.models.checkpoint import is_rtagger_folder

        if not is_rtagger_folder(verify.checkpoint):
            problems.append(
                f"verify.texts: rlipv2 scores RLIPv2's groups with RLIPv2's R-Tagger, and {verify.checkpoint!r} "
                "is sgpipe's own verifier; convert the R-Tagger with `sgpipe convert rtagger`, or use verify.texts image"
            )
    return problems


def _model_problems(model: ModelRef) -> list[str]:
    if model.kind == "sng":
        return sng_problems()
    if model.kind == "spacy":
        problem = spacy_problem(model.id)
        return [problem] if problem else []
    if model.kind == "checkpoint":
        if not is_checkpoint(model.id):
            return [
                not_a_checkpoint("verify.checkpoint", model.id)
                + "; or run with --set verify.enabled=false to write unverified candidates"
            ]
        # its config.json is sgpipe's own, rebuilt without transformers' registry
        return model_problems(model.id, model.role, transformers_config=False)
    if model.kind == "embedding":
        if model.id in ("none", ""):
            return []
        from sgpipe.models.text_embedder import resolve_model_path

        try:
            return model_problems(resolve_model_path(model.id), model.role)
        except ModelNotAvailableError as error:
            return [str(error)]
    return model_problems(model.id, model.role)


def preflight_problems(
    config: PipelineConfig, stage_names: tuple[str, ...] | None = None, reads_source: bool = True
) -> list[str]:
    """Every problem of the world the config points at; `stage_names`: only those stages' models."""
    problems, bad_urls = url_problems(config, reads_source)
    if reads_source:
        problems += source_problems(config, bad_urls)
    problems += vocabulary_problems(config, stage_names)
    for model in recipe_models(config, stage_names):
        problems += _model_problems(model)
    return problems


def check_run(config: PipelineConfig, source: Any) -> None:
    """Raise one PreflightError listing every problem, before any work starts."""
    problems = preflight_problems(config, source.stage_names, source.reads_source)
    if problems:
        raise PreflightError(problems)


def checked_config(path: str | Path | None, overrides: typing.Sequence[str] = ()) -> PipelineConfig:
    """The config of a recipe and its overrides; its own problems and the world's, in one ConfigError."""
    config, problems = read_config(path, overrides)
    if problems:
        raise ConfigError(problems + (preflight_problems(config) if config is not None else []))
    assert config is not None
    return config
