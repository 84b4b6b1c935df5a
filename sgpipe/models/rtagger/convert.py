"""RLIPv2's R-Tagger checkpoints (`checkpoint0019.pth`: ResNet-50, Swin-T, Swin-L) -> an sgpipe R-Tagger folder.

The file is read with weights-only unpickling, memory-mapped (tensors are paged in only when read: the
optimizer state beside the weights never is): tensors and plain containers, plus exactly one allowed class,
`argparse.Namespace` (RLIPv2 stores its command-line `args` in the checkpoint beside the optimizer state).
The architecture comes from the tensors (backbone, layer counts, widths, the text encoder's vocabulary and
depth) and from `args` for what tensors cannot show (flags.HIDDEN); where both speak they must agree. A file
without `args` is refused unless `assume_released` names the RLIPv2 script whose flags it was trained with.
Every key is accounted for:
- the port's keys (RLIPv2's own names) must all be present with their shapes;
- the 72 aliases (decoder box heads registered twice) must equal the tensor they alias, and are dropped;
- Swin's relative position indices must equal the ones the window size gives, and are dropped;
- `transformer.text_encoder.embeddings.position_ids` (saved by older transformers releases) is dropped;
- anything else is an error.
The folder gets config.json, model.safetensors and the tokenizer files (RoBERTa-base's by default), the
tokenizer's vocabulary exactly the size of the text encoder's.
"""

from __future__ import annotations

import argparse
import math
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from sgpipe.errors import ModelNotAvailableError, SgpipeError

from . import flags
from .config import RTaggerConfig
from .keys import IGNORED_KEYS, canonical_key, is_alias, is_derived
from .swin import SWIN_VARIANTS, relative_position_index

ALLOWED_GLOBALS = (argparse.Namespace,)
DEFAULT_TOKENIZER = "roberta-base"
_SWIN_BODY = "backbone.0.body."


class CheckpointError(SgpipeError):
    """A file that is not (or not entirely) an RLIPv2 R-Tagger checkpoint."""


