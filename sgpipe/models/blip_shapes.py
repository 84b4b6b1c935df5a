"""BLIP captioning models of known shapes with random weights: nothing to download.

Benchmarks and tests build them from these configs: `large` has the shapes (and so the FLOPs) of
Salesforce/blip-image-captioning-large; `large-small` keeps its structure (a vision encoder wider
than the text decoder, so 1024-wide cross-attention keys in `large`, and BERT's uncased vocabulary
and special ids) at a size a CPU test runs in seconds; `tiny` is the smallest that runs.
"""

from __future__ import annotations

from typing import Any

SIZES = ("large", "large-small", "tiny")

# BERT uncased ids: [DEC] is BLIP's decoder start token, [SEP] ends a caption
BERT_TEXT_IDS = dict(vocab_size=30524, bos_token_id=30522, pad_token_id=0, sep_token_id=102, eos_token_id=2)
# RLIPv2's prompt as the processor tokenizes it: [CLS] a picture of [SEP] (BLIP's generate then
# starts the decoder with [DEC] instead of [CLS] and drops the [SEP])
BERT_PROMPT_IDS = [101, 1037, 3861, 1997, 102]
TINY_PROMPT_IDS = [120, 10, 11, 12, 3]


def _layers(width: int, layers: int, heads: int) -> dict[str, int]:
    return dict(
        hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers, num_attention_heads=heads
    )


def blip_config(size: str) -> Any:
    """A `BlipConfig` for `size` (one of SIZES)."""
    from transformers import BlipConfig

    if size == "large":  # ViT-L/16 at 384 px, BERT-base decoder
        vision = dict(_layers(1024, 24, 16), image_size=384, patch_size=16)
        text = dict(
            _layers(768, 12, 12), encoder_hidden_size=1024, max_position_embeddings=512, **BERT_TEXT_IDS
        )
        projection = 512
    elif size == "large-small":
        vision = dict(_layers(64, 2, 4), image_size=64, patch_size=16)
        text = dict(_layers(48, 2, 4), encoder_hidden_size=64, max_position_embeddings=64, **BERT_TEXT_IDS)
        projection = 32
    elif size == "tiny":
        vision = dict(_layers(32, 2, 4), image_size=32, patch_size=8)
        text = dict(
            _layers(32, 2, 4),
            encoder_hidden_size=32,
            max_position_embeddings=64,
            vocab_size=128,
            bos_token_id=120,
            pad_token_id=0,
            sep_token_id=3,
            eos_token_id=2,
        )
        projection = 256
    else:
        raise ValueError(f"BLIP size {size!r} is not one of {', '.join(SIZES)}")
    return BlipConfig(vision_config=vision, text_config=text, projection_dim=projection)


def prompt_ids(size: str) -> list[int]:
    """The tokenized prompt "a picture of " in the vocabulary of `size`."""
    return TINY_PROMPT_IDS if size == "tiny" else BERT_PROMPT_IDS
