"""`sgpipe convert`: ground-truth scene graphs or released pseudo-labels -> shards (one module per source)."""

from sgpipe.tools.convert_rlipv2 import convert_rlipv2
from sgpipe.tools.convert_synth import convert_synth
from sgpipe.tools.convert_vg import convert_vg

__all__ = ["convert_rlipv2", "convert_synth", "convert_vg"]
