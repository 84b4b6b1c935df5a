"""Hashes of one image file: md5 of its bytes, and a 256-bit perceptual hash of its pixels.

The perceptual hash is imagehash's `phash` with hash_size 16 (DCT of a 64x64 greyscale thumbnail,
16x16 low frequencies against their median): re-encoding, resizing and small crops move few of its
bits, distinct images differ in about half. 256 bits rather than the default 64: distinct images'
distances spread half as wide relative to their mean, which separates copies from look-alikes by
6-7 standard deviations instead of 4-5 (benchmarks/bench_leakage.py) - the difference between a
handful and tens of thousands of false matches over 1.7M x 100k pairs. JPEGs are decoded at reduced
scale (libjpeg's DCT scaling via `Image.draft`), which the 64x64 thumbnail cannot tell from a full
decode but costs a fraction of it.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import imagehash
import numpy as np
from PIL import Image

HASH_SIZE = 16
HASH_BITS = HASH_SIZE * HASH_SIZE
DRAFT_SIZE = (128, 128)  # at least twice phash's 64x64 thumbnail, whatever the JPEG scale chosen

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class FileHashes:
    md5: str
    phash: int | None  # None when the bytes are not a decodable image
    error: str = ""


def phash_of_image(image: Image.Image) -> int:
    bits = imagehash.phash(image, hash_size=HASH_SIZE).hash.flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hash_bytes(data: bytes) -> FileHashes:
    md5 = hashlib.md5(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            image.draft("L", DRAFT_SIZE)  # a no-op for formats other than JPEG
            return FileHashes(md5, phash_of_image(image))
    except Exception as error:  # noqa: BLE001 - PIL raises many types for bad files
        return FileHashes(md5, None, f"{type(error).__name__}: {error}"[:300])


def hash_file(path: Path) -> FileHashes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return FileHashes("", None, f"cannot read: {error.strerror}")
    return hash_bytes(data)


def bounded_map(fn: Callable[[T], R], items: Iterable[T], threads: int, window: int = 0) -> Iterator[R]:
    """`map(fn, items)` in a thread pool, in order, with at most `window` items in flight: memory
    stays bounded however many items there are (`Executor.map` would submit them all at once)."""
    window = window or 4 * threads
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="hash") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
