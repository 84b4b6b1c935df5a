"""img2dataset-style tars -> image entries with their image bytes, in member order.

A tar is streamed once, front to back (one GET on an object store), as webdataset reads it: members
whose names share a key (`DIR/KEY` up to the first dot of the file name) and follow one another
form one item. Of an item, the first image member (`jpg`, `png`, `webp`, ...) is its image, `txt`
its alt text and `json` its metadata; other members are skipped and counted. Bad items never stop
the tar: an item without an image is `failed_missing`, a key (or image id) met before in the tar
is `failed_duplicate_id`, and an image that does not decode fails later, in the decode stage. A tar
that ends inside an item (a truncated download) keeps the items before it; the cut item is
`failed_decode`. A tar that cannot be opened at all fails its shard, which a rerun retries.
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator

from sgpipe import errors
from sgpipe.errors import SourceError
from sgpipe.records import ImageEntry
from sgpipe.source.items import ITEM_IMAGE_EXTENSIONS, item_entry
from sgpipe.storage import location, open_binary

log = logging.getLogger(__name__)
TEXT_EXTENSIONS = ("txt", "json")


@dataclass(slots=True)
class TarItem:
    """One item as read: its entry (with alt text and metadata) and its image's bytes."""

    entry: ImageEntry
    image: bytes | None = None


@dataclass(slots=True)
class _Members:
    key: str
    image_name: str = ""
    image: bytes | None = None
    texts: dict[str, bytes] = field(default_factory=dict)
    skipped: int = 0  # members that are neither its image nor its texts
    cut: str = ""  # why the tar ended inside it


def split_member(name: str) -> tuple[str, str]:
    """`dir/000123.jpg` -> ("dir/000123", "jpg"); the key ends at the first dot of the file name."""
    directory, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), extension.lower()


def _take(tar: tarfile.TarFile, member: tarfile.TarInfo, extension: str, item: _Members, read: bool) -> None:
    is_text = extension in TEXT_EXTENSIONS and extension not in item.texts
    if not is_text and not (extension in ITEM_IMAGE_EXTENSIONS and not item.image_name):
        item.skipped += 1
        return
    data = b""
    if read:
        handle = tar.extractfile(member)
        data = handle.read() if handle is not None else b""
    if is_text:
        item.texts[extension] = data
    else:
        item.image_name, item.image = member.name.rpartition("/")[2], data


def _groups(tar: tarfile.TarFile, read: bool) -> Iterator[_Members]:
    current: _Members | None = None
    unnamed = 0  # members with no key or no extension: counted on the item they come with
    try:
        for member in tar:
            if not member.isfile():
                continue
            key, extension = split_member(member.name)
            if not extension or not key.rpartition("/")[2]:
                unnamed += 1
                continue
            if current is None or key != current.key:
                if current is not None:
                    yield current
                current = _Members(key, skipped=unnamed)
                unnamed = 0
            _take(tar, member, extension, current, read)
    except (tarfile.TarError, EOFError, OSError) as error:  # cut short: the items before it stand
        log.warning("tar ends early after item %r: %s", current.key if current else None, error)
        if current is not None:
            current.cut = f"{type(error).__name__}: {error}"
    if current is not None:
        current.skipped += unnamed
        yield current


def _open(url: str, options: dict[str, Any] | None) -> BinaryIO:
    try:
        return open_binary(location(url, options))
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or f"{type(error).__name__}: {error}"
        raise SourceError(f"cannot read tar {url!r}: {reason}") from None


def _items(url: str, options: dict[str, Any] | None, read: bool, limit: int | None) -> Iterator[_Members]:
    with _open(url, options) as stream:
        try:
            tar = tarfile.open(fileobj=stream, mode="r|*")
        except (tarfile.TarError, EOFError) as error:
            raise SourceError(f"{url!r} is not a readable tar: {error}") from None
        with tar:
            for count, members in enumerate(_groups(tar, read)):
                if limit is not None and count >= limit:
                    return
                yield members


def count_tar_items(url: str, options: dict[str, Any] | None = None, limit: int | None = None) -> int:
    """How many items `read_tar` yields for this tar (at most `limit`), without keeping member data."""
    return sum(1 for _ in _items(url, options, read=False, limit=limit))


def read_tar(url: str, options: dict[str, Any] | None = None, limit: int | None = None) -> Iterator[TarItem]:
    """The tar's items in member order (the first `limit` of them)."""
    tar_name = url.rstrip("/").rpartition("/")[2]
    seen: set[int] = set()
    for members in _items(url, options, read=True, limit=limit):
        file_name = f"{tar_name}/{members.image_name or members.key}"
        entry = item_entry(
            members.key,
            file_name,
            alt_text=members.texts.get("txt"),
            metadata=members.texts.get("json"),
            seen=seen,
        )
        if members.skipped:
            entry.counters["source_members_ignored"] = members.skipped
        if members.cut:
            entry.counters["source_tar_truncated"] = 1
            entry.failure = errors.FAILED_DECODE
            entry.failure_message = f"the tar ends inside this item ({members.cut})"[:500]
        elif members.image is None:
            found = ", ".join(f"KEY.{ext}" for ext in sorted(members.texts)) or "no member"
            entry.failure = errors.FAILED_MISSING
            entry.failure_message = f"no image member for key {members.key!r} in {tar_name} (found {found})"
        yield TarItem(entry, None if entry.failure or entry.duplicate else members.image)
