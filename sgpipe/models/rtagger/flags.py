"""RLIPv2's command-line flags that shape an R-Tagger: the values this port implements, the ones a checkpoint's
tensors cannot show, and the flags of RLIPv2's three tagger scripts (`scripts/verb_tagger/test_Tagger_*.sh`,
as RLIPv2's own argument parser reads them: tests/models/rtagger_fixtures/official_keys*.json)."""

from __future__ import annotations

from typing import Any

from .config import BACKBONES, GATINGS, VERB_QUERY_TYPES

SUPPORTED: dict[str, tuple[Any, ...]] = {
    "backbone": BACKBONES,
    "gating_mechanism": GATINGS,
    "verb_query_tgt_type": VERB_QUERY_TYPES,
    "dilation": (False,),
    "with_box_refine": (True,),
    "two_stage": (False,),
    "fusion_type": ("GLIP_attn",),
    "fusion_last_vis": (True,),
    "lang_aux_loss": (True,),
    "verb_tagger": (True,),
    "separate_bidirectional": (False,),
    "position_embedding": ("sine",),
    "text_encoder_type": ("roberta-base",),
}
# Taken into the config as the checkpoint's args give them.
COPIED = ("backbone", "gating_mechanism", "verb_query_tgt_type", "nheads", "enc_n_points", "dec_n_points",
          "use_no_obj_token", "stable_softmax_2d", "clamp_min_for_underflow", "clamp_max_for_overflow")
# Change the arithmetic but no tensor's name or shape: only a checkpoint's args can tell them.
HIDDEN = ("gating_mechanism", "fusion_last_vis", "lang_aux_loss", "use_no_obj_token", "stable_softmax_2d",
          "clamp_min_for_underflow", "clamp_max_for_overflow", "dilation", "nheads", "enc_n_points", "dec_n_points")

_COMMON = {
    "dilation": False, "with_box_refine": True, "two_stage": False, "fusion_type": "GLIP_attn",
    "fusion_last_vis": True, "lang_aux_loss": True, "verb_tagger": True, "separate_bidirectional": False,
    "position_embedding": "sine", "text_encoder_type": "roberta-base", "nheads": 8, "enc_n_points": 4,
    "dec_n_points": 4, "use_no_obj_token": True, "stable_softmax_2d": False, "clamp_min_for_underflow": False,
    "clamp_max_for_overflow": False,
}  # sizes (layers, queries, widths) are not assumed: the tensors give them
_SWIN = {"dim_feedforward": 2048, "gating_mechanism": "VXAc", "verb_query_tgt_type": "vanilla_MBF"}
RELEASED: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet50": ("test_Tagger_resnet.sh", {**_COMMON, "backbone": "resnet50", "dim_feedforward": 1024,
                                           "gating_mechanism": "GLIP", "verb_query_tgt_type": "vanilla"}),
    "swin_tiny": ("test_Tagger_swinT.sh", {**_COMMON, **_SWIN, "backbone": "swin_tiny"}),
    "swin_large": ("test_Tagger_swinL.sh", {**_COMMON, **_SWIN, "backbone": "swin_large"}),
}


def unsupported(args: dict[str, Any]) -> list[str]:
    """`flag=value (supported: ...)` for every flag of `args` set to a value this port does not implement."""
    return [f"{name}={args[name]!r} (supported: {', '.join(map(repr, values))})"
            for name, values in SUPPORTED.items() if name in args and args[name] not in values]


def no_args_message(backbone: str) -> str:
    script = RELEASED[backbone][0] if backbone in RELEASED else None
    hint = (f"If it is RLIPv2's released {backbone} R-Tagger (the flags of scripts/verb_tagger/{script}), pass "
            f"--assume-released {backbone}." if script else "")
    return (f"the checkpoint stores no `args`, and these flags of RLIPv2's tagger change its scores without "
            f"changing any tensor's name or shape: {', '.join(HIDDEN)}. Converting it on a guess could give "
            f"wrong scores with no error. {hint}").strip()
