"""Generated scene graphs -> `Triplet`s filled as the rule parser fills them.

A generated entity ("bushes", "fire hydrant") is found in its caption's spaCy parse: its head
lemma, compounds included, and its surface phrase (the head with the modifiers before it, so
attributes show up there, "green lawn", as they do with the rule parser) come from that token.
An entity the caption does not contain (the model paraphrased) keeps its generated words, the
last one lemmatised as a noun. The predicate keeps the model's lemmas ("sit in"); its surface
text is the caption's verb form when the caption holds the verb ("sitting in").
"""

from __future__ import annotations

from typing import Any, Sequence

from sgpipe.records import Triplet
from sgpipe.text.entities import NOMINAL, entity_lemma, entity_text
from sgpipe.text.factual_format import GeneratedGraph
from sgpipe.text.lemmas import RuleLemmas
from sgpipe.text.word_classes import PERSON_PRONOUNS, PREDICATE_LEMMAS
from sgpipe.text.nlp import load_spacy
from sgpipe.text.tokens import ParsedCaption


class GraphTriplets:
    """spaCy loaded on first use, as `CaptionParser` loads it."""

    def __init__(self, spacy_model: str = "en_core_web_sm", batch_size: int = 256):
        self.spacy_model = spacy_model
        self.batch_size = batch_size
        self._nlp: Any = None
        self._lemmas: RuleLemmas | None = None

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            self._nlp = load_spacy(self.spacy_model)
            self._lemmas = RuleLemmas.from_nlp(self._nlp)
        return self._nlp

    def describe(self) -> dict[str, Any]:
        meta = self.nlp.meta
        return {
            "spacy_model": f"{meta.get('lang')}_{meta.get('name')}",
            "spacy_model_version": meta.get("version"),
        }

    def triplets(self, captions: Sequence[str], graphs: Sequence[GeneratedGraph]) -> list[list[Triplet]]:
        """Each caption's relations as triplets, deduplicated on their lemma key, in graph order."""
        nlp = self.nlp
        out = []
        for doc, graph in zip(nlp.pipe(captions, batch_size=self.batch_size), graphs, strict=True):
            parse = ParsedCaption(doc, self._lemmas)
            seen: set[tuple[str, str, str]] = set()
            found = []
            for subject, predicate, object_ in graph.relations:
                s_lemma, s_text = self._entity(parse, subject)
                o_lemma, o_text = self._entity(parse, object_)
                p_lemma, p_text = self._predicate(parse, predicate)
                key = (s_lemma, p_lemma, o_lemma)
                if key in seen or not all(key):
                    continue
                seen.add(key)
                found.append(Triplet(s_lemma, p_lemma, o_lemma, s_text, p_text, o_text))
            out.append(found)
        return out

    def _noun_lemma(self, word: str) -> str:
        return self._lemmas.lemma(word, "noun") if self._lemmas is not None else word

    def _entity(self, p: ParsedCaption, phrase: str) -> tuple[str, str]:
        words = phrase.split()
        head, lemma = words[-1], self._noun_lemma(words[-1])
        matches = [
            i for i in range(p.n) if p.lower[i] == head or (p.pos[i] in NOMINAL and p.lemma[i] == lemma)
        ]
        if matches:
            # the mention whose words before the head match the phrase best ("side window" vs "window")
            i = max(matches, key=lambda i: (_shared_prefix(p, i, words), -i))
            if p.pos[i] in NOMINAL or p.pos[i] == "PRON":
                return entity_lemma(p, i), entity_text(p, i)
            return " ".join(words[:-1] + [lemma]), entity_text(p, i)  # a noun the tagger missed
        if len(words) == 1 and head in PERSON_PRONOUNS:
            return PERSON_PRONOUNS[head], phrase
        return " ".join(words[:-1] + [lemma]), phrase

    def _predicate(self, p: ParsedCaption, phrase: str) -> tuple[str, str]:
        words = phrase.split()
        lemma = " ".join(PREDICATE_LEMMAS.get(w, w) for w in words)
        first = words[0]
        for i in range(p.n):
            if p.pos[i] in ("VERB", "AUX") and first in (p.lemma[i], p.lower[i]):
                return lemma, " ".join([p.text[i], *words[1:]])
        return lemma, phrase


def _shared_prefix(p: ParsedCaption, i: int, words: list[str]) -> int:
    """How many of the phrase's words before its head stand right before token `i`."""
    n = 0
    for offset, word in enumerate(reversed(words[:-1]), 1):
        if i - offset < 0 or p.lower[i - offset] != word:
            break
        n += 1
    return n
