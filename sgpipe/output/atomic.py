"""Atomic files: every file sgpipe writes goes through `atomic_file`.

The content goes to a temporary name in the same folder (a rename never crosses file systems), is
flushed and fsynced, then renamed over the final name: a reader, or a run resumed after a crash,
sees the old file or the whole new one, never a torn one. Where a file marks others complete (a
shard's `_stats.json`, the plan's manifest), the folder is fsynced too, so the renames it vouches
for reach the disk before it does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import IO, Any, Iterator


def temp_sibling(path: Path) -> Path:
    """`.NAME.tmpPID` beside `path`: hidden, and never the name of a finished file."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def fsync_folder(folder: Path) -> None:
    """Make the renames in `folder` durable (a no-op where the file system cannot sync a folder)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "wb", *, sync_folder: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing (`"wb"`, or `"w"` for UTF-8 text); on a clean
    exit fsync it and rename it to `path`, on an error remove it."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_folder:
        fsync_folder(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, *, sync_folder: bool = False) -> None:
    with atomic_file(path, sync_folder=sync_folder) as handle:
        handle.write(data)


def write_json_atomic(path: str | Path, value: Any, *, sync_folder: bool = False) -> None:
    """Indented UTF-8 JSON, the format of every run-level JSON file."""
    data = (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    atomic_write_bytes(path, data, sync_folder=sync_folder)
