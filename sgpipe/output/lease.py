"""The single-writer guard of a remote output folder: a lease object, since object stores have no `flock`.

`OUT/.sgpipe/lease.json` holds an owner id (host, pid, a random part) and an expiry. The holder
renews it every third of its lifetime; a killed run stops renewing and its lease lapses, after
which the next run takes it over. Two runs racing for it are decided by the store:

- S3 (and S3-compatible stores): conditional writes. A new lease is created with `If-None-Match: *`,
  a lapsed one replaced and a held one renewed with `If-Match: <ETag read>`; the loser gets
  412 Precondition Failed and is refused.
- Other stores: write, wait `SETTLE_S`, read back; only the run whose owner id is read back holds it
  (a racer that wrote later is read back by both, so the earlier one steps aside).

Expiry is wall-clock time: the machines' clocks must agree to within a small part of the lifetime
(NTP does that).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from sgpipe.errors import OutputLockedError, SgpipeError
from sgpipe.storage import RemotePath

log = logging.getLogger(__name__)
SETTLE_S = 2.0
CONDITIONAL_PROTOCOLS = ("s3", "s3a")


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


class Lease:
    """Context manager: acquire (or refuse with `OutputLockedError`), renew in a thread, release."""

    def __init__(self, out_dir: RemotePath, seconds: float, clock: Any = time.time):
        self.path = out_dir / ".sgpipe" / "lease.json"
        self.seconds = float(seconds)
        self.clock = clock
        self.owner = f"host={socket.gethostname()} pid={os.getpid()} id={uuid.uuid4().hex[:12]}"
        self.etag: str | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def conditional(self) -> bool:
        return self.path.protocol in CONDITIONAL_PROTOCOLS

    def read(self) -> tuple[dict[str, Any] | None, str | None]:
        """(lease, its ETag), or (None, None) when there is none. ETag first, then content: a
        content newer than the ETag can only make a conditional write fail, never wrongly succeed."""
        try:
            info = self.path.info()
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, None
        try:
            lease = json.loads(data)
        except ValueError:
            lease = {"owner": "unreadable lease", "expires": 0.0}  # torn or foreign: treated as lapsed
        return lease, str(info.get("ETag") or "") or None

    def _body(self) -> bytes:
        now = self.clock()
        return json.dumps(
            {
                "owner": self.owner,
                "expires": now + self.seconds,
                "renewed": now,
                "expires_at": _when(now + self.seconds),
            }
        ).encode()

    def _put(self, etag: str | None) -> None:
        """Write our lease: created only if absent (`etag` None) or replacing exactly `etag`."""
        if not self.conditional:
            self.path.fs.pipe_file(self.path.path, self._body())
            return
        # s3fs hands extra keywords to PutObject (botocore > 1.35.20 knows these two)
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        response = self.path.fs.pipe_file(self.path.path, self._body(), **condition)
        self.etag = (response or {}).get("ETag") if isinstance(response, dict) else None

    def _refuse(self, lease: dict[str, Any] | None) -> OutputLockedError:
        holder = (lease or {}).get("owner", "another run")
        until = (lease or {}).get("expires_at", "soon")
        return OutputLockedError(
            f"output folder {str(self.path.parent.parent)!r} is in use by a running sgpipe ({holder}); its "
            f"lease runs until {until} and is renewed while that run lives (a killed run's lapses then). "
            "Wait for it to finish or choose another output.dir"
        )

    def acquire(self) -> None:
        lease, etag = self.read()
        if lease is not None and float(lease.get("expires", 0)) > self.clock():
            raise self._refuse(lease)
        try:
            self._put(etag)
        except OSError as error:
            if isinstance(error, FileNotFoundError) or not self._precondition_failed(error):
                raise SgpipeError(
                    f"cannot write the output lease {self.path} (does the bucket exist, may these "
                    f"credentials write to it?): {type(error).__name__}: {error}"
                ) from error
            raise self._refuse(self.read()[0]) from None
        if not self.conditional:
            time.sleep(SETTLE_S)
            current, _ = self.read()
            if (current or {}).get("owner") != self.owner:
                raise self._refuse(current)

    @staticmethod
    def _precondition_failed(error: OSError) -> bool:
        import errno

        return isinstance(error, FileExistsError) or error.errno == errno.EINVAL or "412" in str(error)

    def renew(self) -> None:
        """Extend our lease; record it as lost if another run holds it now."""
        try:
            if self.conditional:
                if self.etag is None:  # a store that returned no ETag: read it, and check it is ours
                    current, self.etag = self.read()
                    if (current or {}).get("owner") != self.owner:
                        self.lost = f"taken over by {(current or {}).get('owner', 'nobody (deleted)')}"
                        return
                self._put(self.etag)  # If-Match: only our own last write may be replaced
            else:
                current, _ = self.read()
                if (current or {}).get("owner") != self.owner:
                    self.lost = f"taken over by {(current or {}).get('owner', 'nobody (deleted)')}"
                    return
                self._put(None)
        except OSError as error:
            if self.conditional and self._precondition_failed(error):
                current, _ = self.read()
                self.lost = f"taken over by {(current or {}).get('owner', 'nobody (deleted)')}"
            else:  # the store is unreachable for now: try again at the next renewal
                log.warning("could not renew the output lease %s: %s", self.path, error)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            self.renew()
            if self.lost:
                log.error("lost the output lease %s (%s): another run may be writing", self.path, self.lost)
                return

    def release(self) -> None:
        current, _ = self.read()
        if (current or {}).get("owner") == self.owner:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Lease":
        self.acquire()
        self._thread = threading.Thread(target=self._renew_loop, name="sgpipe-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost:
            if kind is None:
                raise OutputLockedError(f"the output lease {self.path} was lost during the run: {self.lost}")
            return
        self.release()
