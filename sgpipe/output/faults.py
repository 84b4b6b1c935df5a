"""Which write errors are the output's fault: a full disk or quota, a read-only file system, writes
refused (permissions, an object store's policy or quota). Such an error fails every shard the same
way, so it stops the run at once (`OutputFault`) instead of being retried shard after shard and
counted against the images."""

from __future__ import annotations

import errno

from sgpipe.errors import OutputFault

CAUSES = {
    errno.ENOSPC: "no space left on the device (ENOSPC)",
    errno.EDQUOT: "the disk quota is exceeded (EDQUOT)",
    errno.EROFS: "the file system is read-only (EROFS)",
    errno.EACCES: "permission denied (EACCES)",
    errno.EPERM: "operation not permitted (EPERM)",
}
# what object stores answer when full or over a quota (MinIO, Ceph RGW, S3-compatible services)
STORE_FULL_WORDS = ("StorageFull", "QuotaExceeded", "InsufficientStorage", "Insufficient Storage")


def output_fault(error: BaseException, where: object) -> OutputFault | None:
    """The `OutputFault` that `error`, raised writing `where` (a file, or a folder when the error
    names no file), stands for; None for other errors."""
    if isinstance(error, OutputFault):
        return error
    if not isinstance(error, OSError):
        return None
    place = str(where)
    if error.errno in CAUSES:
        return OutputFault(CAUSES[error.errno], place)
    code = _store_code(error)
    text = f"{code}: {error}" if code else str(error)
    if any(word in text for word in STORE_FULL_WORDS):
        return OutputFault(f"the store is full or over its quota ({text[:160]})", place)
    if isinstance(error, PermissionError):  # an object store's 403: its policy refuses the write
        return OutputFault(f"writing is refused ({text[:160] or 'permission denied'})", place)
    return None


def _store_code(error: OSError) -> str:
    """The object store's own error code (`AccessDenied`), which fsspec's backends keep as the cause."""
    response = getattr(error.__cause__, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