def _load(path: Path) -> Any:
    # mmap needs the zip layout of torch.save (torch >= 1.6); the legacy layout is read whole
    with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """-> (model state dict, args as a dict; None when the file stores none)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        payload = _load(path)
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
    if args is None:
        return state, None
    return state, vars(args) if isinstance(args, argparse.Namespace) else dict(args)


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    indices = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(indices) + 1 if indices else 0


def detect_backbone(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The config fields of the backbone the tensors hold: {"backbone": ...} (+ "swin_depths" for a Swin)."""
    if f"{_SWIN_BODY}patch_embed.proj.weight" not in state:
        if f"{_SWIN_BODY}layer1.0.conv1.weight" not in state:
            raise CheckpointError("not an RLIPv2 R-Tagger state dict: it holds neither a ResNet nor a Swin backbone")
        blocks = tuple(_count(state, rf"backbone\.0\.body\.layer{i}\.(\d+)\.") for i in (1, 2, 3, 4))
        if blocks != (3, 4, 6, 3):
            raise CheckpointError(
                f"a ResNet backbone of {blocks} blocks per stage: only ResNet-50 (3, 4, 6, 3) is implemented"
            )
        return {"backbone": "resnet50"}
    stages = _count(state, r"backbone\.0\.body\.layers\.(\d+)\.")
    depths = tuple(_count(state, rf"backbone\.0\.body\.layers\.{i}\.blocks\.(\d+)\.") for i in range(stages))
    tables = [state[f"{_SWIN_BODY}layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(stages)]
    embed_dim = state[f"{_SWIN_BODY}patch_embed.proj.weight"].shape[0]
    heads = tuple(t.shape[1] for t in tables)
    window = (math.isqrt(tables[0].shape[0]) + 1) // 2
    for name, spec in SWIN_VARIANTS.items():
        if (spec.embed_dim, spec.num_heads, spec.window_size) == (embed_dim, heads, window) and len(depths) == 4:
            return {"backbone": name, "swin_depths": None if depths == spec.depths else list(depths)}
    raise CheckpointError(
        f"a Swin backbone (embed_dim {embed_dim}, heads {heads}, window {window}) that is none of the implemented "
        f"ones ({', '.join(SWIN_VARIANTS)})"
    )


def _tensor_fields(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    try:
        enc_layers = _count(state, r"transformer\.ho_encoder\.layers\.(\d+)\.")
        fusions = _count(state, r"transformer\.ho_encoder\.VLFuse_layers\.(\d+)\.")
        words = state["transformer.text_encoder.embeddings.word_embeddings.weight"]
        text = {
            "vocab_size": words.shape[0],
            "hidden_size": words.shape[1],
            "num_hidden_layers": _count(state, r"transformer\.text_encoder\.encoder\.layer\.(\d+)\."),
            "intermediate_size": state["transformer.text_encoder.encoder.layer.0.intermediate.dense.weight"].shape[0],
            "max_position_embeddings": state["transformer.text_encoder.embeddings.position_embeddings.weight"].shape[0],
            "type_vocab_size": state["transformer.text_encoder.embeddings.token_type_embeddings.weight"].shape[0],
        }
        return {
            **detect_backbone(state),
            "hidden_dim": state["transformer.level_embed"].shape[1],
            "num_feature_levels": state["transformer.level_embed"].shape[0],
            "enc_layers": enc_layers,
            "dec_layers": _count(state, r"transformer\.ho_decoder\.layers\.(\d+)\."),
            "dim_feedforward": state["transformer.ho_encoder.layers.0.linear1.weight"].shape[0],
            "num_queries": state["transformer.verb_tgt.weight"].shape[0],
            "fusion_interval": enc_layers // max(fusions, 1),
            "verb_query_tgt_type": "vanilla_MBF" if "transformer.verb_query_embed.weight" in state else "vanilla",
            "text": text,
        }
    except KeyError as error:
        raise CheckpointError(f"not an RLIPv2 R-Tagger state dict: it has no {error.args[0]!r}") from None


def config_from_checkpoint(
    state: dict[str, torch.Tensor], args: dict[str, Any] | None, assume_released: str | None = None
) -> RTaggerConfig:
    """The architecture from the tensors and `args`; without args, from `assume_released` (a key of
    flags.RELEASED) or not at all."""
    fields = _tensor_fields(state)
    if not args:
        if assume_released is None:
            raise CheckpointError(flags.no_args_message(fields["backbone"]))
        if assume_released not in flags.RELEASED:
            raise CheckpointError(f"--assume-released {assume_released!r}: choose from {', '.join(flags.RELEASED)}")
        args = flags.RELEASED[assume_released][1]
    bad = flags.unsupported(args)
    if bad:
        raise CheckpointError("the checkpoint's model uses options this port does not implement: " + ", ".join(bad))
    shown = [f"{name} {args[name]!r} (the tensors: {fields[name]!r})"
             for name in ("backbone", "verb_query_tgt_type", "dim_feedforward", "enc_layers", "dec_layers",
                          "num_queries", "hidden_dim", "num_feature_levels", "fusion_interval")
             if name in args and args[name] != fields[name]]
    if shown:
        source = f"--assume-released {assume_released}" if assume_released else "the checkpoint's args"
        raise CheckpointError(f"{source} and the tensors disagree: " + "; ".join(shown))
    fields.update({k: args[k] for k in flags.COPIED if k in args})
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
        if is_derived(name):
            window = math.isqrt(tensor.shape[0]) if tensor.dim() == 2 else 0
            if tensor.dim() != 2 or not torch.equal(tensor, relative_position_index(window)):
                bad_alias.append(f"{name} (should be the relative position index of a {window}x{window} window)")
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
                         ("inconsistent alias or index", bad_alias)):
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
    problem = tokenizer_mismatch(tokenizer, vocab_size)
    if problem:
        raise CheckpointError(f"tokenizer {source!r}: {problem}")
    tokenizer.save_pretrained(out)


def tokenizer_mismatch(tokenizer: Any, vocab_size: int) -> str | None:
    """Why `tokenizer` cannot be the text encoder's (None when it fits): another tokenizer's ids either
    overflow the embedding table or, fewer of them, index the wrong rows of it without any error."""
    if len(tokenizer) != vocab_size:
        return (f"it has {len(tokenizer)} tokens but the text encoder {vocab_size}: the tokenizer the text encoder "
                "was trained with has exactly as many")
    return None


def convert_rtagger(
    checkpoint: Path, out: Path, tokenizer: str = DEFAULT_TOKENIZER, assume_released: str | None = None
) -> str:
    """Write the folder `RTagger.from_pretrained` reads; returns a one-line summary. `assume_released` (resnet50,
    swin_tiny, swin_large) converts a checkpoint that stores no args with the flags of that RLIPv2 script."""
    from safetensors.torch import save_file

    state, args = read_checkpoint(checkpoint)
    config = config_from_checkpoint(state, args, assume_released)
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
        f"{dropped} aliases/ignored keys dropped, {config.backbone} backbone, {config.enc_layers} encoder / "
        f"{config.dec_layers} decoder layers, "
        f"text encoder {config.text['num_hidden_layers']} layers x {config.text['vocab_size']} tokens"
    )
