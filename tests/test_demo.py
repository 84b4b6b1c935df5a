"""`sgpipe demo` end to end at toy size: worlds, training, both pipeline runs, the report; the same
command twice gives the same bytes."""

import json

import pytest
from typer.testing import CliRunner

from sgpipe.cli import app
from tests.helpers.outputs import shard_bytes

pytestmark = pytest.mark.usefixtures("local_ray")  # both demos' pipeline runs share one Ray

WEIGHTS = "verifier/final/model.safetensors"


def _demo(out, images, train_images, steps):
    args = ["demo", "--out", str(out), "--images", images, "--train-images", train_images]
    result = CliRunner().invoke(app, [*args, "--train-steps", str(steps)])
    assert result.exit_code == 0, result.output
    return result.output


def _figures(output):
    return [line for line in output.splitlines() if "precision" in line]


@pytest.fixture(scope="module")
def short_demos(tmp_path_factory):
    """The same short command run twice (3 training steps: the demo counts steps, not seconds), the
    first run's folder moved aside (the recipe's paths are part of the records' config hash)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    first_output = _demo(out, "4", "8", 3)
    first = out.rename(out.with_name("first"))
    return [(first, first_output), (out, _demo(out, "4", "8", 3))]


def test_demo_runs_every_step_and_reports_before_and_after(short_demos):
    out, output = short_demos[0]
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in output
    assert "no captioner weights" in output  # the demo says where its captions come from
    assert "candidates (parse + tag, unverified): precision" in output
    assert "kept by the verifier" in output
    assert (out / WEIGHTS).is_file()
    state = json.loads(next((out / "verifier" / "checkpoints").glob("*/trainer_state.json")).read_text())
    assert state["step"] == 3  # a fixed number of steps, whatever the machine's load
    assert list((out / "shards").glob("*_stats.json"))


def test_the_same_short_command_gives_the_same_weights_shards_and_figures(short_demos):
    (first, first_output), (second, second_output) = short_demos
    assert (first / WEIGHTS).read_bytes() == (second / WEIGHTS).read_bytes()
    for folder in ("train-shards", "candidates", "shards"):  # the verifier's confidences included
        assert shard_bytes(first / folder) == shard_bytes(second / folder), folder
    assert _figures(first_output) == _figures(second_output) and len(_figures(first_output)) == 2


@pytest.mark.slow
def test_the_same_command_gives_the_same_figures(tmp_path):
    """Steps, not seconds: two longer runs agree on the trained weights and every reported figure."""
    out = tmp_path / "out"
    figures = _figures(_demo(out, "8", "40", 12))
    first = out.rename(tmp_path / "first")
    assert _figures(_demo(out, "8", "40", 12)) == figures
    assert (first / WEIGHTS).read_bytes() == (out / WEIGHTS).read_bytes()
