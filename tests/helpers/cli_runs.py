"""`sgpipe run` as a user runs it: in this process (typer's test runner) or in a process of its own that a
test can kill or signal, then the output folder is read.

A test that needs other stages (a pause so a kill meets the run mid-way, a poison, a flaky stage) names a
stage factory of `tests.helpers.runs`. `stage_factory` is the one place in the tests that knows where the
runner's entry point lives.

    python -m tests.helpers.cli_runs FACTORY|- run RECIPE [OPTIONS]   # what `start_run` launches
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import yaml

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def stage_factory(name: str | None) -> Iterator[None]:
    """Within the block, `sgpipe run` builds its stages with `tests.helpers.runs.<name>`."""
    if not name or name == "-":
        yield
        return
    import sgpipe.run as entry  # `sgpipe run` imports run_pipeline from the package when it starts
    from tests.helpers import runs

    original = entry.run_pipeline
    entry.run_pipeline = functools.partial(original, stage_factory=getattr(runs, name))
    try:
        yield
    finally:
        entry.run_pipeline = original


def write_recipe(config, path: Path) -> Path:
    """A `PipelineConfig` as the YAML recipe a user would pass to `sgpipe run`."""
    path.write_text(yaml.safe_dump(config.to_dict()))
    return path


def invoke(args: list[str], factory: str | None = None):
    """`sgpipe ARGS` in this process (it reuses the test module's Ray); a click `Result`."""
    from typer.testing import CliRunner

    from sgpipe.cli import app

    with stage_factory(factory):
        return CliRunner().invoke(app, [str(a) for a in args])


def start_run(
    recipe: Path, *options: str, factory: str | None = None, capture: bool = False
) -> subprocess.Popen:
    """`sgpipe run RECIPE --no-progress OPTIONS` in a session of its own (so its Ray workers can be
    killed with it); stdout and stderr are captured as text with `capture`, else discarded."""
    args = [sys.executable, "-m", "tests.helpers.cli_runs", factory or "-", "run", str(recipe), *options]
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [*args, "--no-progress"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
        stdout=output,
        stderr=output,
        text=True,
    )


def wait_for(
    condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 120, poll: float = 0.002
) -> None:
    """Check `condition` every `poll` seconds until it holds, the process ends or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not condition() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(poll)


def kill_after_shards(
    process: subprocess.Popen,
    complete: Callable[[], int],
    shards: int,
    total: int,
    timeout: float = 120,
    poll: float = 0.002,
) -> int:
    """SIGKILL the run's whole process group (driver and workers at once) once `complete()` reports
    `shards` complete shards; fails unless that many were complete and fewer than `total` (a kill that
    came too early or too late would make the test a fresh run or a rerun). Returns the count."""
    wait_for(lambda: complete() >= shards, process, timeout, poll)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = complete()
    assert shards <= done < total, f"{done} of {total} shards were complete when killed, not {shards} or more"
    return done


def main(argv: list[str]) -> None:
    from sgpipe.cli import app

    with stage_factory(argv[0]):
        app(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
