"""Reading shards back: shard specs (folder, file, brace pattern) and per-sample iteration."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from braceexpand import braceexpand

from sgpipe.errors import SgpipeError
from sgpipe.records import IMAGE_EXTENSIONS


@dataclass(slots=True)
class ShardSample:
    key: str
    record: dict[str, Any]
    image_bytes: bytes | None
    image_ext: str | None


def expand_urls(spec: str | Path) -> list[str]:
    """A folder (its `NNNNN.tar` files), one `.tar`, or a brace pattern like `out/{00000..00009}.tar`."""
    text = str(spec)
    path = Path(text)
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


def iter_shard_samples(urls: list[str] | str) -> Iterator[ShardSample]:
    """Yield samples in tar order; a key's members are adjacent, as the writer puts them."""
    if isinstance(urls, (str, Path)):
        urls = expand_urls(urls)
    for url in urls:
        yield from _iter_tar(url)


def _iter_tar(url: str) -> Iterator[ShardSample]:
    current: dict[str, Any] = {}
    current_key: str | None = None
    with tarfile.open(url, mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, ext = split_member_name(member.name)
            if key != current_key and current_key is not None:
                yield _to_sample(current_key, current)
                current = {}
            current_key = key
            handle = tar.extractfile(member)
            current[ext] = handle.read() if handle else b""
    if current_key is not None:
        yield _to_sample(current_key, current)


def _to_sample(key: str, members: dict[str, bytes]) -> ShardSample:
    record = json.loads(members["json"]) if "json" in members else {}
    image_ext = next((ext for ext in members if ext in IMAGE_EXTENSIONS), None)
    return ShardSample(
        key=key,
        record=record,
        image_bytes=members.get(image_ext) if image_ext else None,
        image_ext=image_ext,
    )
