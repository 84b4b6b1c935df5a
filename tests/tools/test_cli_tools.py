"""The tool commands through the real command line (typer), end to end on a tiny output folder."""

import json

from PIL import Image
from typer.testing import CliRunner

from sgpipe.cli import app
from tests.helpers.tiny_shards import make_output

runner = CliRunner()


def _ok(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_tool_commands_chain(tmp_path):
    out = tmp_path / "out"
    make_output(out, n_images=5, per_shard=2)
    assert _ok("inspect", out, "--limit", "1", "--render", tmp_path / "png").startswith("3 shards, 5 samples")
    assert (tmp_path / "png" / "t-000000000001.png").is_file()
    assert "images: 6  ok: 5  failed: 1" in _ok("stats", out, "--plots", tmp_path / "plots")
    assert "self-contained" in _ok("report", out, "--output", tmp_path / "r.html", "--samples", "2")
    _ok("export", out, "--format", "rlipv2", "--output", tmp_path / "x.json", "--min-confidence", "0.5")
    assert len(json.loads((tmp_path / "x.json").read_text())) == 5
    _ok("export", out, "--format", "parquet", "--output", tmp_path / "x.parquet")
    assert "the last shard holds 1" in _ok("reshard", out, tmp_path / "re", "--samples-per-shard", "4")


def test_convert_vg_command(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (50, 40)).save(images / "7.jpg")
    (tmp_path / "sg.json").write_text(
        json.dumps(
            [
                {
                    "image_id": 7,
                    "objects": [
                        {"object_id": 1, "x": 0, "y": 0, "w": 10, "h": 10, "names": ["cup"]},
                        {"object_id": 2, "x": 0, "y": 10, "w": 40, "h": 20, "names": ["table"]},
                    ],
                    "relationships": [
                        {"relationship_id": 1, "predicate": "on", "subject_id": 1, "object_id": 2}
                    ],
                }
            ]
        )
    )
    output = _ok(
        "convert", "vg", "--images", images, "--scene-graphs", tmp_path / "sg.json", "--out", tmp_path / "o"
    )
    assert "1 relations" in output and (tmp_path / "o" / "00000.tar").is_file()


def test_tool_errors_are_reported_without_traceback(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path), "--format", "csv", "--output", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Choose from" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["inspect", str(tmp_path / "missing.tar")])
    assert result.exit_code == 2 and "not found" in result.output
