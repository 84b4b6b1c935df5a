"""RLIPv2's released R-Tagger checkpoint (`checkpoint0019.pth`) -> an sgpipe R-Tagger folder.

The file is read with weights-only unpickling: tensors and plain containers, plus exactly one allowed class,
`argparse.Namespace` (RLIPv2 stores its command-line `args` in the checkpoint beside the optimizer state).
The architecture comes from `args` where it is stored and from the tensors otherwise (layer counts, widths,
the text encoder's vocabulary and depth). Every key is accounted for:
- the port's 899 keys (RLIPv2's own names) must all be present with their shapes;
- the 72 aliases (decoder box heads registered twice) must equal the tensor they alias, and are dropped;
- `transformer.text_encoder.embeddings.position_ids` (saved by older transformers releases) is dropped;
- anything else is an error.
The folder gets config.json, model.safetensors and the tokenizer files (RoBERTa-base's by default).
"""

from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from sgpipe.errors import ModelNotAvailableError, SgpipeError

from .config import RTaggerConfig
from .keys import IGNORED_KEYS, canonical_key, is_alias

ALLOWED_GLOBALS = (argparse.Namespace,)
DEFAULT_TOKENIZER = "roberta-base"

# Flags of RLIPv2's training/tagging scripts that this port implements; any other value is refused.
_SUPPORTED_FLAGS = {
    "backbone": "resnet50",
    "dilation": False,
    "with_box_refine": True,
    "two_stage": False,
    "fusion_type": "GLIP_attn",
    "fusion_last_vis": True,
    "lang_aux_loss": True,
    "verb_tagger": True,
    "gating_mechanism": "GLIP",
    "verb_query_tgt_type": "vanilla",
    "separate_bidirectional": False,
    "position_embedding": "sine",
}
_COPIED_FLAGS = ("nheads", "enc_n_points", "dec_n_points", "use_no_obj_token", "stable_softmax_2d",
                 "clamp_min_for_underflow", "clamp_max_for_overflow")


class CheckpointError(SgpipeError):
    """A file that is not (or not entirely) an RLIPv2 R-Tagger checkpoint."""


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (model state dict, args as a dict; empty when the file stores none)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found is None:  # not a pickle at all (a JSON file, say)
            raise CheckpointError(f"{path} is not a PyTorch checkpoint file ({error})") from None
        what = f"an object of type {found.group(1)}"
        raise CheckpointError(
            f"{path} is not an RLIPv2 R-Tagger checkpoint that can be read safely: it holds {what}, and only "
            f"tensors, plain containers and {', '.join(c.__module__ + '.' + c.__name__ for c in ALLOWED_GLOBALS)} "
            "are loaded (no arbitrary pickled code is run)"
        ) from None
    except Exception as error:  # noqa: BLE001 - foreign bytes make the unpickler raise anything (IndexError, KeyError...)
        raise CheckpointError(f"{path} is not a PyTorch checkpoint file ({type(error).__name__}: {error})") from None
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        state, args = payload["model"], payload.get("args")
    elif isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        state, args = payload, None
    else:
        raise CheckpointError(f"{path} is a PyTorch file but not an R-Tagger checkpoint: it has no 'model' state dict")
    if state and all(k.startswith("module.") for k in state):  # saved from a DistributedDataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    return state, args


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    indices = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(indices) + 1 if indices else 0


