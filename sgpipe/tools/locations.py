"""Where the shard tools read and write: a local path or any fsspec URL (`s3://`, `gs://`, `file://`),
with the storage options `run` takes for `output.dir` (`--storage-options`, else the store's own
environment, e.g. `AWS_ENDPOINT_URL`).

Reading a folder that is not there, writing into a bucket that is not there, or a store that cannot
be reached is one `SgpipeError` naming the URL and the cause, checked before any work. Every file
is then written through `sgpipe.output.atomic`: on an object store it is uploaded under its final
name once whole, so a reader never sees a torn file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sgpipe.errors import SgpipeError
from sgpipe.storage import Location, RemotePath, absent_reason, bucket_of, location, reach, url_problem

SHARD_TAR = re.compile(r"[0-9]{5}\.tar")


def parse_storage_options(text: str | dict | None) -> dict[str, Any]:
    """`--storage-options` text (a YAML or JSON mapping) -> the fsspec options; empty when not given."""
    if text is None or isinstance(text, dict):
        return dict(text or {})
    try:
        value = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as error:
        raise SgpipeError(f"--storage-options: not a YAML/JSON mapping: {error}") from error
    if not isinstance(value, dict):
        raise SgpipeError(
            f"--storage-options: expected a mapping such as '{{\"endpoint_url\": ...}}', got {text!r}"
        )
    return value


def _location(url: str | Location, options: dict[str, Any] | None, what: str) -> Location:
    if not isinstance(url, (Path, RemotePath)):
        problem = url_problem(str(url), what)
        if problem:
            raise SgpipeError(problem)
    return location(url, options)


def names_in(folder: Location) -> set[str]:
    """The names directly under `folder` (one listing on an object store); empty when it is absent."""
    if isinstance(folder, RemotePath):
        return reach(folder.list_names, folder.url)
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def existing_folder(url: str | Location, options: dict[str, Any] | None = None) -> Location:
    """A folder to read (an output folder): a clear error when it is not there."""
    folder = _location(url, options, "folder")
    if isinstance(folder, RemotePath):
        if not names_in(folder):
            raise SgpipeError(absent_reason(folder))
    elif not folder.exists():
        raise SgpipeError(f"{folder} does not exist")
    elif not folder.is_dir():
        raise SgpipeError(f"{folder} is not a folder")
    return folder


def existing_file(url: str | Location, options: dict[str, Any] | None = None) -> Location:
    """A file to read: a clear error when it is not there."""
    path = _location(url, options, "file")
    if isinstance(path, RemotePath):
        if not reach(path.is_file, path.url):
            raise SgpipeError(absent_reason(path, "no such object"))
    elif not path.is_file():
        raise SgpipeError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    return path


def _require_bucket(path: RemotePath) -> None:
    bucket = bucket_of(path)
    if bucket is not None and not reach(bucket.exists, bucket.url):
        raise SgpipeError(absent_reason(bucket) + ": create it first")


def new_corpus_folder(url: str | Location, options: dict[str, Any] | None = None) -> Location:
    """A folder to write shards into (made by the first shard written), its bucket checked when
    remote; a folder already holding shards is refused (a second corpus would mix with the first)."""
    folder = _location(url, options, "output folder")
    if isinstance(folder, RemotePath):
        _require_bucket(folder)
    elif folder.exists() and not folder.is_dir():
        raise SgpipeError(f"{folder} exists and is not a folder")
    if any(SHARD_TAR.fullmatch(name) for name in names_in(folder)):
        raise SgpipeError(f"{folder} already holds shards: remove them or choose another folder")
    return folder


def new_file(url: str | Location, options: dict[str, Any] | None = None) -> Location:
    """A file to write (export, report): its local folder made, or its bucket checked."""
    path = _location(url, options, "output file")
    if isinstance(path, RemotePath):
        _require_bucket(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def files_matching(folder: Location, pattern: re.Pattern[str]) -> list[Location]:
    """The files directly under `folder` whose whole name matches `pattern`, sorted by name."""
    return [folder / name for name in sorted(names_in(folder)) if pattern.fullmatch(name)]


def sibling(path: Location, name: str) -> Location:
    return path.parent / name


def stem(path: Location) -> str:
    """`pseudo.json` -> `pseudo` (as `Path.stem`, for URLs too)."""
    name = path.name
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
