"""Serialising `ImageEntry` plans: one JSON line per image entry, one file per shard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from sgpipe.output.atomic import atomic_file
from sgpipe.records import Box, Caption, ImageEntry


# Fields written only when set, so that plans without them read as before: the categories of every
# annotation (RLIPv2's matching), and image-text items' own fields
OPTIONAL_FIELDS = ("annotation_categories", "source_key", "alt_text_file", "failure", "failure_message")


def optional_fields(entry: ImageEntry) -> dict[str, Any]:
    values = {name: getattr(entry, name) for name in OPTIONAL_FIELDS}
    return {name: value for name, value in values.items() if value not in (None, "")}


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
        **optional_fields(entry),
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
        **{name: data[name] for name in OPTIONAL_FIELDS if name in data},
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def box_json(box: Box) -> str:
    """A box as the JSON text `_dumps(box.to_json())` gives, formatted directly: the streaming
    index formats millions of boxes, so this is its hot path."""
    x, y, w, h = (round(float(v), 2) for v in box.bbox)
    return (
        f'{{"id":{box.id},"category":{_dumps(box.category)},"category_id":{box.category_id},'
        f'"bbox":[{x!r},{y!r},{w!r},{h!r}],"iscrowd":{box.iscrowd}}}'
    )


def entry_line(entry: ImageEntry, box_jsons: list[str]) -> str:
    """One line of an entries file; `box_jsons` are the entry's boxes already formatted."""
    head = _dumps(
        {
            "image_id": entry.image_id,
            "file_name": entry.file_name,
            "width": entry.width,
            "height": entry.height,
            "duplicate": entry.duplicate,
        }
    )
    captions = _dumps([{"id": c.id, "text": c.text} for c in entry.captions])
    dropped = _dumps(dict(sorted(entry.dropped_boxes.items())))
    optional = optional_fields(entry)
    tail = f",{_dumps(optional)[1:-1]}" if optional else ""
    return (
        f'{head[:-1]},"objects":[{",".join(box_jsons)}],"captions":{captions},"dropped_boxes":{dropped}'
        f"{tail}}}\n"
    )


def write_lines(path: Path, lines: Iterable[str]) -> None:
    with atomic_file(path, "w") as handle:
        handle.writelines(lines)


def write_entries(path: Path, entries: Iterable[ImageEntry]) -> None:
    write_lines(path, (entry_line(e, [box_json(b) for b in e.objects]) for e in entries))


def read_entries(path: Path) -> list[ImageEntry]:
    with open(path, encoding="utf-8") as handle:
        return parse_entries(handle)


def parse_entries(lines: Iterable[str]) -> list[ImageEntry]:
    return [entry_from_json(json.loads(line)) for line in lines if line.strip()]
