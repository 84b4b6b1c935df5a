import json
import shutil

import pytest
import torch

from sgpipe.errors import ConfigError
from sgpipe.models.verifier import Verifier
from sgpipe.train.config import load_train_config
from sgpipe.train.loop import OPTIMIZER_NAME, latest_checkpoint, lr_at, train
from tests.helpers.train_shards import make_shards


def _config(tmp_path, shards, out, *extra):
    return load_train_config(
        None,
        [
            "model.preset=tiny",
            f"data.train={shards}",
            "data.batch_size=4",
            "data.shuffle_buffer=8",
            "optim.lr=3e-3",
            "optim.warmup_steps=2",
            f"run.out={out}",
            "run.log_every=1",
            "run.seed=1",
            *extra,
        ],
    )


def _steps(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    make_shards(folder, n_shards=4, per_shard=6)
    return folder


def test_tiny_training_lowers_the_loss_and_writes_a_loadable_checkpoint(tmp_path, shards):
    final = train(_config(tmp_path, shards, tmp_path / "run", "optim.max_steps=14", "data.num_workers=0"))
    losses = [s["loss"] for s in _steps(tmp_path / "run")]
    assert len(losses) == 14
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3
    model = Verifier.from_pretrained(final)
    assert set(model.config.predicate_frequencies) == {"left of", "right of"}
    steps = _steps(tmp_path / "run")
    assert all(s["samples_per_s"] > 0 for s in steps) and steps[-1]["step"] == 14


def test_resume_continues_at_the_same_step_with_the_same_data(tmp_path, shards):
    # 24 samples / batch 4 = 6 steps per epoch; the interruption falls mid-epoch (step 4 of 6)
    args = ("optim.max_steps=8", "run.checkpoint_every=4", "run.keep_checkpoints=3", "data.num_workers=2")
    train(_config(tmp_path, shards, tmp_path / "full", *args))
    full = _steps(tmp_path / "full")
    # the same run, killed after its step-4 checkpoint
    partial = tmp_path / "resumed"
    shutil.copytree(tmp_path / "full", partial)
    shutil.rmtree(partial / "final")
    for folder in (partial / "checkpoints").glob("step-*"):
        if folder.name != "step-0000004":
            shutil.rmtree(folder)
    lines = (partial / "metrics.jsonl").read_text().splitlines()[:4]
    (partial / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert latest_checkpoint(partial).name == "step-0000004"
    torch.load(partial / "checkpoints" / "step-0000004" / OPTIMIZER_NAME, weights_only=True)

    train(_config(tmp_path, shards, partial, *args))
    resumed = _steps(partial)
    assert [s["step"] for s in resumed] == list(range(1, 9))
    assert [s["batch_keys_md5"] for s in resumed] == [s["batch_keys_md5"] for s in full]
    for a, b in zip(resumed[4:], full[4:]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_lr_schedule_warms_up_then_decays():
    rates = [lr_at(s, 1.0, 10, 100) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:])) and rates[-1] >= 0.1


def test_config_reports_every_problem_at_once(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_train_config(
            None,
            [
                "model.preset=huge",
                "data.batch_size=0",
                "optim.lr_max=1",
                "model.options.d_modl=3",
                f"data.train={tmp_path}/none.tar",
            ],
        )
    text = str(caught.value)
    for fragment in (
        "model.preset: 'huge'",
        "data.batch_size",
        "unknown key 'optim.lr_max'",
        "unknown verifier option 'd_modl'",
        "not found",
    ):
        assert fragment in text


def test_gradient_accumulation_counts_micro_batches_per_step(tmp_path, shards):
    config = _config(
        tmp_path, shards, tmp_path / "accum", "optim.grad_accum=3", "optim.epochs=1", "data.num_workers=0"
    )
    train(config)
    steps = _steps(tmp_path / "accum")
    # 24 samples // (batch 4 x 3 micro-batches) = 2 optimizer steps in the epoch
    assert [s["step"] for s in steps] == [1, 2]
    state = json.loads((latest_checkpoint(tmp_path / "accum") / "trainer_state.json").read_text())
    assert state == {"step": 2, "epoch": 0, "steps_per_epoch": 2, "seed": 1, "world_size": 1}
