"""A real S3 API on the loopback address (moto's server mode), for tests of `s3://` URLs.

Credentials are dummy values in the standard AWS environment variables (set before any Ray
worker starts, so workers inherit them); the endpoint travels in fsspec storage options, as a
user's would for MinIO or any S3-compatible store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Iterator

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def s3_server(bucket: str = "bucket") -> Iterator[dict]:
    """Start moto's S3 server, create `bucket`; yields the fsspec storage options."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    saved = {k: os.environ.get(k) for k in DUMMY_CREDENTIALS}
    os.environ.update(DUMMY_CREDENTIALS)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        options = {"endpoint_url": f"http://127.0.0.1:{port}"}
        # moto keeps its buckets per process, not per server: start from an empty store
        urllib.request.urlopen(
            urllib.request.Request(f"{options['endpoint_url']}/moto-api/reset", method="POST")
        )
        s3(options).mkdir(bucket)
        yield options
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def s3(options: dict):
    import fsspec

    return fsspec.filesystem("s3", **options)


def upload_folder(options: dict, local: Path, url: str) -> None:
    fs = s3(options)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.put_file(str(path), f"{url.removeprefix('s3://')}/{path.relative_to(local).as_posix()}")


def object_bytes(
    options: dict, url: str, suffixes: tuple[str, ...] = (".tar", ".parquet")
) -> dict[str, bytes]:
    """Name -> bytes of the objects directly under `url` ending in `suffixes`."""
    fs = s3(options)
    fs.invalidate_cache()
    names = sorted(p for p in fs.ls(url.removeprefix("s3://"), detail=False) if p.endswith(suffixes))
    return {name.rsplit("/", 1)[-1]: fs.cat_file(name) for name in names}


WRITES = ("PutObject", "CreateMultipartUpload", "CopyObject", "DeleteObject", "DeleteObjects")


class S3Calls:
    """Counts the S3 operations this process's s3fs client makes (bucket, operation, prefix/key)."""

    def __init__(self, options: dict):
        self.calls: Counter[tuple[str, str]] = Counter()
        self.listed_prefixes: list[str] = []
        self.list_sizes: list[int | None] = []  # MaxKeys: 1 for s3fs's probe of a missing key
        self.written_keys: list[tuple[str, str]] = []  # (operation, key) of every write, copy and delete
        client = s3(options).s3  # created on connect; the same cached instance the code under test uses
        client.meta.events.register("before-parameter-build.s3.*", self._record)

    def _record(self, params: dict, model, **kwargs) -> None:
        self.calls[(model.name, params.get("Bucket", ""))] += 1
        if model.name in WRITES:
            self.written_keys.append((model.name, params.get("Key", "")))
        if model.name.startswith("ListObjects"):
            self.listed_prefixes.append(params.get("Prefix", ""))
            self.list_sizes.append(params.get("MaxKeys"))

    def count(self, operation: str) -> int:
        return sum(n for (op, _), n in self.calls.items() if op == operation)
