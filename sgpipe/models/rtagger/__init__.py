"""RLIPv2's R-Tagger (relation tagger) in plain PyTorch: config, network (ResNet-50 or Swin backbone), inputs,
the `RTagger` scorer.

Weights come from RLIPv2's checkpoints through `sgpipe convert rtagger` (see convert.py and flags.py)."""

from .config import RTaggerConfig
from .inputs import TaggerInput
from .tagger import RTagger

__all__ = ["RTagger", "RTaggerConfig", "TaggerInput"]