def config_from_checkpoint(state: dict[str, torch.Tensor], args: dict[str, Any]) -> RTaggerConfig:
    unsupported = [f"{k}={args[k]!r} (supported: {v!r})" for k, v in _SUPPORTED_FLAGS.items() if k in args and args[k] != v]
    if unsupported:
        raise CheckpointError("the checkpoint's model uses options this port does not implement: " + ", ".join(unsupported))
    try:
        enc_layers = _count(state, r"transformer\.ho_encoder\.layers\.(\d+)\.")
        fusions = _count(state, r"transformer\.ho_encoder\.VLFuse_layers\.(\d+)\.")
        text = {
            "vocab_size": state["transformer.text_encoder.embeddings.word_embeddings.weight"].shape[0],
            "hidden_size": state["transformer.text_encoder.embeddings.word_embeddings.weight"].shape[1],
            "num_hidden_layers": _count(state, r"transformer\.text_encoder\.encoder\.layer\.(\d+)\."),
            "intermediate_size": state["transformer.text_encoder.encoder.layer.0.intermediate.dense.weight"].shape[0],
            "max_position_embeddings": state["transformer.text_encoder.embeddings.position_embeddings.weight"].shape[0],
            "type_vocab_size": state["transformer.text_encoder.embeddings.token_type_embeddings.weight"].shape[0],
        }
        fields = {
            "hidden_dim": state["transformer.level_embed"].shape[1],
            "num_feature_levels": state["transformer.level_embed"].shape[0],
            "enc_layers": enc_layers,
            "dec_layers": _count(state, r"transformer\.ho_decoder\.layers\.(\d+)\."),
            "dim_feedforward": state["transformer.ho_encoder.layers.0.linear1.weight"].shape[0],
            "num_queries": state["transformer.verb_tgt.weight"].shape[0],
            "fusion_interval": enc_layers // max(fusions, 1),
            "text": text,
        }
    except KeyError as error:
        raise CheckpointError(f"not an RLIPv2 R-Tagger state dict: it has no {error.args[0]!r}") from None
    fields.update({k: args[k] for k in _COPIED_FLAGS if k in args})
    if "text_encoder_type" in args and args["text_encoder_type"] != "roberta-base":
        raise CheckpointError(f"text_encoder_type {args['text_encoder_type']!r}: only roberta-base is supported")
    try:
        return RTaggerConfig.from_dict(fields)
    except ValueError as error:
        raise CheckpointError(str(error)) from None


def expected_shapes(config: RTaggerConfig) -> dict[str, torch.Size]:
    from .model import RTaggerNet

    with torch.device("meta"):
        net = RTaggerNet(config)
    return {k: v.shape for k, v in net.state_dict().items() if not k.endswith(("position_ids", "token_type_ids"))}


def map_state(state: dict[str, torch.Tensor], config: RTaggerConfig) -> dict[str, torch.Tensor]:
    """The checkpoint's keys -> the port's; raises on any missing, unexpected, misshapen or inconsistent key."""
    expected = expected_shapes(config)
    mapped, unexpected, wrong_shape, bad_alias = {}, [], [], []
    for name, tensor in state.items():
        if name in IGNORED_KEYS:
            continue
        if is_alias(name):
            target = canonical_key(name, config.dec_layers)
            if target not in state or not torch.equal(state[target], tensor):
                bad_alias.append(f"{name} (should equal {target})")
            continue
        if name not in expected:
            unexpected.append(name)
        elif tuple(tensor.shape) != tuple(expected[name]):
            wrong_shape.append(f"{name} {tuple(tensor.shape)} != {tuple(expected[name])}")
        else:
            mapped[name] = tensor
    missing = sorted(set(expected) - set(mapped) - {w.split(" ")[0] for w in wrong_shape})
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape),
                         ("inconsistent alias", bad_alias)):
        if items:
            problems.append(f"{len(items)} {label}: {', '.join(items[:8])}{' ...' if len(items) > 8 else ''}")
    if problems:
        raise CheckpointError("the state dict does not match RLIPv2's R-Tagger: " + "; ".join(problems))
    return mapped


def _save_tokenizer(source: str, out: Path, vocab_size: int) -> None:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as error:
        if Path(source).exists():
            raise CheckpointError(f"tokenizer folder {source}: {error}") from None
        raise ModelNotAvailableError(source, "tokenizer", "then pass that folder with --tokenizer DIR") from None
    if len(tokenizer) > vocab_size:
        raise CheckpointError(
            f"tokenizer {source!r} has {len(tokenizer)} tokens but the text encoder only {vocab_size}: wrong tokenizer"
        )
    tokenizer.save_pretrained(out)


def convert_rtagger(checkpoint: Path, out: Path, tokenizer: str = DEFAULT_TOKENIZER) -> str:
    """Write the folder `RTagger.from_pretrained` reads; returns a one-line summary."""
    from safetensors.torch import save_file

    state, args = read_checkpoint(checkpoint)
    config = config_from_checkpoint(state, args)
    mapped = map_state(state, config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _save_tokenizer(tokenizer, out, config.text["vocab_size"])
    mapped = {k: v.float().contiguous() for k, v in mapped.items()}
    save_file(mapped, str(out / "model.safetensors"), metadata={"format": "pt", "source": "rlipv2-rtagger"})
    config.save(out)
    dropped = len(state) - len(mapped)
    return (
        f"wrote {out}: {len(mapped)} tensors ({sum(t.numel() for t in mapped.values()) / 1e6:.1f}M values), "
        f"{dropped} aliases/ignored keys dropped, {config.enc_layers} encoder / {config.dec_layers} decoder layers, "
        f"text encoder {config.text['num_hidden_layers']} layers x {config.text['vocab_size']} tokens"
    )
