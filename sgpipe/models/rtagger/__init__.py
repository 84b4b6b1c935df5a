"""RLIPv2's R-Tagger (relation tagger) in plain PyTorch: config, network (ResNet-50 or Swin backbone), inputs,
the `RTagger` scorer, and `score_groups` for RLIPv2's batches of candidate groups sharing one merged text list.

Weights come from RLIPv2's checkpoints through `sgpipe convert rtagger` (see convert.py and flags.py)."""

from .config import RTaggerConfig
from .groups import GroupedInput, score_groups
from .inputs import TaggerInput
from .tagger import RTagger

__all__ = ["GroupedInput", "RTagger", "RTaggerConfig", "TaggerInput", "score_groups"]
