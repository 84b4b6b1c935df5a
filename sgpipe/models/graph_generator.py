"""Caption -> scene-graph text with a transformers text2text model (FACTUAL's Flan-T5 parsers).

FACTUAL's checkpoints (`lizhuang144/flan-t5-base-VG-factual-sg` and its small/large siblings) read
"Generate Scene Graph: " + caption and write `( man , ride , horse ) , ( horse , is , brown )`;
`sgpipe.text.factual_format` reads that text. Decoding is greedy (`num_beams` 1) or beam search:
there is no sampling, so the output depends only on the captions and the batches they are cut
into; batches are fixed by the captions given (sorted by length, then by position).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from sgpipe.models.device import resolve_device, resolve_dtype
from sgpipe.models.loading import load_pretrained

if TYPE_CHECKING:
    from sgpipe.config import ParseConfig

FACTUAL_PROMPT = "Generate Scene Graph: "
MAX_INPUT_TOKENS = 128  # captions reach the model cut to 500 characters (parser.MAX_CHARS)


@dataclass(frozen=True)
class GraphDecoding:
    prompt: str = FACTUAL_PROMPT
    num_beams: int = 1
    max_new_tokens: int = 128
    batch_size: int = 64

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "num_beams": self.num_beams, "max_new_tokens": self.max_new_tokens}


class SceneGraphGenerator:
    """Tokenizer and model loaded once by `load()`; `generate` turns captions into graph texts."""

    role = "parse"

    def __init__(self, model: str, decoding: GraphDecoding, device: str = "auto", dtype: str = "auto"):
        self.model_id = model
        self.decoding = decoding
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.revision: str | None = None
        self.tokenizer: Any = None
        self.model: Any = None

    @classmethod
    def from_config(cls, config: "ParseConfig", device: str = "auto") -> "SceneGraphGenerator":
        decoding = GraphDecoding(config.prompt, config.num_beams, config.max_new_tokens, config.batch_size)
        return cls(config.model, decoding, device=device, dtype=config.dtype)

    def load(self) -> "SceneGraphGenerator":
        load_pretrained(self.model_id, self.role, self._from_pretrained)
        self.model.to(self.device).eval()
        self.revision = getattr(self.model.config, "_commit_hash", None)
        return self

    def _from_pretrained(self, source: str, **options: Any) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(source, **options)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(source, dtype=self.dtype, **options)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "revision": self.revision,
            "dtype": str(self.dtype).removeprefix("torch."),
            "decoding": self.decoding.to_dict(),
        }

    def generate(self, captions: Sequence[str]) -> list[str]:
        """One graph text per caption, in order."""
        if self.model is None:
            self.load()
        inputs = [self.decoding.prompt + caption.strip() for caption in captions]
        # Similar lengths together waste less padding; the order is a function of the input only.
        order = sorted(range(len(inputs)), key=lambda i: (len(inputs[i]), i))
        out: list[str] = [""] * len(inputs)
        size = self.decoding.batch_size
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            for row, text in zip(rows, self._generate_batch([inputs[i] for i in rows]), strict=True):
                out[row] = text
        return out

    def _generate_batch(self, texts: list[str]) -> list[str]:
        import torch

        encoded = self.tokenizer(
            texts, max_length=MAX_INPUT_TOKENS, truncation=True, padding=True, return_tensors="pt"
        )
        encoded = {name: value.to(self.device) for name, value in encoded.items() if name != "token_type_ids"}
        beams = self.decoding.num_beams
        with torch.inference_mode():
            ids = self.model.generate(
                **encoded,
                do_sample=False,
                num_beams=beams,
                early_stopping=beams > 1,
                num_return_sequences=1,
                max_new_tokens=self.decoding.max_new_tokens,
            )
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
