"""RTaggerConfig: the architecture of RLIPv2's R-Tagger, as RLIPv2's command-line flags describe it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sgpipe.models.checkpoint import RTAGGER_MODEL_TYPE

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
    """Defaults are `scripts/verb_tagger/test_Tagger_resnet.sh` of RLIPv2 (the released R-Tagger)."""

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

    def validate(self) -> None:
        errors = []
        if self.num_fusions != self.dec_layers:
            errors.append(
                f"enc_layers // fusion_interval ({self.num_fusions}) must equal dec_layers ({self.dec_layers}): "
                "each decoder layer reads one fused text layer"
            )
        if self.num_feature_levels != 4:
            errors.append(f"num_feature_levels must be 4 (ResNet stages 2-4 plus one extra), got {self.num_feature_levels}")
        if self.text.get("hidden_size") != 768:
            errors.append("the text encoder must be 768 wide (RLIPv2's fusion layers are built for 768)")
        if self.hidden_dim % self.nheads:
            errors.append("hidden_dim must be divisible by nheads")
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
