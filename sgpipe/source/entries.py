"""Serialising `ImageEntry` plans: one JSON line per image entry, one file per shard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from sgpipe.records import Box, Caption, ImageEntry


def entry_to_json(entry: ImageEntry) -> dict[str, Any]:
    return {
        "image_id": entry.image_id,
        "file_name": entry.file_name,
        "width": entry.width,
        "height": entry.height,
        "duplicate": entry.duplicate,
        "objects": [b.to_json() for b in entry.objects],
        "captions": [{"id": c.id, "text": c.text} for c in entry.captions],
        "dropped_boxes": dict(sorted(entry.dropped_boxes.items())),
    }


def entry_from_json(data: dict[str, Any]) -> ImageEntry:
    return ImageEntry(
        image_id=data["image_id"],
        file_name=data["file_name"],
        width=data["width"],
        height=data["height"],
        duplicate=data["duplicate"],
        objects=[Box(**b) for b in data["objects"]],
        captions=[Caption(id=c["id"], text=c["text"], source="annotation") for c in data["captions"]],
        dropped_boxes=data["dropped_boxes"],
    )


def write_entries(path: Path, entries: Iterable[ImageEntry]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry_to_json(entry), ensure_ascii=False, separators=(",", ":")) + "\n")
    tmp.replace(path)


def read_entries(path: Path) -> list[ImageEntry]:
    with open(path, encoding="utf-8") as handle:
        return [entry_from_json(json.loads(line)) for line in handle if line.strip()]
