"""`sgpipe demo` end to end at toy size: worlds, training, both pipeline runs, the report."""

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
            "--train-seconds",
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
    assert list((tmp_path / "demo" / "shards").glob("*_stats.json"))
