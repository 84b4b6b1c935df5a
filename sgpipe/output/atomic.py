"""Atomic files: every file sgpipe writes goes through `atomic_file`.

Local folders: the content goes to a temporary name in the same folder (a rename never crosses file
systems), is flushed and fsynced, then renamed over the final name: a reader, or a run resumed after
a crash, sees the old file or the whole new one, never a torn one. Where a file marks others complete
(a shard's `_stats.json`, the plan's manifest), the folder is fsynced too, so the renames it vouches
for reach the disk before it does.

Object stores (a `RemotePath`, see `sgpipe.storage`): a single PUT is atomic there, so the content
goes to a local temporary file and is uploaded under its final name once whole; stores without that
property (sftp, hdfs, ...) get the temporary sibling and a rename, as on POSIX. Nothing there needs
fsyncing: a completed upload is durable.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from sgpipe.output.faults import output_fault
from sgpipe.storage import Location, RemotePath, location


def temp_sibling(path: Location) -> Location:
    """`.NAME.tmpPID` beside `path`: hidden, and never the name of a finished file."""
    return path.parent / f".{path.name}.tmp{os.getpid()}"


def temp_siblings(path: Location) -> list[Location]:
    """Every process's `temp_sibling` of `path` still there (what a killed writer left)."""
    return list(path.parent.glob(f".{path.name}.tmp*"))


def fsync_folder(folder: Location) -> None:
    """Make the renames in `folder` durable (a no-op where the file system cannot sync a folder, and
    on object stores, whose uploads are durable once complete)."""
    if isinstance(folder, RemotePath):
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def upload_whole(local: str | Path, path: RemotePath) -> None:
    """The local file `local` under `path`, visible there only once whole."""
    if path.atomic_put:
        path.put(local)
        return
    tmp = temp_sibling(path)
    tmp.put(local)
    tmp.move_to(path)


def upload_files_whole(local_folder: Path, names: Iterable[str], folder: RemotePath) -> None:
    """Local files to the same names under `folder`, each visible only once whole; in one batched
    (concurrent) call where a PUT is atomic."""
    names = list(names)
    if folder.atomic_put:
        folder.put_many([local_folder / n for n in names], [folder / n for n in names])
        return
    for name in names:
        upload_whole(local_folder / name, folder / name)


@contextlib.contextmanager
def _local_then_upload(path: RemotePath, mode: str) -> Iterator[IO[Any]]:
    descriptor, local = tempfile.mkstemp(prefix="sgpipe-upload-")
    try:
        with os.fdopen(descriptor, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
        upload_whole(local, path)  # only after a clean exit: an error uploads nothing
    finally:
        os.unlink(local)


@contextlib.contextmanager
def atomic_file(path: str | Location, mode: str = "wb", *, sync_folder: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary for `path` (`"wb"`, or `"w"` for UTF-8 text); on a clean exit it becomes
    `path` whole (fsync and rename locally, an upload on an object store), on an error it is removed.
    A write the output refuses (full, over quota, read-only, denied) raises `OutputFault`."""
    path = location(path)
    try:
        with _atomic_file(path, mode, sync_folder) as handle:
            yield handle
    except OSError as error:
        fault = output_fault(error, path)
        if fault is None:
            raise
        raise fault from error


@contextlib.contextmanager
def _atomic_file(path: Location, mode: str, sync_folder: bool) -> Iterator[IO[Any]]:
    if isinstance(path, RemotePath):
        with _local_then_upload(path, mode) as handle:
            yield handle
        return
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


def atomic_write_bytes(path: str | Location, data: bytes, *, sync_folder: bool = False) -> None:
    with atomic_file(path, sync_folder=sync_folder) as handle:
        handle.write(data)


def write_json_atomic(path: str | Location, value: Any, *, sync_folder: bool = False) -> None:
    """Indented UTF-8 JSON, the format of every run-level JSON file."""
    data = (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    atomic_write_bytes(path, data, sync_folder=sync_folder)
