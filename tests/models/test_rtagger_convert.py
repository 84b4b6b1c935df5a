"""`sgpipe convert rtagger`: synthetic RLIPv2 checkpoints (small ResNet-50 and Swin-L R-Taggers' state dicts with
RLIPv2's aliases and indices, `args` as an argparse.Namespace, optimizer state) round-trip to the same scores;
RLIPv2's full-size key lists convert exactly; a file without `args` is refused unless an option names the
script it came from; other files get one error."""

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
from sgpipe.models.rtagger import flags
from sgpipe.models.rtagger.fill import write_byte_tokenizer
from sgpipe.models.rtagger.keys import is_alias, is_derived
from sgpipe.models.rtagger.reference import cached_fixture_tagger, fixture_inputs, load_fixture

FIXTURES = Path(__file__).parent / "rtagger_fixtures"
KEY_LISTS = {"resnet50": "official_keys.json", "swin_tiny": "official_keys_swin_tiny.json",
             "swin_large": "official_keys_swin_large.json"}
# RLIPv2's relative position index of a 7x7 window, as its Swin code stores it in every block
RLIPV2_INDEX = torch.tensor(json.loads((FIXTURES / KEY_LISTS["swin_tiny"]).read_text())["relative_position_index"])


def _official_state(tagger: RTagger) -> dict[str, torch.Tensor]:
    """The port's state dict as RLIPv2 saves it: plus the decoders' box-head aliases, position_ids and (Swin)
    every block's relative position index."""
    state = {k: v.clone() for k, v in tagger.net.state_dict().items() if not k.endswith("token_type_ids")}
    dec = tagger.config.dec_layers
    for head in ("sub_bbox_embed", "obj_bbox_embed"):
        for key in [k for k in state if k.startswith(head + ".")]:
            index, rest = key[len(head) + 1 :].split(".", 1)
            decoder, local = ("ho_decoder", int(index)) if int(index) < dec else ("verb_decoder", int(index) - dec)
            state[f"transformer.{decoder}.{head}.{local}.{rest}"] = state[key]
    for key in [k for k in state if k.endswith(".attn.relative_position_bias_table")]:
        state[key.replace("relative_position_bias_table", "relative_position_index")] = RLIPV2_INDEX.clone()
    return state


def _args(config: RTaggerConfig, **changes) -> argparse.Namespace:
    args = {
        "enc_layers": config.enc_layers, "dec_layers": config.dec_layers, "backbone": config.backbone,
        "dim_feedforward": config.dim_feedforward, "dilation": False, "with_box_refine": True, "two_stage": False,
        "fusion_type": "GLIP_attn", "fusion_last_vis": True, "lang_aux_loss": True, "verb_tagger": True,
        "gating_mechanism": config.gating_mechanism, "verb_query_tgt_type": config.verb_query_tgt_type,
        "separate_bidirectional": False, "position_embedding": "sine", "nheads": 8, "enc_n_points": 4,
        "dec_n_points": 4, "use_no_obj_token": True, "stable_softmax_2d": False, "clamp_min_for_underflow": False,
        "clamp_max_for_overflow": False, "text_encoder_type": "roberta-base", "lr": 1e-4,
        "output_dir": "logs/RLIP_PD_v2_Tagger2",
    }
    return argparse.Namespace(**{**args, **changes})


def _save(path: Path, tagger: RTagger, args: argparse.Namespace | None = None, **torch_save) -> Path:
    """An RLIPv2 training checkpoint: the model, `args`, and optimizer state as RLIPv2's trainer saves it."""
    state = _official_state(tagger)
    params = [t for k, t in state.items() if not is_alias(k)][:2]
    payload = {
        "model": state,
        "optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros_like(params[0])}},
                      "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0, 1]}]},
        "lr_scheduler": {"step_size": 15, "gamma": 0.1, "last_epoch": 19, "_last_lr": [1e-5]},
        "epoch": 19,
    }
    if args is not None:
        payload["args"] = args
    torch.save(payload, path, **torch_save)
    return path


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
    return _save(tmp_path_factory.mktemp("ckpt") / "checkpoint0019.pth", tagger, _args(tagger.config))


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    write_byte_tokenizer(folder)
    return folder


def _assert_scores_like(loaded: RTagger, tagger: RTagger, fixture: dict) -> None:
    loaded.config.min_size, loaded.config.max_size = tagger.config.min_size, tagger.config.max_size
    item = fixture_inputs(fixture)[1]
    before = tagger.score(item.image, item.boxes_xywh, item.box_labels, item.pairs, item.texts, item.category_names)
    after = loaded.score(item.image, item.boxes_xywh, item.box_labels, item.pairs, item.texts, item.category_names)
    np.testing.assert_array_equal(before, after)


