"""COCO-sized annotation files through pycocotools (COCO 2017, any COCO-format set)."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

from sgpipe.errors import SourceError
from sgpipe.records import Caption, ImageEntry
from sgpipe.source.boxes import annotation_categories, known_category, sanitize_box
from sgpipe.storage import Location, location, open_binary


def load_instances_json(path: str | Location) -> dict[str, Any]:
    try:
        with open_binary(location(path)) as handle:
            data = json.load(handle)
    except OSError as error:
        reason = error.strerror or f"{type(error).__name__}: {error}"
        raise SourceError(f"cannot read instances file {str(path)!r}: {reason}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SourceError(f"instances file {str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise SourceError(
            f"instances file {str(path)!r}: expected a JSON object with 'images' and 'annotations'"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            raise SourceError(f"instances file {str(path)!r}: '{key}' must be a list")
    if "images" not in data:
        raise SourceError(f"instances file {str(path)!r}: no 'images' list (is this a COCO instances file?)")
    return data


def category_names(categories: list[Any]) -> dict[int, str]:
    names: dict[int, str] = {}
    for category in categories:
        if isinstance(category, dict) and "id" in category and isinstance(category.get("name"), str):
            names[int(category["id"])] = category["name"]
    return names


def image_fields(image: Any) -> tuple[int, str, int, int] | None:
    """(id, file_name, width, height) or None for an entry that cannot be an image at all."""
    if not isinstance(image, dict):
        return None
    try:
        image_id = int(image["id"])
    except (KeyError, TypeError, ValueError):
        return None
    if image_id < 0:
        return None
    file_name = image.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        file_name = ""
    try:
        width, height = int(image.get("width") or 0), int(image.get("height") or 0)
    except (TypeError, ValueError):
        width = height = 0
    return image_id, file_name, width, height


def ordered_images(images: list[Any]) -> tuple[list[tuple[int, str, int, int, bool]], int]:
    """Images sorted by id (then file position); repeated ids flagged as duplicates, the first one wins.

    Returns the rows and how many entries were unusable (no id).
    """
    rows = []
    unusable = 0
    for position, image in enumerate(images):
        fields = image_fields(image)
        if fields is None:
            unusable += 1
            continue
        rows.append((fields[0], position, fields))
    rows.sort(key=lambda row: (row[0], row[1]))
    ordered = []
    previous = None
    for image_id, _, fields in rows:
        ordered.append((*fields, image_id == previous))
        previous = image_id
    return ordered, unusable


def load_coco_entries(
    instances: str | Location, captions: dict[int, list[Caption]] | None
) -> tuple[list[ImageEntry], list[str], dict[str, int]]:
    """All image entries in deterministic order, the category names, and dataset-level counters."""
    from pycocotools.coco import COCO

    data = load_instances_json(instances)
    names = category_names(data.get("categories", []))
    usable = [a for a in data.get("annotations", []) if isinstance(a, dict) and "image_id" in a and "id" in a]
    counters = {"annotations_malformed": len(data.get("annotations", [])) - len(usable)}
    coco = COCO()
    coco.dataset = {"images": [], "annotations": usable, "categories": data.get("categories", [])}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    rows, counters["images_unusable"] = ordered_images(data["images"])
    entries = []
    for image_id, file_name, width, height, duplicate in rows:
        entry = ImageEntry(
            image_id=image_id, file_name=file_name, width=width, height=height, duplicate=duplicate
        )
        if not duplicate:
            categories = []
            for annotation in coco.imgToAnns.get(image_id, []):  # the file's order, as RLIPv2 reads it
                box = sanitize_box(annotation, names, width, height, entry.dropped_boxes)
                if box is not None:
                    entry.objects.append(box)
                category = known_category(annotation, names)
                if category is not None:
                    categories.append(category)
            entry.annotation_categories = annotation_categories(categories, (b.category_id for b in entry.objects))
            entry.captions = list((captions or {}).get(image_id, []))
        entries.append(entry)
    return entries, [names[i] for i in sorted(names)], counters
