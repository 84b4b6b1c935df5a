"""One check of what a verifier checkpoint folder holds, and one message with one hint, wherever a
checkpoint is asked for: the run's preflight, the training config and the verify stage."""

import pytest

from sgpipe.config import VerifyConfig, build_config
from sgpipe.errors import ConfigError, SgpipeError
from sgpipe.models.checkpoint import TRAIN_HINT, is_checkpoint
from sgpipe.run.preflight import preflight_problems
from sgpipe.stages.verify import VerifyStage
from sgpipe.train.config import load_train_config


def test_a_checkpoint_needs_both_its_config_and_its_weights(tmp_path):
    assert not is_checkpoint("") and not is_checkpoint(None) and not is_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert not is_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert is_checkpoint(tmp_path) and is_checkpoint(str(tmp_path))


def test_every_place_that_wants_a_checkpoint_says_the_same(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # weights missing: not a checkpoint
    expected = f"{str(tmp_path)!r} is not a verifier checkpoint folder (config.json + model.safetensors)"
    config = build_config(
        {"source": {"instances": "x.json", "images": "x", "captions": "c.json"}},
        ["verify.enabled=true", f"verify.checkpoint={tmp_path}"],
    )
    pipeline = "\n".join(preflight_problems(config))
    with pytest.raises(ConfigError) as train:
        load_train_config(None, ["data.train=shards", f"model.init={tmp_path}"], check_paths=True)
    with pytest.raises(SgpipeError) as stage:
        VerifyStage(VerifyConfig(enabled=True, checkpoint=str(tmp_path))).setup()
    assert f"verify.checkpoint: {expected}. {TRAIN_HINT}" in pipeline
    for where, error in (("model.init", train), ("verify.checkpoint", stage)):
        assert f"{where}: {expected}. {TRAIN_HINT}" in str(error.value)
