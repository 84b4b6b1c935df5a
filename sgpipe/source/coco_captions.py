"""Captions from a COCO captions JSON (`annotations: [{id, image_id, caption}]`)."""

from __future__ import annotations

import json
from collections import defaultdict

from sgpipe.errors import SourceError
from sgpipe.records import Caption
from sgpipe.storage import Location, location


def load_captions(path: str | Location) -> dict[int, list[Caption]]:
    """image_id -> captions in (id) order; non-string captions are skipped."""
    try:
        data = json.loads(location(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SourceError(f"captions file {str(path)!r} is not readable JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise SourceError(
            f"captions file {str(path)!r}: expected COCO captions format with an 'annotations' list"
        )
    by_image: dict[int, list[Caption]] = defaultdict(list)
    for position, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict) or not isinstance(annotation.get("caption"), str):
            continue
        try:
            image_id = int(annotation["image_id"])
        except (KeyError, TypeError, ValueError):
            continue
        caption_id = annotation.get("id", position)
        by_image[image_id].append(
            Caption(id=int(caption_id), text=annotation["caption"], source="annotation")
        )
    for captions in by_image.values():
        captions.sort(key=lambda c: c.id)
    return dict(by_image)
