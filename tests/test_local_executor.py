"""The local executor: a run in this process, without Ray, with the Ray pool's guarantees: attempts
retried to the back of the queue, a time limit that abandons a shard, the same bytes. (Signals: the
command-line tests of tests/test_supervision.py; the error-rate stop, resume and redo: test_runner,
test_redo; the lease: test_object_store.)"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from sgpipe.errors import ShardsFailed
from sgpipe.output.failed_shards import failed_shards_path
from sgpipe.pipeline import build_stages
from sgpipe.run import run_pipeline
from sgpipe.run.layout import choose_executor
from sgpipe.stages.base import Stage
from tests.helpers.coco_fixture import make_coco_with_bad_images
from tests.helpers.outputs import shard_bytes
from tests.helpers.runs import QUIET, stages_with_a_slow_image, tiny_run_config


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    paths = make_coco_with_bad_images(root)
    reference = root / "reference"
    run_pipeline(_config(paths, reference), QUIET)
    return paths, shard_bytes(reference)


def _config(paths, out, **overrides):
    settings = {"output__samples_per_shard": 1, "run__max_error_rate": 1.0, **overrides}
    return tiny_run_config(paths, out, **settings)


def test_one_worker_and_no_cluster_runs_in_this_process(small, tmp_path, monkeypatch):
    paths, _ = small
    config = _config(paths, tmp_path / "o")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert choose_executor(config, 5) == "local"
    assert choose_executor(_config(paths, tmp_path / "o", run__workers=2), 5) == "ray"
    assert choose_executor(_config(paths, tmp_path / "o", run__workers=2), 1) == "local"  # one shard to do
    assert choose_executor(_config(paths, tmp_path / "o", run__address="auto"), 5) == "ray"
    assert choose_executor(_config(paths, tmp_path / "o", run__executor="ray"), 5) == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert choose_executor(config, 5) == "ray"


def test_a_local_run_never_imports_ray(small, tmp_path):
    paths, reference = small
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from sgpipe.run import RunOptions, run_pipeline
        from tests.helpers.runs import tiny_run_config
        paths = {k: Path(v) for k, v in zip(("instances", "images", "captions"), sys.argv[1:4])}
        config = tiny_run_config(paths, sys.argv[4], output__samples_per_shard=1, run__max_error_rate=1.0)
        run_pipeline(config, RunOptions(progress=False))
        assert "ray" not in sys.modules, "ray was imported"
    """)
    args = [sys.executable, "-c", script, *(str(paths[k]) for k in ("instances", "images", "captions"))]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run(
        [*args, str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shard_bytes(tmp_path / "out") == reference


def test_a_shard_past_its_time_limit_is_abandoned_in_process_and_fails_alone(small, tmp_path):
    """Image 20's batch takes ten minutes: each attempt at its shard is stopped by the time limit,
    counted as timed out, retried after the others; past run.shard_attempts it fails alone."""
    paths, reference = small
    out = tmp_path / "out"
    config = _config(paths, out, run__shard_timeout_s=2)
    with pytest.raises(ShardsFailed) as raised:
        run_pipeline(config, QUIET, stage_factory=stages_with_a_slow_image)
    message = str(raised.value)
    assert "00001 after 3 attempts (running for more than 2 s (run.shard_timeout_s))" in message
    assert "Shards: 4 of 5 complete, 1 failed, 0 not written" in message
    (failed,) = json.loads(failed_shards_path(out).read_text())["failed"]
    assert (failed["shard"], failed["count"], failed["timed_out"], failed["workers_lost"]) == (
        "00001",
        3,
        3,
        0,
    )
    assert json.loads((out / "stats.json").read_text())["retries"]["timed_out"] == 3
    assert not [p.name for p in out.iterdir() if p.name.startswith(".0")]
    run_pipeline(config, QUIET)  # the slow stage gone: the same command writes the shard
    assert shard_bytes(out) == reference


class FailsFirstSetup(Stage):
    """Its first `setup()` raises (a model load that met a busy GPU): one attempt lost, then fine."""

    name = "flaky_setup"

    def __init__(self) -> None:
        super().__init__()
        self.setups = 0

    def setup(self) -> None:
        self.setups += 1
        if self.setups == 1:
            raise RuntimeError("CUDA error: out of memory while loading the model")

    def process(self, samples) -> None:
        pass


def stages_with_a_flaky_setup(config, categories):
    return build_stages(config, categories) + [FailsFirstSetup()]


def test_an_attempt_that_raises_is_retried_after_the_others_to_the_same_bytes(small, tmp_path, caplog):
    paths, reference = small
    out = tmp_path / "out"
    run_pipeline(_config(paths, out), QUIET, stage_factory=stages_with_a_flaky_setup)
    assert shard_bytes(out) == reference
    assert "shard 00000: attempt 1 failed (RuntimeError: CUDA error: out of memory" in caplog.text
    first = json.loads((out / "00000_stats.json").read_text())
    assert first["retries"]["attempts"] == {"count": 2, "workers_lost": 0, "timed_out": 0}
    # retried at the back of the queue: shard 00000 was committed after every other shard
    committed = {i: (out / f"0000{i}_stats.json").stat().st_mtime_ns for i in range(5)}
    assert max(committed, key=committed.get) == 0
