"""Reading shards back: shard specs (folder, file, brace pattern) and per-sample iteration."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from braceexpand import braceexpand

from sgpipe.errors import SgpipeError
from sgpipe.records import IMAGE_EXTENSIONS
from sgpipe.storage import RemotePath, absent_reason, location, open_binary, reach


@dataclass(slots=True)
class ShardSample:
    key: str
    record: dict[str, Any]
    image_bytes: bytes | None
    image_ext: str | None


def expand_urls(spec: str | Path, options: dict[str, Any] | None = None) -> list[str]:
    """A folder (its `NNNNN.tar` files), one `.tar`, or a brace pattern like `out/{00000..00009}.tar`;
    local or any fsspec URL (`s3://bucket/out`: one listing of that folder)."""
    text = str(spec)
    path = location(text, options)
    if isinstance(path, RemotePath):
        if "{" in text:
            return list(braceexpand(text))
        if text.endswith(".tar"):
            if not reach(path.is_file, text):
                raise SgpipeError(absent_reason(path, "no such shard"))
            return [text]
        listed = reach(path.list_names, text)
        names = sorted(n for n in listed if n.endswith(".tar") and not n.startswith("."))
        if not names:
            raise SgpipeError(f"no shards found at {text!r}" if listed else absent_reason(path))
        return [str(path / n) for n in names]
    if path.is_dir():
        urls = sorted(str(p) for p in path.glob("*.tar") if not p.name.startswith("."))
    elif "{" in text:
        urls = list(braceexpand(text))
    else:
        urls = [text]
    if not urls:
        raise SgpipeError(f"no shards found at {text!r}")
    missing = [u for u in urls if "://" not in u and not Path(u).is_file()]
    if missing:
        raise SgpipeError(f"shard file(s) not found: {', '.join(missing[:5])}")
    return urls


def split_member_name(name: str) -> tuple[str, str]:
    """`coco-000000000009.json` -> (key, "json"): keys never contain dots."""
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")
    return key, ext


@dataclass(slots=True)
class KeyMembers:
    """One sample's raw tar members, `(file name, bytes)` in tar order."""

    key: str
    members: list[tuple[str, bytes]] = field(default_factory=list)

    def record(self) -> dict[str, Any] | None:
        for name, data in self.members:
            if split_member_name(name)[1] == "json":
                return json.loads(data)
        return None


def iter_key_members(urls: list[str], options: dict[str, Any] | None = None) -> Iterator[KeyMembers]:
    """Each sample's members, in order; a key's members are adjacent, as the writer puts them."""
    for url in urls:
        current: KeyMembers | None = None
        with open_binary(location(url, options)) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _ = split_member_name(member.name)
                if current is None or key != current.key:
                    if current is not None:
                        yield current
                    current = KeyMembers(key)
                handle = tar.extractfile(member)
                current.members.append((member.name.rsplit("/", 1)[-1], handle.read() if handle else b""))
        if current is not None:
            yield current


def iter_shard_samples(urls: list[str] | str, options: dict[str, Any] | None = None) -> Iterator[ShardSample]:
    """Yield samples in tar order, with the record parsed and the image bytes picked out."""
    if isinstance(urls, (str, Path)):
        urls = expand_urls(urls, options)
    for item in iter_key_members(urls, options):
        members = {split_member_name(name)[1]: data for name, data in item.members}
        yield _to_sample(item.key, members)


def _to_sample(key: str, members: dict[str, bytes]) -> ShardSample:
    record = json.loads(members["json"]) if "json" in members else {}
    image_ext = next((ext for ext in members if ext in IMAGE_EXTENSIONS), None)
    return ShardSample(
        key=key,
        record=record,
        image_bytes=members.get(image_ext) if image_ext else None,
        image_ext=image_ext,
    )
