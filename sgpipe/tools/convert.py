"""`sgpipe convert`: ground-truth scene graphs -> training shards (one module per source)."""

from sgpipe.tools.convert_synth import convert_synth
from sgpipe.tools.convert_vg import convert_vg

__all__ = ["convert_synth", "convert_vg"]
