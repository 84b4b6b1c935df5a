"""What makes a folder a verifier checkpoint, and how to get one. Imports no torch: the config
checks checkpoints before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

TRAIN_HINT = (
    "Train one: `sgpipe convert vg --images VG/images --scene-graphs VG/scene_graphs.json --out vg-shards` "
    "then `sgpipe train pipelines/train_base.yaml --set data.train=vg-shards` (offline: `sgpipe synth`, "
    "`sgpipe convert synth` and pipelines/train_small.yaml), and pass its OUT/final folder; or convert "
    "RLIPv2's released R-Tagger: `sgpipe convert rtagger checkpoint0019.pth --out DIR`"
)
RTAGGER_MODEL_TYPE = "rlipv2-rtagger"


def is_checkpoint(path: str | Path | None) -> bool:
    folder = Path(path) if path else None
    return bool(folder and (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file())


def not_a_checkpoint(where: str, path: str | Path | None) -> str:
    """The one message for a folder that is not a checkpoint; `where` names the setting."""
    return (
        f"{where}: {str(path or '')!r} is not a verifier checkpoint folder ({CONFIG_NAME} + {WEIGHTS_NAME}). "
        f"{TRAIN_HINT}"
    )


def is_rtagger_folder(path: str | Path) -> bool:
    """A checkpoint folder written by `sgpipe convert rtagger` (RLIPv2's R-Tagger, not sgpipe's verifier)."""
    try:
        config = json.loads((Path(path) / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == RTAGGER_MODEL_TYPE
