"""RTaggerConfig: the architecture of RLIPv2's R-Tagger, as RLIPv2's command-line flags describe it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sgpipe.models.checkpoint import RTAGGER_MODEL_TYPE

from .swin import SWIN_VARIANTS, SwinSpec

BACKBONES = ("resnet50", *SWIN_VARIANTS)
GATINGS = ("GLIP", "VXAc")  # the fusion's residual gate: per channel, or its first value for all channels
VERB_QUERY_TYPES = ("vanilla", "vanilla_MBF")  # the verb decoder's content (+ a multi-branch fusion) and position
RELATION_TEXTS = ("surface", "lemma")

# RoBERTa-base, the text encoder of the released R-Tagger.
ROBERTA_BASE = {
    "vocab_size": 50265,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
}


@dataclass
class RTaggerConfig:
    """Defaults are `scripts/verb_tagger/test_Tagger_resnet.sh` of RLIPv2 (the released R-Tagger); the Swin
    R-Taggers (`test_Tagger_swinT.sh`, `test_Tagger_swinL.sh`) are `backbone`, `dim_feedforward` 2048,
    `gating_mechanism` VXAc and `verb_query_tgt_type` vanilla_MBF."""

    backbone: str = "resnet50"
    swin_depths: list[int] | None = None  # blocks per Swin stage; None: the variant's own
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 3
    dim_feedforward: int = 1024
    num_feature_levels: int = 4
    enc_n_points: int = 4
    dec_n_points: int = 4
    num_queries: int = 200
    fusion_interval: int = 2
    use_no_obj_token: bool = True
    stable_softmax_2d: bool = False
    clamp_min_for_underflow: bool = False
    clamp_max_for_overflow: bool = False
    gating_mechanism: str = "GLIP"
    verb_query_tgt_type: str = "vanilla"
    min_size: int = 800  # test-time resize: short side ...
    max_size: int = 1333  # ... long side at most
    # the relation form it reads: "surface" (SceneGraphParser's relation text, "sitting on": Visual Genome's
    # predicates, what RLIPv2 trained and ran it on) or "lemma" ("sit on")
    relation_text: str = "surface"
    text: dict[str, Any] = field(default_factory=lambda: dict(ROBERTA_BASE))

    @property
    def num_pairs(self) -> int:
        return self.num_queries // 2

    @property
    def num_fusions(self) -> int:
        return self.enc_layers // self.fusion_interval

    @property
    def swin(self) -> SwinSpec | None:
        spec = SWIN_VARIANTS.get(self.backbone)
        if spec is None or self.swin_depths is None:
            return spec
        return SwinSpec(spec.embed_dim, tuple(self.swin_depths), spec.num_heads, spec.window_size)

    @property
    def sine_offset(self) -> float:
        """RLIPv2's Swin backbones encode positions from pixel centres (cumsum - 0.5), its ResNet from edges."""
        return 0.5 if self.swin is not None else 0.0

    def validate(self) -> None:
        errors = []
        if self.num_fusions != self.dec_layers:
            errors.append(
                f"enc_layers // fusion_interval ({self.num_fusions}) must equal dec_layers ({self.dec_layers}): "
                "each decoder layer reads one fused text layer"
            )
        if self.num_feature_levels != 4:
            errors.append(f"num_feature_levels must be 4 (backbone stages 2-4 plus one extra), got {self.num_feature_levels}")
        if self.text.get("hidden_size") != 768:
            errors.append("the text encoder must be 768 wide (RLIPv2's fusion layers are built for 768)")
        if self.hidden_dim % self.nheads:
            errors.append("hidden_dim must be divisible by nheads")
        for name, choices in (("backbone", BACKBONES), ("gating_mechanism", GATINGS),
                              ("verb_query_tgt_type", VERB_QUERY_TYPES)):
            if getattr(self, name) not in choices:
                errors.append(f"{name} {getattr(self, name)!r} is not implemented. Choose from: {', '.join(choices)}")
        if self.swin_depths is not None and (self.swin is None or len(self.swin_depths) != 4):
            errors.append("swin_depths needs a Swin backbone and four stage depths")
        if self.relation_text not in RELATION_TEXTS:
            errors.append(f"relation_text {self.relation_text!r} is not one of {', '.join(RELATION_TEXTS)}")
        if errors:
            raise ValueError("invalid R-Tagger config: " + "; ".join(errors))

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": RTAGGER_MODEL_TYPE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RTaggerConfig:
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in data.items() if k in known})
        config.text = {**ROBERTA_BASE, **config.text}
        config.validate()
        return config

    def save(self, folder: Path) -> None:
        (Path(folder) / "config.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> RTaggerConfig:
        path = Path(folder) / "config.json"
        data = json.loads(path.read_text())
        if data.get("model_type") != RTAGGER_MODEL_TYPE:
            raise ValueError(f"{path} is not an R-Tagger config (model_type {data.get('model_type')!r})")
        return cls.from_dict(data)
