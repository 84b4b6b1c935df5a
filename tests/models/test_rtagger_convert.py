"""`sgpipe convert rtagger`: a synthetic RLIPv2 checkpoint (a small R-Tagger's state dict with RLIPv2's aliases,
`args` as an argparse.Namespace, optimizer state) round-trips to the same scores; other files get one error."""

from __future__ import annotations

import argparse
import json
import pathlib
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sgpipe.cli import app
from sgpipe.models.device import one_thread
from sgpipe.models.rtagger import RTagger, RTaggerConfig
from sgpipe.models.rtagger.convert import (
    CheckpointError,
    config_from_checkpoint,
    convert_rtagger,
    map_state,
    read_checkpoint,
)
from sgpipe.models.rtagger.fill import write_byte_tokenizer
from sgpipe.models.rtagger.keys import is_alias
from sgpipe.models.rtagger.reference import cached_fixture_tagger, fixture_inputs, load_fixture

FIXTURES = Path(__file__).parent / "rtagger_fixtures"


def _official_state(tagger: RTagger) -> dict[str, torch.Tensor]:
    """The port's state dict as RLIPv2 saves it: plus the decoders' box-head aliases and position_ids."""
    state = {k: v.clone() for k, v in tagger.net.state_dict().items() if not k.endswith("token_type_ids")}
    dec = tagger.config.dec_layers
    for head in ("sub_bbox_embed", "obj_bbox_embed"):
        for key in [k for k in state if k.startswith(head + ".")]:
            index, rest = key[len(head) + 1 :].split(".", 1)
            decoder, local = ("ho_decoder", int(index)) if int(index) < dec else ("verb_decoder", int(index) - dec)
            state[f"transformer.{decoder}.{head}.{local}.{rest}"] = state[key]
    return state


def _args(config: RTaggerConfig, **changes) -> argparse.Namespace:
    args = {
        "enc_layers": config.enc_layers, "dec_layers": config.dec_layers, "backbone": "resnet50",
        "dilation": False, "with_box_refine": True, "two_stage": False, "fusion_type": "GLIP_attn",
        "fusion_last_vis": True, "lang_aux_loss": True, "verb_tagger": True, "gating_mechanism": "GLIP",
        "verb_query_tgt_type": "vanilla", "separate_bidirectional": False, "position_embedding": "sine",
        "nheads": 8, "enc_n_points": 4, "dec_n_points": 4, "use_no_obj_token": True,
        "stable_softmax_2d": False, "clamp_min_for_underflow": False, "clamp_max_for_overflow": False,
        "text_encoder_type": "roberta-base", "lr": 1e-4, "output_dir": "logs/RLIP_PD_v2_Tagger2",
    }
    return argparse.Namespace(**{**args, **changes})


@pytest.fixture(scope="module", autouse=True)
def _one_thread():  # the port's small forwards run faster on one thread; the reference was made on one
    with one_thread():
        yield


@pytest.fixture(scope="module")
def fixture():
    return load_fixture(FIXTURES / "reference_scores.json")


@pytest.fixture(scope="module")
def tagger():
    return cached_fixture_tagger(str(FIXTURES / "reference_scores.json"))[1]


@pytest.fixture(scope="module")
def checkpoint(tagger, tmp_path_factory) -> Path:
    state = _official_state(tagger)
    params = [t for k, t in state.items() if not is_alias(k)][:2]
    payload = {
        "model": state,
        "optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros_like(params[0])}},
                      "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0, 1]}]},
        "lr_scheduler": {"step_size": 15, "gamma": 0.1, "last_epoch": 19, "_last_lr": [1e-5]},
        "epoch": 19,
        "args": _args(tagger.config),
    }
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint0019.pth"
    torch.save(payload, path)
    return path


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    write_byte_tokenizer(folder)
    return folder


def test_converted_folder_scores_like_the_original(fixture, tagger, checkpoint, tokenizer_dir, tmp_path):
    result = CliRunner().invoke(app, ["convert", "rtagger", str(checkpoint), "--out", str(tmp_path / "m"),
                                      "--tokenizer", str(tokenizer_dir)])
    assert result.exit_code == 0, result.output
    assert "aliases/ignored keys dropped" in result.output
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (config["enc_layers"], config["dec_layers"], config["text"]["num_hidden_layers"]) == (4, 2, 2)
    assert config["text"]["vocab_size"] == 261
    loaded = RTagger.from_pretrained(tmp_path / "m", device="cpu")
    loaded.config.min_size, loaded.config.max_size = tagger.config.min_size, tagger.config.max_size
    item = fixture_inputs(fixture)[1]
    before = tagger.score(item.image, item.boxes_xywh, item.box_labels, item.pairs, item.texts, item.category_names)
    after = loaded.score(item.image, item.boxes_xywh, item.box_labels, item.pairs, item.texts, item.category_names)
    np.testing.assert_array_equal(before, after)


