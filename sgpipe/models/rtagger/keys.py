"""State-dict key names shared by the port, its converter and the reference script (no sgpipe imports).

The port keeps RLIPv2's own key names. The official model registers each decoder box head twice: once at
the top (`sub_bbox_embed.K`, `obj_bbox_embed.K`, K < 2 * dec_layers) and once inside the decoder that uses
it (`transformer.ho_decoder.sub_bbox_embed.i` is `sub_bbox_embed.i`, `transformer.verb_decoder.sub_bbox_embed.i`
is `sub_bbox_embed.{dec_layers + i}`). The port holds only the top-level names.
"""

from __future__ import annotations

import re

_ALIAS = re.compile(r"^transformer\.(ho_decoder|verb_decoder)\.(sub_bbox_embed|obj_bbox_embed)\.(\d+)\.(.+)$")
# Saved by older transformers releases as a persistent buffer; derived from the config, never needed.
IGNORED_KEYS = ("transformer.text_encoder.embeddings.position_ids",)
# Swin's relative position index: a function of the window size, which the port computes.
_DERIVED = re.compile(r"^backbone\.0\.body\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index$")


def canonical_key(name: str, dec_layers: int) -> str:
    """The port's name for an official key (aliases of the box heads -> their top-level name)."""
    match = _ALIAS.match(name)
    if match is None:
        return name
    decoder, head, index, rest = match.groups()
    offset = 0 if decoder == "ho_decoder" else dec_layers
    return f"{head}.{int(index) + offset}.{rest}"


def is_alias(name: str) -> bool:
    return _ALIAS.match(name) is not None


def is_derived(name: str) -> bool:
    return _DERIVED.match(name) is not None
