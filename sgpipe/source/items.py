"""Image-text items (webdataset tars, image folders): their keys, image ids, alt texts and metadata.

An item is what img2dataset writes per image: `KEY.jpg|png|webp`, `KEY.txt` (the alt text) and
`KEY.json` (its metadata); a folder holds `NAME.jpg` and an optional `NAME.txt`. The item's image id
is its key's integer where the key is digits (img2dataset's keys are), else a stable 63-bit hash of
it, so the output key `{dataset}-{image_id:012d}` stays what sgpipe writes for every source.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sgpipe.records import IMAGE_EXTENSIONS, Caption, ImageEntry

ALT_TEXT = "alt_text"  # the caption source of an item's own text
MAX_IMAGE_ID = (1 << 63) - 1  # parquet's int64
ITEM_IMAGE_EXTENSIONS = frozenset(IMAGE_EXTENSIONS)


def image_id_of_key(key: str) -> int:
    """The key's integer when it is ASCII digits that fit 63 bits, else a stable 63-bit hash of it."""
    if key.isascii() and key.isdigit() and int(key) <= MAX_IMAGE_ID:
        return int(key)
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & MAX_IMAGE_ID


def alt_text_caption(data: bytes, counters: dict[str, int]) -> Caption | None:
    """The alt text as caption 0 (source `alt_text`); None when it is empty. Bytes that are not
    UTF-8 are replaced and counted, never a failure."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        counters["source_alt_text_not_utf8"] = counters.get("source_alt_text_not_utf8", 0) + 1
    text = " ".join(text.split())
    return Caption(id=0, text=text, source=ALT_TEXT) if text else None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity could not be written back


def parse_metadata(data: bytes, counters: dict[str, int]) -> dict[str, Any] | None:
    """`KEY.json` as a mapping; anything else (not JSON, NaN, a list) is counted and left out."""
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        counters["source_metadata_unreadable"] = counters.get("source_metadata_unreadable", 0) + 1
        return None
    return value


def item_entry(
    key: str,
    file_name: str,
    *,
    alt_text: bytes | None = None,
    metadata: bytes | None = None,
    seen: set[int] | None = None,
) -> ImageEntry:
    """The entry of one item; `seen` (image ids met before it) flags a repeated id as a duplicate."""
    image_id = image_id_of_key(key)
    entry = ImageEntry(image_id=image_id, file_name=file_name, width=0, height=0, source_key=key)
    if seen is not None:
        entry.duplicate = image_id in seen
        seen.add(image_id)
    if entry.duplicate:
        return entry
    if alt_text is not None:
        caption = alt_text_caption(alt_text, entry.counters)
        entry.captions = [caption] if caption is not None else []
    if metadata is not None:
        entry.metadata = parse_metadata(metadata, entry.counters)
    return entry
