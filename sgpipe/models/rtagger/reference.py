"""Build the port exactly as the reference fixture describes (reduced config, deterministic weights, byte-level
tokenizer) and the fixture's inputs: shared by the equality test and the CPU benchmark."""

from __future__ import annotations

import json
import tempfile
from functools import lru_cache
from pathlib import Path

from PIL import Image

from .config import RTaggerConfig
from .fill import deterministic_fill, synthetic_image_array, write_byte_tokenizer
from .inputs import TaggerInput
from .model import RTaggerNet
from .tagger import RTagger


def tagger_for_fixture(fixture: dict, device: str = "cpu") -> RTagger:
    from transformers import RobertaTokenizerFast

    config = RTaggerConfig.from_dict(fixture["config"])  # the fields that differ from the released model's
    net = RTaggerNet.without_init(config)
    deterministic_fill(net.state_dict(), config.dec_layers)
    with tempfile.TemporaryDirectory() as folder:
        write_byte_tokenizer(folder)
        tokenizer = RobertaTokenizerFast.from_pretrained(folder)
    return RTagger(net, tokenizer, device)


def fixture_inputs(fixture: dict) -> list[TaggerInput]:
    items = []
    for case in fixture["cases"]:
        spec = case["image"]
        image = Image.fromarray(synthetic_image_array(spec["seed"], spec["width"], spec["height"]).numpy())
        pairs = [tuple(p) for p in case["pairs"]]
        items.append(TaggerInput(image, case["boxes_xywh"], case["box_labels"], pairs, case["texts"], fixture["category_names"]))
    return items


def load_fixture(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


@lru_cache(maxsize=3)
def cached_fixture_tagger(path: str) -> tuple[dict, RTagger]:
    """(fixture, its tagger), built once per process: tests share it and must not modify it."""
    fixture = load_fixture(path)
    return fixture, tagger_for_fixture(fixture)