def test_full_size_key_list_is_exactly_what_the_converter_accepts():
    """RLIPv2's full model (keys generated on the meta device) maps with nothing missing or left over."""
    official = json.loads((FIXTURES / "official_keys.json").read_text())
    zero = torch.zeros(1)
    state = {k: zero.expand(shape) for k, shape in official["keys"].items()}  # no memory per tensor
    state["transformer.text_encoder.embeddings.position_ids"] = torch.arange(514)[None]
    assert config_from_checkpoint(state, {}) == RTaggerConfig()  # architecture from the tensors alone
    config = config_from_checkpoint(state, official["args"])  # and with RLIPv2's own parsed arguments
    assert config == RTaggerConfig()
    assert len(map_state(state, config)) == 899
    with pytest.raises(CheckpointError, match="1 missing: transformer.verb_tgt.weight"):
        map_state({k: v for k, v in state.items() if k != "transformer.verb_tgt.weight"}, config)
    with pytest.raises(CheckpointError, match="1 unexpected: transformer.extra.weight"):
        map_state({**state, "transformer.extra.weight": zero}, config)
    with pytest.raises(CheckpointError, match="wrong shape: projection_text.weight"):
        map_state({**state, "projection_text.weight": torch.zeros(2, 2)}, config)
    with pytest.raises(CheckpointError, match="inconsistent alias"):
        map_state({**state, "transformer.ho_decoder.sub_bbox_embed.0.layers.0.bias": torch.ones(256)}, config)


def _fail_message(path: Path, tokenizer_dir: Path, tmp_path: Path) -> str:
    result = CliRunner().invoke(app, ["convert", "rtagger", str(path), "--out", str(tmp_path / "out"),
                                      "--tokenizer", str(tokenizer_dir)])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out" / "model.safetensors").exists()
    return result.output


def test_files_that_are_not_checkpoints_get_one_clear_error(tokenizer_dir, tmp_path):
    text = tmp_path / "labels.json"
    text.write_text('{"images": []}')
    assert "is not a PyTorch checkpoint file" in _fail_message(text, tokenizer_dir, tmp_path)
    # foreign bytes make the pickle reader fail in many ways (IndexError, KeyError, ...): all one message
    foreign = {"recipe.yaml": b"source:\n  name: coco\n", "short.pth": b"hello", "noise.pth": bytes(range(256))}
    for name, data in foreign.items():
        (tmp_path / name).write_bytes(data)
        assert "is not a PyTorch checkpoint file" in _fail_message(tmp_path / name, tokenizer_dir, tmp_path)
    assert "no such file" in _fail_message(tmp_path / "missing.pth", tokenizer_dir, tmp_path)
    other = tmp_path / "other.pth"
    torch.save({"weights": [1, 2, 3]}, other)
    assert "has no 'model' state dict" in _fail_message(other, tokenizer_dir, tmp_path)
    detector = tmp_path / "detector.pth"
    torch.save({"model": {"backbone.weight": torch.zeros(2)}}, detector)
    assert "not an RLIPv2 R-Tagger state dict" in _fail_message(detector, tokenizer_dir, tmp_path)


def test_pickled_objects_outside_the_allow_list_are_refused_not_run(tokenizer_dir, tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"model": {}, "args": pathlib.PurePosixPath("/x")}, path)
    message = _fail_message(path, tokenizer_dir, tmp_path)
    assert "PurePosixPath" in message and "argparse.Namespace" in message


def test_unsupported_options_are_named(tagger, tokenizer_dir, tmp_path):
    path = tmp_path / "mbf.pth"
    torch.save({"model": _official_state(tagger), "args": _args(tagger.config, gating_mechanism="MBF")}, path)
    assert "gating_mechanism='MBF'" in _fail_message(path, tokenizer_dir, tmp_path)


def test_missing_tokenizer_offline_says_how_to_provide_it(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception, match="--tokenizer"):
        convert_rtagger(checkpoint, tmp_path / "out", tokenizer="no-such-org/no-such-tokenizer")


def test_bare_state_dict_and_ddp_prefix_are_read(tagger, tmp_path):
    state = _official_state(tagger)
    path = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    read, args = read_checkpoint(path)
    assert set(read) == set(state) and args == {}
