"""What every `sgpipe` command shares: how expected errors become one line and an exit status, and
the options for storage and overrides."""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, TypeVar

import typer

from sgpipe.errors import SgpipeError

F = TypeVar("F", bound=Callable[..., Any])

SET_HELP = "Override a config key, e.g. --set output.samples_per_shard=500 (repeatable)."
STORAGE_HELP = (
    "fsspec options for URLs (s3://, gs://), YAML or JSON, as run's output.storage_options, e.g. "
    '\'{"endpoint_url": "http://minio:9000"}\' (default: the store\'s environment, e.g. AWS_ENDPOINT_URL).'
)
CORPUS_HELP = "An sgpipe output folder: a path or an fsspec URL (s3://bucket/out)."


def user_errors(*also: type[Exception], on_interrupt: str = "") -> Callable[[F], F]:
    """A command's expected errors (`SgpipeError`, and `also`) become one red line and their exit status
    (`exit_code`: 2, a stopped run's own, 128 + signal when interrupted); anything else keeps its
    traceback. With `on_interrupt`, a Ctrl-C the command did not handle itself prints that line, exit 130."""
    caught = (SgpipeError, *also)

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def run_command(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except caught as error:
                typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
                raise typer.Exit(getattr(error, "exit_code", 2)) from None
            except KeyboardInterrupt:
                if not on_interrupt:
                    raise
                typer.secho(on_interrupt, err=True)
                raise typer.Exit(130) from None

        return run_command  # type: ignore[return-value]

    return decorate


def storage_option() -> Any:
    return typer.Option(None, "--storage-options", help=STORAGE_HELP)


def storage_from(text: Optional[str]) -> dict[str, Any]:
    from sgpipe.tools.locations import parse_storage_options

    return parse_storage_options(text)
