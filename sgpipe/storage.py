"""Where sgpipe reads and writes: local paths stay `pathlib.Path` (atomic rename, `flock`), any other
fsspec URL (`s3://`, `gs://`, `az://`, ...) becomes a `RemotePath`.

fsspec rather than pyarrow.fs: it covers every store users name (s3fs, gcsfs, adlfs, and dozens more
through one registry), its S3 backend exposes conditional writes (If-None-Match / If-Match), which
the lease needs, and webdataset and Hugging Face `datasets` already speak it. pyarrow.fs knows S3,
GCS, Azure and HDFS only and offers no conditional put.

On an object store a single PUT (or a completed multipart upload) is atomic: the object appears
whole or not at all. `sgpipe.output.atomic` writes a `RemotePath` from a local temporary file
uploaded under its final name once whole (stores without that property, such as sftp or hdfs, get a
temporary name and a rename, as on POSIX). `file://` URLs are plain local paths.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, BinaryIO, Callable, TypeVar

from sgpipe.errors import SgpipeError

LOCAL_PROTOCOLS = ("file", "local")
# a PUT replaces an object atomically: final names can be written directly
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"})
BACKEND_PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_ONE_SLASH = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):/(?!/)")  # "s3:/bucket": a URL that lost a slash
T = TypeVar("T")
SECRET_WORDS = ("key", "secret", "token", "password", "credential", "sas")


def protocol_of(url: str | os.PathLike) -> str | None:
    match = _URL.match(str(url))
    return match.group(1).lower() if match else None


def is_remote(target: Any) -> bool:
    """A URL whose protocol is not local (or a `RemotePath`)."""
    if isinstance(target, RemotePath):
        return True
    if isinstance(target, Path):
        return False
    protocol = protocol_of(target)
    return protocol is not None and protocol not in LOCAL_PROTOCOLS


def url_problem(url: str, key: str) -> str | None:
    """Why `url` cannot be used, in words that name the fix; None when it can."""
    if not url:
        return None
    if _ONE_SLASH.match(url):
        fixed = re.sub(r"^([^:]+):/", r"\1://", url)
        return f"{key}: {url!r} looks like a URL missing a slash; write {fixed!r}"
    protocol = protocol_of(url)
    if protocol is None or protocol in LOCAL_PROTOCOLS:
        return None
    import fsspec

    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        known = "s3, gs, az, hdfs, sftp, http, file"
        return f"{key}: unknown protocol {protocol + '://'!r} in {url!r} (fsspec knows e.g. {known})"
    except ImportError as error:
        package = BACKEND_PACKAGES.get(protocol)
        if package is None:  # fsspec's own message names the package
            return f"{key}: {url!r} needs an fsspec backend that is not installed: {error}"
        extra = " (or `pip install 'sgpipe[s3]'`)" if package == "s3fs" else ""
        return f"{key}: {url!r} needs {package}: `pip install {package}`{extra}"
    return None


def redact(options: dict[str, Any]) -> dict[str, Any]:
    """Storage options as they may be recorded (run.json): secret-looking values hidden, at any depth."""
    return {
        k: "***"
        if any(word in k.lower() for word in SECRET_WORDS)
        else (redact(v) if isinstance(v, dict) else v)
        for k, v in options.items()
    }


class RemotePath:
    """A file or folder on an fsspec filesystem, with the few `Path` methods sgpipe's writers use.

    Picklable (URL and options only): Ray workers rebuild the filesystem on first use. Listing
    caches are bypassed, since other processes write the same prefix.
    """

    __slots__ = ("url", "options", "_fs")

    def __init__(self, url: str, options: dict[str, Any] | None = None):
        self.url = url.rstrip("/")
        self.options = dict(options or {})
        self._fs = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.url, self.options, self._fs = state["url"], state["options"], None

    def __truediv__(self, name: str) -> "RemotePath":
        return RemotePath(f"{self.url}/{name}", self.options)

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemotePath({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    @property
    def protocol(self) -> str:
        return protocol_of(self.url) or ""

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def parent(self) -> "RemotePath":
        return RemotePath(self.url.rsplit("/", 1)[0], self.options)

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            self._fs = fsspec.filesystem(self.protocol, **self.options)
        return self._fs

    @property
    def path(self) -> str:
        """The URL without its protocol, as the filesystem's methods take it."""
        return self.fs._strip_protocol(self.url)

    def _fresh(self) -> None:
        self.fs.invalidate_cache(self.path)

    def exists(self) -> bool:
        self._fresh()
        return self.fs.exists(self.path)

    def is_file(self) -> bool:
        self._fresh()
        return self.fs.isfile(self.path)

    def info(self) -> dict[str, Any]:
        self._fresh()
        return self.fs.info(self.path)

    @property
    def _one_request(self) -> dict[str, Any]:
        """s3fs asks for an object's size (a HEAD) before a GET unless told to fetch it in one part."""
        return {"max_concurrency": 1} if self.protocol in ("s3", "s3a") else {}

    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.path, **self._one_request)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def open(self, mode: str = "rb", **kwargs: Any) -> Any:
        return self.fs.open(self.path, mode, **kwargs)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        if self.protocol not in ATOMIC_PUT_PROTOCOLS:  # object stores have no folders to make
            self.fs.makedirs(self.path, exist_ok=True)

    def list_names(self) -> set[str]:
        """The names directly under this folder: one listing (paged by the store), not recursive."""
        self._fresh()
        try:
            entries = self.fs.ls(self.path, detail=False)
        except FileNotFoundError:
            return set()
        return {str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries}

    @property
    def atomic_put(self) -> bool:
        """Whether an upload appears whole or not at all (object stores), so it may go straight to its
        final name; `sgpipe.output.atomic` uploads through a temporary name and a rename otherwise."""
        return self.protocol in ATOMIC_PUT_PROTOCOLS

    def put(self, local: str | Path) -> None:
        self.fs.put_file(str(local), self.path)

    def put_many(self, local: list[Path], remote: list["RemotePath"]) -> None:
        """Several local files uploaded in one batched (concurrent) call."""
        if local:
            self.fs.put([str(p) for p in local], [r.path for r in remote])

    def move_to(self, target: "RemotePath") -> None:
        self.fs.mv(self.path, target.path)