def test_converted_folder_scores_like_the_original(fixture, tagger, checkpoint, tokenizer_dir, tmp_path):
    result = CliRunner().invoke(app, ["convert", "rtagger", str(checkpoint), "--out", str(tmp_path / "m"),
                                      "--tokenizer", str(tokenizer_dir)])
    assert result.exit_code == 0, result.output
    assert "aliases/ignored keys dropped, resnet50 backbone" in result.output
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (config["enc_layers"], config["dec_layers"], config["text"]["num_hidden_layers"]) == (4, 2, 2)
    assert config["text"]["vocab_size"] == 261
    _assert_scores_like(RTagger.from_pretrained(tmp_path / "m", device="cpu"), tagger, fixture)


def test_swin_checkpoint_converts_and_scores_like_the_original(tokenizer_dir, tmp_path):
    """A (reduced) Swin-L tagger as RLIPv2 saves it: backbone, stage depths, VXAc gating and MBF verb queries
    come through, the stored relative position indices are checked and dropped."""
    fixture, tagger = cached_fixture_tagger(str(FIXTURES / "reference_scores_swin_large.json"))
    path = _save(tmp_path / "swin.pth", tagger, _args(tagger.config))
    result = CliRunner().invoke(app, ["convert", "rtagger", str(path), "--out", str(tmp_path / "m"),
                                      "--tokenizer", str(tokenizer_dir)])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert {k: config[k] for k in ("backbone", "swin_depths", "dim_feedforward", "gating_mechanism",
                                   "verb_query_tgt_type")} == {
        "backbone": "swin_large", "swin_depths": [2, 2, 2, 2], "dim_feedforward": 2048, "gating_mechanism": "VXAc",
        "verb_query_tgt_type": "vanilla_MBF"}
    _assert_scores_like(RTagger.from_pretrained(tmp_path / "m", device="cpu"), tagger, fixture)
    wrong_index = _official_state(tagger)
    wrong_index["backbone.0.body.layers.1.blocks.0.attn.relative_position_index"] = RLIPV2_INDEX.flip(0)
    with pytest.raises(CheckpointError, match="inconsistent alias or index: backbone.0.body.layers.1.blocks.0"):
        map_state(wrong_index, tagger.config)


def _full_size_state(model: str) -> tuple[dict[str, torch.Tensor], dict]:
    official = json.loads((FIXTURES / KEY_LISTS[model]).read_text())
    zero = torch.zeros(1)
    state = {k: zero.expand(shape) for k, shape in official["keys"].items()}  # no memory per tensor
    state["transformer.text_encoder.embeddings.position_ids"] = torch.arange(514)[None]
    for key in [k for k in state if is_derived(k)]:
        state[key] = RLIPV2_INDEX
    return state, official


@pytest.mark.parametrize("model, mapped", [("resnet50", 899), ("swin_tiny", 906), ("swin_large", 1062)])
def test_full_size_key_list_is_exactly_what_the_converter_accepts(model, mapped):
    """RLIPv2's full models (keys generated with its code) map with nothing missing or left over, with RLIPv2's
    own parsed arguments or, without any, with the flags of the script named."""
    state, official = _full_size_state(model)
    config = config_from_checkpoint(state, official["args"])
    expected = RTaggerConfig.from_dict({k: official["args"][k] for k in flags.COPIED + ("dim_feedforward",)})
    assert config == expected and config.backbone == model
    assert config_from_checkpoint(state, None, assume_released=model) == expected
    assert len(map_state(state, config)) == mapped


@pytest.mark.parametrize("model", KEY_LISTS)
def test_released_flags_are_the_ones_rlipv2_parses_from_its_scripts(model):
    args = json.loads((FIXTURES / KEY_LISTS[model]).read_text())["args"]
    script, released = flags.RELEASED[model]
    assert {k: args[k] for k in released} == released
    assert not flags.unsupported(args)


def test_a_checkpoint_without_args_is_refused_with_the_flags_it_needs():
    state, official = _full_size_state("resnet50")
    with pytest.raises(CheckpointError, match="stores no `args`") as refused:
        config_from_checkpoint(state, None)
    for flag in ("gating_mechanism", "fusion_last_vis", "lang_aux_loss", "use_no_obj_token", "nheads"):
        assert flag in str(refused.value)
    assert "--assume-released resnet50" in str(refused.value) and "test_Tagger_resnet.sh" in str(refused.value)
    with pytest.raises(CheckpointError, match="--assume-released swin_tiny and the tensors disagree: backbone"):
        config_from_checkpoint(state, None, assume_released="swin_tiny")
    with pytest.raises(CheckpointError, match="choose from resnet50, swin_tiny, swin_large"):
        config_from_checkpoint(state, None, assume_released="resnet101")
    with pytest.raises(CheckpointError, match="the checkpoint's args and the tensors disagree: dim_feedforward 2048"):
        config_from_checkpoint(state, {**official["args"], "dim_feedforward": 2048})


