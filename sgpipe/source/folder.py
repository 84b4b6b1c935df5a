"""A folder of images -> image entries: every image under it, recursively, in sorted path order.

The folder is listed once (a recursive listing: one paginated request series on an object store);
hidden files and folders (a leading dot) are skipped. An image `DIR/NAME.jpg` is the item
`DIR/NAME`; a `DIR/NAME.txt` beside it is its alt text, read by the worker that processes its shard
(`source/readers.py`), never by the planner. A `.txt` with no image beside it is an entry of its
own, `failed_missing`; a second image of the same name (`a.jpg` and `a.png`) is
`failed_duplicate_id`, as is a name whose digits repeat another's image id (`7.jpg`, `007.jpg`).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from sgpipe import errors
from sgpipe.errors import SourceError
from sgpipe.records import ImageEntry
from sgpipe.source.items import ITEM_IMAGE_EXTENSIONS, item_entry
from sgpipe.storage import Location, RemotePath

ALT_TEXT_EXTENSION = "txt"


def list_files(root: Location) -> list[str]:
    """Relative POSIX paths of every file under `root` (hidden ones left out), sorted."""
    if isinstance(root, RemotePath):
        prefix = root.path.rstrip("/") + "/"
        try:
            found = root.fs.find(root.path)
        except FileNotFoundError:
            found = []
        names = [str(p)[len(prefix) :] for p in found if str(p).startswith(prefix)]
    else:
        if not Path(root).is_dir():
            raise SourceError(f"source.images {str(root)!r} is not a folder")
        names = []
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
            relative = Path(folder).relative_to(root)
            names += [(relative / f).as_posix() for f in files]
    return sorted(n for n in names if not any(part.startswith(".") for part in PurePosixPath(n).parts))


def _split(name: str) -> tuple[str, str]:
    """`a/b.c.jpg` -> ("a/b.c", "jpg"): the item is the path without its last extension."""
    stem, dot, extension = name.rpartition(".")
    if not dot or "/" in extension:
        return name, ""
    return stem, extension.lower()


def folder_entries(names: list[str]) -> tuple[list[ImageEntry], dict[str, int]]:
    """Entries of the listed files in path order, and counts of the files that are neither images
    nor alt texts."""
    images: list[tuple[str, str]] = []  # (file name, item key)
    alt_texts: dict[str, str] = {}
    ignored = 0
    for name in names:
        key, extension = _split(name)
        if extension in ITEM_IMAGE_EXTENSIONS:
            images.append((name, key))
        elif extension == ALT_TEXT_EXTENSION:
            alt_texts[key] = name
        else:
            ignored += 1
    with_image = {key for _, key in images}
    rows = images + [(f"{key}.{ALT_TEXT_EXTENSION}", key) for key in alt_texts if key not in with_image]
    rows.sort()
    seen: set[int] = set()
    entries = []
    for file_name, key in rows:
        entry = item_entry(key, file_name, seen=seen)
        if key not in with_image:
            entry.file_name = key
            entry.failure = errors.FAILED_MISSING
            entry.failure_message = f"no image beside the alt text {file_name!r}"
        elif not entry.duplicate and key in alt_texts:
            entry.alt_text_file = alt_texts[key]
        entries.append(entry)
    return entries, {"files_ignored": ignored}
