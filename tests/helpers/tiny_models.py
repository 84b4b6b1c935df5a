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


def build_tiny_t5(
    path: str | Path, pairs: list[tuple[str, str]], prompt: str = "Generate Scene Graph: ", steps: int = 120
) -> Path:
    """Save a tiny T5 (a word-level tokenizer over the pairs' words) taught to write each pair's graph.

    Built from a `T5Config` with random weights, then trained for a few steps on `pairs` (caption,
    graph text) until it reproduces them, so tests can say what the real generate path must give.
    """
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    path = Path(path)
    special = ["<pad>", "</s>", "<unk>"]  # T5's ids: pad 0 (also the decoder start), eos 1
    splitter = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    words = sorted(
        {
            w
            for caption, graph in pairs
            for w, _ in splitter.pre_tokenize_str(f"{prompt}{caption} {graph}".lower())
        }
    )
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(special + words)}, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = splitter
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(path)

    config = T5Config(
        vocab_size=len(special) + len(words),
        d_model=32,
        d_ff=64,
        d_kv=8,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains fastest on one thread, and spares shared cores
    try:
        torch.manual_seed(0)
        model = T5ForConditionalGeneration(config)
        inputs = tokenizer([prompt + caption for caption, _ in pairs], padding=True, return_tensors="pt")
        labels = tokenizer([graph for _, graph in pairs], padding=True, return_tensors="pt").input_ids
        labels[labels == tokenizer.pad_token_id] = -100
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(steps):
            loss = model(**inputs, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(path)
    return path


# What the tiny FACTUAL-style parser is taught: the tiny COCO fixture's captions and a few more.
# Graph texts as FACTUAL's parsers write them, including an attribute, a quantity, a repeated tuple
# and, for the last caption, a graph cut off by the token limit.
FACTUAL_PAIRS = [
    ("a man riding a bicycle next to a dog", "( man , ride , bicycle ) , ( man , next to , dog )"),
    ("a dog sitting next to a person", "( dog , sit next to , person ) , ( person , is , 2 )"),
    (
        "white stove in a kitchen",
        "( stove , is , white ) , ( stove , in , kitchen ) , ( stove , in , kitchen )",
    ),
    (
        "trees and bushes growing on green lawn",
        "( bushes , grow on , lawn ) , ( trees , grow on , lawn ) , ( lawn , is , green )",
    ),
    ("a person standing behind a bicycle", "( person , stand behind , bicycle ) , ( bicycle ,"),
]
