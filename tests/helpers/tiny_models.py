"""Tiny real models built from transformers configs with random weights, saved to a folder.

They go through the same `from_pretrained` loading and generation code as the real checkpoints,
so tests exercise the production path without any download.
"""

from __future__ import annotations

from pathlib import Path

# BERT-style special tokens as BLIP's tokenizer has them; [DEC] is BLIP's decoder start token.
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
WORDS = [
    "a",
    "picture",
    "of",
    "the",
    "dog",
    "cat",
    "man",
    "woman",
    "person",
    "horse",
    "riding",
    "sitting",
    "on",
    "in",
    "next",
    "to",
    "holding",
    "table",
    "chair",
    "bench",
    "car",
    "street",
    "grass",
    "frisbee",
    "with",
    "and",
    "is",
    "standing",
    "near",
    "tree",
]


def tiny_blip_vocab() -> dict[str, int]:
    return {token: index for index, token in enumerate(SPECIAL_TOKENS + WORDS)}


def build_tiny_blip(path: str | Path, image_size: int = 32, seed: int = 0) -> Path:
    """Save a randomly initialised BLIP captioner (model + BlipProcessor) to `path`; return the path."""
    import torch
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    path = Path(path)
    vocab = tiny_blip_vocab()
    tokenizer = BertTokenizerFast(
        vocab=vocab,
        do_lower_case=True,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        bos_token="[DEC]",
    )
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)

    config = BlipConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": image_size,
            "patch_size": 8,
        },
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "encoder_hidden_size": 32,
            "max_position_embeddings": 64,
            "bos_token_id": vocab["[DEC]"],
            "pad_token_id": vocab["[PAD]"],
            "sep_token_id": vocab["[SEP]"],
            "eos_token_id": vocab["[SEP]"],
        },
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config)
    model.save_pretrained(path)
    return path


def save_tiny_verifier(path: str | Path, prior_prob: float = 0.3, seed: int = 0) -> Path:
    """A tiny verifier checkpoint (`config.json` + `model.safetensors`) with seeded random weights."""
    import torch

    from sgpipe.models.verifier import Verifier, tiny_config

    torch.manual_seed(seed)
    return Verifier.build(tiny_config(prior_prob=prior_prob)).save_pretrained(Path(path))
