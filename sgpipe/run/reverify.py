"""`sgpipe reverify OUT --checkpoint DIR --out NEW`: re-score an earlier run's shards with another
verifier checkpoint, without decoding sources, captioning, parsing or tagging again.

It is a run like any other (`lifecycle.run_pipeline`): its source is OUT's complete shards
(`sources.ShardsSource`), its only stage the table's verify stage, so it has the same lease or lock
on NEW, the same retries, stops, executors (`run.*`), resume, run.json and URLs for OUT and NEW.
Its config is the earlier run's, with the verify section set by `--checkpoint` and `--set verify.*`,
and one worker in this process unless `--set run.*` says otherwise; its hash covers the earlier run's
hash too, so NEW refuses a different checkpoint unless `--force`.

Only the relations an earlier run stored exist in its shards (those at or above its
`verify.store_threshold`; all candidates when it ran without the verifier), so reverify rescores
those: a new checkpoint can lower or raise their confidences and drop them, but cannot bring back
candidates the earlier run discarded. Failed rows of the parquet carry over.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sgpipe.config import PipelineConfig, validate
from sgpipe.errors import ConfigError, SgpipeError
from sgpipe.fields import build_sections
from sgpipe.recipe import parse_override
from sgpipe.run.lifecycle import RunOptions, run_pipeline
from sgpipe.run.sources import ShardsSource
from sgpipe.storage import Location, location
from sgpipe.vocab.rlipv2 import VOCABULARIES as RLIPV2_TABLES
from sgpipe.vocab.rlipv2 import is_table_file

# what a reverify may set: the verify stage, the run's placement, and how OUT and NEW are reached
ALLOWED = ("verify.*", "run.*", "source.storage_options", "output.storage_options", "output.lease_seconds")
CONTENT_SECTIONS = ("source", "caption", "parse", "detect", "tag")  # the earlier run's, recorded as they were


def _allowed(keys: list[str]) -> bool:
    name = ".".join(keys[:2])
    return keys[0] in ("verify", "run") or name in ALLOWED


def reverify_config(
    previous: dict[str, Any], checkpoint: str, new_out: str, overrides: Sequence[str]
) -> PipelineConfig:
    """The earlier run's config (`previous`: its run.json `config`) re-aimed at NEW and the checkpoint."""
    problems: list[str] = []
    for text in overrides:
        try:
            keys, _ = parse_override(text)
        except ConfigError as error:
            problems += error.problems
            continue
        if not _allowed(keys):
            problems.append(f"override {'.'.join(keys)!r}: reverify takes {', '.join(ALLOWED)}")
    raw = {
        section: previous[section] for section in CONTENT_SECTIONS if isinstance(previous.get(section), dict)
    }
    raw.get("source", {}).pop("storage_options", None)  # recorded redacted: given again with --set
    earlier_output = previous.get("output") or {}
    raw["output"] = {
        "dir": new_out,
        **{k: earlier_output[k] for k in ("samples_per_shard", "images") if k in earlier_output},
    }
    raw["verify"] = {**(previous.get("verify") or {}), "enabled": True, "checkpoint": checkpoint}
    # one worker, in this process, unless --set run.* asks for more: the earlier run's placement was its own
    raw["run"] = {"workers": 1}
    config = build_sections(PipelineConfig, raw, [*overrides, f"verify.checkpoint={checkpoint}"], problems)
    validate(config, problems, ("verify", "output", "run"))
    vocabulary = config.tag.vocabulary
    if config.verify.texts == "rlipv2" and vocabulary not in RLIPV2_TABLES and not is_table_file(vocabulary):
        # RLIPv2's texts are the category table the candidates were tagged with: not a reverify's to choose
        problems.append(
            f"verify.texts: rlipv2 reads RLIPv2's category table of the run that tagged the candidates, and "
            f"OUT was tagged with tag.vocabulary {vocabulary!r}; run it again with tag.vocabulary coco, "
            "objects365 or a paraphrase file, or use verify.texts image"
        )
    if problems:
        raise ConfigError(problems)
    return config


def reverify(
    out: str | Location,
    checkpoint: str | Location,
    new_out: str | Location,
    overrides: Sequence[str] = (),
    options: RunOptions = RunOptions(progress=False),
) -> str:
    """Re-score every complete shard of OUT into NEW; returns a summary for the CLI."""
    source_options = _storage_options(overrides, "source")
    old = location(str(out), source_options)
    if str(old).rstrip("/") == str(location(str(new_out))).rstrip("/"):
        raise SgpipeError("reverify writes a new folder: --out must differ from OUT")
    source = ShardsSource(old)
    config = reverify_config(source.run.get("config") or {}, str(checkpoint), str(new_out), overrides)
    new = location(config.output.dir, config.output.storage_options)
    done_before = _complete(new)
    run_pipeline(config, options, source=source)
    stats = json.loads((new / "stats.json").read_text())
    done = _complete(new) - done_before
    earlier = json.loads((old / "stats.json").read_text())["totals"] if (old / "stats.json").exists() else {}
    totals = stats["totals"]
    return (
        f"re-scored {done} shards ({stats['shards'] - done} already done) with {checkpoint}: "
        f"{earlier.get('n_relations', '?')} stored relations -> {totals['n_relations']} at confidence >= "
        f"{config.verify.store_threshold}, {totals['n_kept']} kept (>= {config.verify.keep_threshold}); "
        f"wrote {new}"
    )


def _storage_options(overrides: Sequence[str], section: str) -> dict[str, Any]:
    for text in overrides:
        keys, value = parse_override(text)
        if keys == [section, "storage_options"]:
            return json.loads(value) if isinstance(value, str) else dict(value or {})
    return {}


def _complete(folder: Location) -> int:
    from sgpipe.output.writer import read_shard_stats

    return len(read_shard_stats(folder))  # none for a folder not there yet
