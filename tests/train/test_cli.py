import json

import pytest

from typer.testing import CliRunner

from sgpipe.cli import app
from sgpipe.shards import iter_shard_samples
from sgpipe.synth.world import generate_world


def test_convert_train_reverify_from_the_command_line(tmp_path):
    generate_world(tmp_path / "world", n_images=4, seed=0, image_size=128)
    runner = CliRunner()
    converted = runner.invoke(
        app,
        [
            "convert",
            "synth",
            str(tmp_path / "world"),
            "--out",
            str(tmp_path / "shards"),
            "--samples-per-shard",
            "2",
        ],
    )
    assert converted.exit_code == 0, converted.output
    trained = runner.invoke(
        app,
        [
            "train",
            "pipelines/train_small.yaml",
            "--set",
            "model.preset=tiny",
            "--set",
            f"data.train={tmp_path / 'shards'}/{{00000..00001}}.tar",
            "--set",
            f"data.eval={tmp_path / 'shards'}/00001.tar",
            "--set",
            "data.num_workers=0",
            "--set",
            "data.batch_size=2",
            "--set",
            "optim.max_steps=2",
            "--set",
            f"run.out={tmp_path / 'run'}",
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert (
        f"verifier checkpoint: {tmp_path / 'run' / 'final'}" in trained.output
        and "held-out:" in trained.output
    )
    evals = [
        json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"eval"' in x
    ]
    # the held-out figures are those of the final step, over every relation of the held-out shard
    held_out = [r for s in iter_shard_samples(f"{tmp_path / 'shards'}/00001.tar") for r in s.record["relations"]]
    true = sum(r["confidence"] == 1.0 for r in held_out)  # the world's; the captions' false ones are 0.0
    assert 0 < true < len(held_out)
    final = evals[-1]
    assert final["step"] == 2 and final["eval"]["relations"] == len(held_out)
    assert final["eval"]["candidate_precision"] == pytest.approx(true / len(held_out))
    assert isinstance(final["eval"]["auc"], float) and "recall@1" in final["eval"]
    rescored = runner.invoke(
        app,
        [
            "reverify",
            str(tmp_path / "shards"),
            "--checkpoint",
            str(tmp_path / "run" / "final"),
            "--out",
            str(tmp_path / "rescored"),
            "--set",
            "verify.store_threshold=0.0",
        ],
    )
    assert rescored.exit_code == 0, rescored.output
    records = [s.record for s in iter_shard_samples(str(tmp_path / "rescored"))]
    assert len(records) == 4 and all(
        r["confidence"] not in (0.0, 1.0) for rec in records for r in rec["relations"]
    )  # rescored: none keeps the ground truth's 1.0 / 0.0
    refused = runner.invoke(app, ["train", "pipelines/train_small.yaml", "--set", "optim.lr=-1"])
    assert (
        refused.exit_code == 2 and "data.train: required" in refused.output and "optim.lr" in refused.output
    )