def test_cli_refuses_a_checkpoint_without_args_unless_told_which_script(fixture, tagger, tokenizer_dir, tmp_path):
    path = _save(tmp_path / "no_args.pth", tagger)
    message = _fail_message(path, tokenizer_dir, tmp_path)
    assert "stores no `args`" in message and "--assume-released resnet50" in message
    result = CliRunner().invoke(app, ["convert", "rtagger", str(path), "--out", str(tmp_path / "m"),
                                      "--tokenizer", str(tokenizer_dir), "--assume-released", "resnet50"])
    assert result.exit_code == 0, result.output
    _assert_scores_like(RTagger.from_pretrained(tmp_path / "m", device="cpu"), tagger, fixture)


def _mapped_file(tensor: torch.Tensor) -> str | None:
    """The file whose memory mapping holds `tensor`'s data (Linux's /proc/self/maps), None for plain memory."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, *rest = line.split(maxsplit=5)
        start, end = (int(x, 16) for x in span.split("-"))
        if start <= address < end:
            return rest[4] if len(rest) == 5 else None
    return None


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_checkpoint_is_memory_mapped_and_the_legacy_format_still_reads(tagger, checkpoint, tmp_path):
    state, _ = read_checkpoint(checkpoint)
    assert _mapped_file(state["projection_text.weight"]) == str(checkpoint)  # paged in on use, not read whole
    legacy = _save(tmp_path / "legacy.pth", tagger, _args(tagger.config), _use_new_zipfile_serialization=False)
    old, args = read_checkpoint(legacy)
    assert _mapped_file(old["projection_text.weight"]) != str(legacy)
    assert torch.equal(old["projection_text.weight"], state["projection_text.weight"]) and args["backbone"] == "resnet50"


def test_the_map_names_every_missing_unexpected_misshapen_or_inconsistent_key():
    state, official = _full_size_state("resnet50")
    config = RTaggerConfig()
    zero = torch.zeros(1)
    with pytest.raises(CheckpointError, match="1 missing: transformer.verb_tgt.weight"):
        map_state({k: v for k, v in state.items() if k != "transformer.verb_tgt.weight"}, config)
    with pytest.raises(CheckpointError, match="1 unexpected: transformer.extra.weight"):
        map_state({**state, "transformer.extra.weight": zero}, config)
    with pytest.raises(CheckpointError, match="wrong shape: projection_text.weight"):
        map_state({**state, "projection_text.weight": torch.zeros(2, 2)}, config)
    with pytest.raises(CheckpointError, match="inconsistent alias"):
        map_state({**state, "transformer.ho_decoder.sub_bbox_embed.0.layers.0.bias": torch.ones(256)}, config)


def _tokenizer_with(folder: Path, tokens: int) -> Path:
    """The byte-level tokenizer cut to its first `tokens` entries (another tokenizer, smaller than the model's)."""
    write_byte_tokenizer(folder)
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    kept = dict(sorted(vocab.items(), key=lambda item: item[1])[:tokens])
    (folder / "vocab.json").write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")
    return folder


def test_a_tokenizer_of_another_size_is_refused_either_way(checkpoint, tokenizer_dir, tmp_path):
    smaller = _fail_message(checkpoint, _tokenizer_with(tmp_path / "small", 200), tmp_path)
    assert "it has 201 tokens but the text encoder 261" in smaller  # 200 and <mask>, which the tokenizer adds
    larger = tmp_path / "large"
    write_byte_tokenizer(larger)
    vocab = json.loads((larger / "vocab.json").read_text(encoding="utf-8"))
    vocab["<extra>"] = len(vocab)
    (larger / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    assert "it has 262 tokens but the text encoder 261" in _fail_message(checkpoint, larger, tmp_path)
    # a converted folder whose tokenizer was swapped afterwards is refused when loaded
    assert CliRunner().invoke(app, ["convert", "rtagger", str(checkpoint), "--out", str(tmp_path / "m"),
                                    "--tokenizer", str(tokenizer_dir)]).exit_code == 0
    (tmp_path / "m" / "tokenizer.json").unlink()  # the fast tokenizer's file would win over vocab.json
    _tokenizer_with(tmp_path / "m", 200)
    with pytest.raises(ValueError, match="the tokenizer does not fit the text encoder: it has 201 tokens"):
        RTagger.from_pretrained(tmp_path / "m", device="cpu")


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
    assert set(read) == set(state) and args is None
