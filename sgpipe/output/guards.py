"""The output folder's run-level guards: the single-writer lock and the config check on resume."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from sgpipe.errors import ConfigMismatchError, OutputLockedError
from sgpipe.storage import Location, RemotePath, location


class OutputLock:
    """An exclusive `flock` on `OUT/.sgpipe/lock`.

    The kernel drops the lock when its process dies, so a killed run never leaves it stuck; the
    file's text (host, pid) only serves the error message of the run that was refused.
    """

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / ".sgpipe" / "lock"
        self._handle = None

    def __enter__(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputLockedError(
                f"output folder {str(self.path.parent.parent)!r} is in use by a running sgpipe ({holder}); "
                "wait for it to finish or choose another output.dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"host={socket.gethostname()} pid={os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def lock_output(out_dir: Location, lease_seconds: float) -> Any:
    """`flock` for a local folder; a lease object for a remote one (object stores have no `flock`)."""
    if isinstance(out_dir, RemotePath):
        from sgpipe.output.lease import Lease

        return Lease(out_dir, lease_seconds)
    return OutputLock(out_dir)


def check_resume(out_dir: Location, config_hash: str, force: bool) -> dict | None:
    """Return the previous run.json, refusing a different config unless forced."""
    path = location(out_dir) / "run.json"
    if not path.exists():
        return None
    previous = json.loads(path.read_text())
    if previous.get("config_hash") != config_hash and not force:
        raise ConfigMismatchError(
            f"{str(out_dir)!r} holds a run with config hash {previous.get('config_hash')} "
            "but this config hashes "
            f"to {config_hash}: its shards would mix two configurations. Use another output.dir, or --force "
            "to resume anyway (complete shards are kept as they are)" + _engine_hint(previous)
        )
    return previous


def _engine_hint(previous: dict) -> str:
    """Runs from before `caption.engine` existed captioned with transformers' generate."""
    caption = (previous.get("config") or {}).get("caption") or {}
    if caption.get("enabled") and "engine" not in caption:
        return (
            ". It was captioned before caption.engine existed, by transformers' generate: "
            "--set caption.engine=transformers resumes it as it was"
        )
    return ""
