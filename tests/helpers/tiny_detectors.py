"""Tiny zero-shot detectors (Grounding DINO, OWLv2) built from transformers configs, random weights.

They load through `AutoModelForZeroShotObjectDetection` and `AutoProcessor` like the released
checkpoints. Grounding DINO reads its phrase delimiters by BERT-base-uncased's token ids ([CLS] 101,
[SEP] 102, "." 1012, "?" 1029), so the tiny vocabulary keeps them at those ids.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from types import SimpleNamespace

WORDS = ["a", "the", "man", "horse", "dog", "person", "bicycle", "cat", "table", "fire", "hydrant", "kite"]
BERT_IDS = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}


def build_tiny_grounding_dino(path: str | Path, seed: int = 0, max_text_len: int = 32) -> Path:
    import torch
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        SwinConfig,
    )

    path = Path(path)
    tokens = [BERT_IDS.get(i, f"[unused{i}]") for i in range(1030)] + WORDS
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)
    images = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(path)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
            window_size=4, out_indices=[2, 3, 4],
        ),
        text_config=BertConfig(
            vocab_size=len(tokens), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=64,
        ),
        num_queries=20, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        d_model=32, encoder_attention_heads=2, decoder_attention_heads=2, encoder_n_points=2,
        decoder_n_points=2, max_text_len=max_text_len,
    )
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(config).save_pretrained(path)
    return path


def build_tiny_owlv2(path: str | Path, seed: int = 0) -> Path:
    """OWLv2 with a character-level CLIP tokenizer (every letter a token, no merges)."""
    import torch
    from transformers import (
        CLIPTokenizer,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessorPil,
        Owlv2Processor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + ".,'-")
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars])}
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1, "!": len(vocab) + 2})
    (path / "tiny_vocab.json").write_text(json.dumps(vocab))
    (path / "tiny_merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(path / "tiny_vocab.json"), str(path / "tiny_merges.txt"), pad_token="!",
                              model_max_length=16)
    images = Owlv2ImageProcessorPil(size={"height": 64, "width": 64})
    Owlv2Processor(image_processor=images, tokenizer=tokenizer).save_pretrained(path)
    config = Owlv2Config(
        text_config={
            "vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"], "pad_token_id": vocab["!"],
        },
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 64, "patch_size": 16},
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(config)
    with torch.no_grad():  # random offsets push every box off the image: boxes are the patch grid's
        model.box_head.dense2.weight.zero_()
    model.save_pretrained(path)
    return path


# what the stub model "sees": phrase word -> (query, logit); boxes per query, normalised cx, cy, w, h
WORD_LOGITS = {"horse": (0, 4.0), "fire": (1, 1.0), "hydrant": (1, 3.0), "kite": (2, 2.0)}
QUERY_BOXES = [(0.5, 0.5, 0.2, 0.4), (0.25, 0.25, 0.1, 0.1), (0.8, 0.5, 0.2, 0.2)]


class StubDino:
    """Grounding DINO's outputs from its token ids: each known word's tokens get that word's logit on
    its query, every other token -8 (probability 0.0003)."""

    def __init__(self, tokenizer, max_text_len=32):
        self.config = SimpleNamespace(model_type="grounding-dino", max_text_len=max_text_len)
        self.ids = {tokenizer.convert_tokens_to_ids(w): v for w, v in WORD_LOGITS.items()}
        self.calls = []

    def __call__(self, input_ids, pixel_values, **inputs):
        import torch

        self.calls.append(tuple(input_ids.shape))
        batch, length = input_ids.shape
        logits = torch.full((batch, len(QUERY_BOXES), self.config.max_text_len), float("-inf"))
        logits[:, :, :length] = -8.0
        for b in range(batch):
            for t, token in enumerate(input_ids[b].tolist()):
                if token in self.ids:
                    query, value = self.ids[token]
                    logits[b, query, t] = value
        boxes = torch.tensor(QUERY_BOXES).expand(batch, -1, -1)
        return SimpleNamespace(logits=logits, pred_boxes=boxes)


class StubOwl:
    """OWLv2's outputs from its queries: a known word's query gets its logit on its proposal."""

    def __init__(self, tokenizer):
        self.config = SimpleNamespace(model_type="owlv2")
        self.tokenizer = tokenizer

    def __call__(self, input_ids, pixel_values, **inputs):
        import torch

        batch = pixel_values.shape[0]
        queries = input_ids.shape[0] // batch
        texts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        logits = torch.full((batch, len(QUERY_BOXES), queries), -8.0)
        for i, text in enumerate(texts):
            for word in text.split():
                if word in WORD_LOGITS:
                    query, value = WORD_LOGITS[word]
                    logits[i // queries, query, i % queries] = value
        return SimpleNamespace(logits=logits, pred_boxes=torch.tensor(QUERY_BOXES).expand(batch, -1, -1))
