"""Checks that run on the driver before any worker starts: every model the recipe names must be
loadable here (a local folder, the Hugging Face cache, or a reachable hub), so a missing model fails
the run at start-up with its name, not later inside every worker's first shard."""

from __future__ import annotations

import os
from pathlib import Path

from sgpipe.config import PipelineConfig
from sgpipe.errors import ModelNotAvailableError


def _in_hf_cache(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def check_model(model: str, role: str) -> None:
    """Raise ModelNotAvailableError unless `model` is a folder, cached, or fetchable from the hub."""
    from sgpipe.models.loading import hub_endpoint, hub_reachable

    if Path(model).expanduser().is_dir() or _in_hf_cache(model):
        return
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        raise ModelNotAvailableError(model, role, "HF_HUB_OFFLINE is set and it is not in the cache")
    if not hub_reachable():
        raise ModelNotAvailableError(model, role, f"{hub_endpoint()} cannot be reached")


def check_models(config: PipelineConfig) -> None:
    if config.caption.enabled:
        check_model(config.caption.model, "caption")
    if config.parse.backend == "seq2seq":
        check_model(config.parse.model, "parse")
    embedding = config.tag.embedding_model
    if embedding not in ("none", ""):
        from sgpipe.models.text_embedder import resolve_model_path

        check_model(resolve_model_path(embedding), "text embedding")
