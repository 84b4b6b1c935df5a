"""The config hash: what decides a shard's bytes, as run.json records it and a resume checks it.

Location keys are left out (`sgpipe.config.location_keys`: where things are and how the work is
placed), so a moved images mount or a bigger cluster resumes the same output folder. Each stage's
section is hashed as its table entry says (`pipeline.StageSpec.hashed`): the learned parser's keys
count only when it runs, and a stage added later counts only when enabled, so the hashes of recipes
written before it stay the same. The exclude file, a detector vocabulary file and a paraphrase table
count by their bytes, not their names.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sgpipe.config import PipelineConfig, location_keys
from sgpipe.pipeline import STAGES
from sgpipe.storage import location


def hashed_content(config: PipelineConfig) -> dict[str, Any]:
    content = config.to_dict()
    for section, key in location_keys(config):
        content[section].pop(key)
    source = content["source"]
    _hash_exclude_file(source, source.pop("storage_options"))
    if source["kind"] == "coco":  # COCO sources hash as before the kinds existed
        source.pop("kind")
        source.pop("shards")
    elif source["kind"] == "webdataset":  # one output shard per tar, whatever this says
        content["output"].pop("samples_per_shard")
    for name in list(content):
        owners = [spec for spec in STAGES if spec.section == name]
        if not owners:
            continue
        spec = next((s for s in owners if s.enabled(config)), owners[0])
        hashed = spec.hashed(config, content[name])
        if hashed is None:
            del content[name]
        else:
            content[name] = hashed
    return content


def config_hash(config: PipelineConfig, extra: dict[str, Any] | None = None) -> str:
    """16 hex digits over the hashed content; `extra` joins it (a reverify run: the run it re-scores)."""
    content = hashed_content(config)
    if extra:
        content["extra"] = extra
    blob = json.dumps(content, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _hash_exclude_file(source: dict[str, Any], options: dict[str, Any]) -> None:
    """The excluded images decide the shards, not the file's name: hash its bytes (no key without one)."""
    path = source.pop("exclude")
    if path:
        try:
            source["exclude_md5"] = hashlib.md5(location(path, options).read_bytes()).hexdigest()
        except OSError:
            source["exclude_md5"] = path