Location = Path | RemotePath


def location(url: str | os.PathLike | RemotePath, options: dict[str, Any] | None = None) -> Location:
    """A `Path` for local paths and `file://` URLs, a `RemotePath` for any other fsspec URL."""
    if isinstance(url, (Path, RemotePath)):
        return url
    text = str(url)
    if is_remote(text):
        return RemotePath(text, options)
    if protocol_of(text) in LOCAL_PROTOCOLS:
        text = _URL.sub("", text, count=1)
    return Path(text)


def bucket_of(path: RemotePath) -> RemotePath | None:
    """The bucket (container) a URL on an object store lies in; None for stores without buckets."""
    if path.protocol not in ATOMIC_PUT_PROTOCOLS or path.protocol == "memory":
        return None
    return RemotePath(f"{path.protocol}://{path.path.strip('/').split('/', 1)[0]}", path.options)


def reach(action: Callable[[], T], url: str) -> T:
    """`action()` on the store holding `url`; a store that cannot be reached (credentials, endpoint,
    network) or a missing bucket is one `SgpipeError` that names the URL and the cause."""
    try:
        return action()
    except SgpipeError:
        raise
    except FileNotFoundError as error:
        raise SgpipeError(f"{url}: {error or 'not found'}") from error
    except Exception as error:  # noqa: BLE001 - botocore, gcsfs, aiohttp errors all said the same way
        raise SgpipeError(f"cannot reach {url}: {type(error).__name__}: {error}") from error


def absent_reason(path: RemotePath, otherwise: str = "nothing there (no object under that prefix)") -> str:
    """Why nothing is at `path`: its bucket is missing (or hidden from these credentials), or `otherwise`."""
    bucket = bucket_of(path)
    if bucket is not None and not reach(bucket.exists, bucket.url):
        return (
            f"{path.url}: no such bucket {bucket.url!r} (or not visible with these credentials and options)"
        )
    return f"{path.url}: {otherwise}"


def listing(folder: Location) -> set[str] | None:
    """One listing of a remote folder's names; None for a local folder (its code stats files)."""
    return folder.list_names() if isinstance(folder, RemotePath) else None


def read_all(paths: list[RemotePath]) -> list[bytes]:
    """The contents of files on one filesystem, fetched concurrently (one batched call)."""
    if not paths:
        return []
    first = paths[0]
    contents = first.fs.cat([p.path for p in paths], **first._one_request)
    return [contents[p.path] for p in paths]


def open_binary(path: Location) -> BinaryIO:
    """A file to read, local or remote (remote reads are buffered in blocks, never fetched whole)."""
    if isinstance(path, RemotePath):
        return path.open("rb")
    return open(path, "rb")


def fingerprint(path: Location) -> dict[str, Any]:
    """What identifies a file's version: size and modification time (local) or ETag (object stores)."""
    if isinstance(path, Path):
        stat = path.stat()
        return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    info = path.info()
    version = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("LastModified")
    return {"path": path.url, "size": int(info.get("size") or 0), "version": str(version)}


def size_of(path: Location) -> int:
    return path.stat().st_size if isinstance(path, Path) else int(path.info().get("size") or 0)
