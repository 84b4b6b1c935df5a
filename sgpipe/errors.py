"""Error types and the per-sample status values of the output contract."""

from __future__ import annotations

OK = "ok"
FAILED_MISSING = "failed_missing"
FAILED_DECODE = "failed_decode"
FAILED_TOO_LARGE = "failed_too_large"
FAILED_SIZE_MISMATCH = "failed_size_mismatch"
FAILED_DUPLICATE_ID = "failed_duplicate_id"
FAILED_CAPTION = "failed_caption"
FAILED_PARSE = "failed_parse"
FAILED_DETECT = "failed_detect"
FAILED_TAG = "failed_tag"
FAILED_VERIFY = "failed_verify"
# Not a failure: an image listed in `source.exclude` (an evaluation image, say). It gets a parquet row
# with the reason, no tar members, and does not count toward `run.max_error_rate`.
EXCLUDED = "excluded"

STATUSES = (
    OK,
    FAILED_MISSING,
    FAILED_DECODE,
    FAILED_TOO_LARGE,
    FAILED_SIZE_MISMATCH,
    FAILED_DUPLICATE_ID,
    FAILED_CAPTION,
    FAILED_PARSE,
    FAILED_DETECT,
    FAILED_TAG,
    FAILED_VERIFY,
    EXCLUDED,
)
NOT_FAILURES = (OK, EXCLUDED)


class SgpipeError(Exception):
    """Base of every error sgpipe raises on purpose; the CLI prints these without a traceback."""

    exit_code = 2


class ConfigError(SgpipeError):
    """One or more configuration problems, all reported together."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class SourceError(SgpipeError):
    """The dataset itself is unusable (malformed annotation JSON, wrong folder)."""


class ModelNotAvailableError(SgpipeError):
    """A model is neither a local folder nor in the cache, and the hub cannot be reached."""

    def __init__(self, model: str, role: str, hint: str = ""):
        message = (
            f"the {role} model {model!r} is not available offline: it is not a local folder and not in the "
            f"Hugging Face cache. Download it once on a machine with network access "
            f"(`huggingface-cli download {model} --local-dir DIR`) and pass the folder instead of the hub id"
        )
        if hint:
            message += f"; {hint}"
        super().__init__(message)
        self.model = model


class PreflightError(SgpipeError):
    """What the config points at and is not there or would fail every worker (files, folders, URLs,
    vocabularies, models), all listed, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            "the run cannot start; every problem found before any work:\n"
            + "\n".join(f"  - {p}" for p in self.problems)
        )


class OutputLockedError(SgpipeError):
    """Another live run holds the output folder."""


class ConfigMismatchError(SgpipeError):
    """Resuming into an output folder written with a different configuration."""


class RunStopped(SgpipeError):
    """A run that ended before every shard was written; complete shards are kept and a rerun resumes."""


class ErrorRateExceeded(RunStopped):
    """The failure rate says something is systematically wrong (a wrong images folder, say)."""


class ShardsFailed(RunStopped):
    """Shards that failed every attempt (a poison shard, say); the others were written."""


class Interrupted(RunStopped):
    """Stopped by SIGINT (Ctrl-C) or SIGTERM; exits 128 + the signal number, as a shell reports it."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_code = 128 + signal_number


class OutputFault(RunStopped):
    """The output cannot be written: a full disk or quota, a read-only file system, an object store
    refusing writes. The run's fault, not its images': it stops the run at once, counting no image
    as failed. `cause` says why, `where` the file or folder; `report` is the end-of-run paragraph
    once the run has stopped (then the message)."""

    def __init__(self, cause: str, where: str, report: str = ""):
        self.cause, self.where, self.report = cause, where, report
        super().__init__(report or f"cannot write {where}: {cause}")

    def __reduce__(self) -> tuple:  # pickled across processes (a Ray worker's write failed)
        return (type(self), (self.cause, self.where, self.report))
