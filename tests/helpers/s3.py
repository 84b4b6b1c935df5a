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


class Refusal:
    """What the server refuses, as a store answers when its quota is full or its policy denies writes:
    once `after` objects ending in `suffix` were written, every PUT and POST gets `code` (an S3 error
    document with that HTTP `status`) until `lift()`."""

    def __init__(self) -> None:
        self.code, self.status, self.after, self.suffix, self.written = "", 0, 0, "_stats.json", 0

    def arm(self, code: str, status: int, after: int = 0, suffix: str = "_stats.json") -> None:
        self.code, self.status, self.after, self.suffix, self.written = code, status, after, suffix, 0

    def lift(self) -> None:
        self.code = ""

    def answer(self, method: str, path: str) -> tuple[int, bytes] | None:
        if not self.code or method not in ("PUT", "POST"):
            return None
        if self.written < self.after:
            self.written += path.split("?")[0].endswith(self.suffix)
            return None
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>' + self.code + "</Code><Message>"
            "writes refused by the test server</Message><RequestId>0</RequestId></Error>"
        )
        return self.status, body.encode()


def _refusing(app, refusal: Refusal):
    """A WSGI middleware: the refusal's answer to the writes it refuses, moto's to everything else."""

    def serve(environ, start_response):
        answer = refusal.answer(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        if answer is None:
            return app(environ, start_response)
        status, body = answer
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))  # the client sends it whole
        start_response(
            f"{status} Refused", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return serve


@contextlib.contextmanager
def s3_server(bucket: str = "bucket", refusal: Refusal | None = None) -> Iterator[dict]:
    """Start moto's S3 server (refusing writes as `refusal` says), create `bucket`; yields the
    fsspec storage options."""
    from moto.server import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        ThreadedMotoServer,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class Server(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            if refusal is not None:
                app = _refusing(app, refusal)
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    saved = {k: os.environ.get(k) for k in DUMMY_CREDENTIALS}
    os.environ.update(DUMMY_CREDENTIALS)
    port = _free_port()
    server = Server(ip_address="127.0.0.1", port=port, verbose=False)
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
