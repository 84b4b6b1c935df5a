"""RLIPv2's R-Tagger (relation tagger) in plain PyTorch: config, network, inputs, the `RTagger` scorer.

Weights come from RLIPv2's released checkpoint through `sgpipe convert rtagger` (see convert.py)."""

from .config import RTaggerConfig
from .inputs import TaggerInput
from .tagger import RTagger

__all__ = ["RTagger", "RTaggerConfig", "TaggerInput"]
