"""What each `source.kind` needs from the config, checked with the rest of it before any work."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sgpipe.errors import SgpipeError
from sgpipe.storage import is_remote

if TYPE_CHECKING:
    from sgpipe.config import SourceConfig

REQUIRED = {
    "coco": {"instances": "a COCO-format instances JSON", "images": "the folder file_name is under"},
    "webdataset": {"shards": "tar URLs: a brace pattern (/data/{00000..00099}.tar), a list, a folder"},
    "folder": {"images": "the folder whose images (and NAME.txt alt texts) are read"},
}
OWN_KEYS = {"instances": "coco", "captions": "coco", "shards": "webdataset"}


def kind_problems(src: "SourceConfig") -> list[str]:
    """Each kind's required keys; a key of another kind is an error rather than silently ignored."""
    problems = [
        f"source.{key}: required with source.kind {src.kind} ({what})"
        for key, what in REQUIRED.get(src.kind, {}).items()
        if not getattr(src, key)
    ]
    for key, kind in OWN_KEYS.items():
        if kind != src.kind and getattr(src, key):
            problems.append(f"source.{key}: not used with source.kind {src.kind}; remove it")
    return problems


def tar_problems(src: "SourceConfig") -> list[str]:
    """Each local `source.shards` item names tars that are there. Remote ones are not listed here: the
    plan lists a remote folder once, and the workers meet the tars."""
    from sgpipe.shards import expand_urls

    problems = []
    for item in src.shards:
        if is_remote(item):
            continue
        try:
            expand_urls(item, src.storage_options)
        except SgpipeError as error:
            problems.append(f"source.shards: {error}")
    return problems
