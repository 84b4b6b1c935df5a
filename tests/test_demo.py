"""`sgpipe demo` end to end at toy size: worlds, training, both pipeline runs, the report."""

import json

import pytest
from typer.testing import CliRunner

from sgpipe.cli import app


def test_demo_runs_every_step_and_reports_before_and_after(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--out",
            str(tmp_path / "demo"),
            "--images",
            "4",
            "--train-images",
            "8",
            "--train-steps",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    output = result.output
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in output
    assert "no captioner weights" in output  # the demo says where its captions come from
    assert "candidates (parse + tag, unverified): precision" in output
    assert "kept by the verifier" in output
    assert (tmp_path / "demo" / "verifier" / "final" / "model.safetensors").is_file()
    checkpoints = tmp_path / "demo" / "verifier" / "checkpoints"
    state = json.loads(next(checkpoints.glob("*/trainer_state.json")).read_text())
    assert state["step"] == 3  # a fixed number of steps, whatever the machine's load
    assert list((tmp_path / "demo" / "shards").glob("*_stats.json"))


def _demo_report(out, steps):
    result = CliRunner().invoke(
        app,
        ["demo", "--out", str(out), "--images", "8", "--train-images", "40", "--train-steps", str(steps)],
    )
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if "precision" in line]


@pytest.mark.slow
def test_the_same_command_gives_the_same_figures(tmp_path):
    """Steps, not seconds: two runs agree on the trained weights and every reported figure."""
    first, second = tmp_path / "a", tmp_path / "b"
    assert _demo_report(first, 12) == _demo_report(second, 12)
    weights = "verifier/final/model.safetensors"
    assert (first / weights).read_bytes() == (second / weights).read_bytes()
