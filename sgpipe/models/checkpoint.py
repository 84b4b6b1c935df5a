"""What makes a folder a verifier checkpoint, and how to get one. Imports no torch: the config
checks checkpoints before any model loads."""

from __future__ import annotations

from pathlib import Path

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

TRAIN_HINT = (
    "Train one: `sgpipe convert vg --images VG/images --scene-graphs VG/scene_graphs.json --out vg-shards` "
    "then `sgpipe train pipelines/train_base.yaml --set data.train=vg-shards` (offline: `sgpipe synth`, "
    "`sgpipe convert synth` and pipelines/train_small.yaml), and pass its OUT/final folder"
)


def is_checkpoint(path: str | Path | None) -> bool:
    folder = Path(path) if path else None
    return bool(folder and (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file())


def not_a_checkpoint(where: str, path: str | Path | None) -> str:
    """The one message for a folder that is not a checkpoint; `where` names the setting."""
    return (
        f"{where}: {str(path or '')!r} is not a verifier checkpoint folder ({CONFIG_NAME} + {WEIGHTS_NAME}). "
        f"{TRAIN_HINT}"
    )
