"""One parsed caption as plain lists, read once from spaCy's tokens.

The rules then run on Python lists instead of going back to token objects for every lookup.
The pipeline runs without its attribute_ruler and lemmatizer (together a third of its time): the
coarse part of speech follows from the fine tag, and lemmas come from the lemmatizer's own rule
tables, looked up only by tag. Regular slips of the small English pipeline are repaired here.
"""

from __future__ import annotations

from typing import Any

from sgpipe.text.lemmas import RuleLemmas

# Penn Treebank tag -> universal part of speech, as the English attribute ruler maps them.
TAG_POS = {
    **dict.fromkeys(("NN", "NNS"), "NOUN"),
    **dict.fromkeys(("NNP", "NNPS"), "PROPN"),
    **dict.fromkeys(("VB", "VBD", "VBG", "VBN", "VBP", "VBZ"), "VERB"),
    "MD": "AUX",
    **dict.fromkeys(("PRP", "PRP$", "WP", "WP$", "WDT", "EX"), "PRON"),
    **dict.fromkeys(("DT", "PDT"), "DET"),
    **dict.fromkeys(("IN", "RP"), "ADP"),
    **dict.fromkeys(("JJ", "JJR", "JJS", "AFX"), "ADJ"),
    **dict.fromkeys(("RB", "RBR", "RBS", "WRB"), "ADV"),
    "CD": "NUM",
    "CC": "CCONJ",
    **dict.fromkeys(("TO", "POS"), "PART"),
    "UH": "INTJ",
    **dict.fromkeys(("SYM", "$", "#"), "SYM"),
    **dict.fromkeys((".", ",", ":", "``", "''", "-LRB-", "-RRB-", "HYPH", "NFP"), "PUNCT"),
    "_SP": "SPACE",
}
NOUN_PLACES = frozenset(("nsubj", "nsubjpass", "dobj", "pobj", "ROOT", "conj"))
NOUN_MODIFIERS = frozenset(("det", "amod", "compound", "nummod", "poss", "prep"))


class ParsedCaption:
    __slots__ = ("text", "lower", "lemma", "pos", "tag", "dep", "head", "kids", "n")

    def __init__(self, doc: Any, lemmas: RuleLemmas | None = None) -> None:
        self.text: list[str] = []
        self.lower: list[str] = []
        self.lemma: list[str] = []
        self.pos: list[str] = []
        self.tag: list[str] = []
        self.dep: list[str] = []
        self.head: list[int] = []
        for token in doc:
            lower, tag = token.lower_, token.tag_
            self.text.append(token.text)
            self.lower.append(lower)
            self.tag.append(tag)
            self.pos.append(token.pos_ or TAG_POS.get(tag, "X"))
            self.lemma.append(
                lemmas.for_tag(lower, tag) if lemmas is not None else token.lemma_.lower() or lower
            )
            self.dep.append(token.dep_)
            self.head.append(token.head.i)
        self.n = len(self.text)
        if lemmas is not None:
            self._repair(lemmas)
        self.kids: list[list[int]] = [[] for _ in range(self.n)]
        for i, h in enumerate(self.head):
            if h != i:
                self.kids[h].append(i)

    def _repair(self, lemmas: RuleLemmas) -> None:
        for i in range(self.n):
            # "fire hydrant" parsed as fire <-amod- hydrant: the second noun is the head of a compound.
            h = self.head[i]
            if h == i - 1 and self.dep[i] == "amod" and self.pos[i] == "NOUN" and self.pos[h] == "NOUN":
                self.dep[i], self.head[i] = self.dep[h], (i if self.head[h] == h else self.head[h])
                self.dep[h], self.head[h] = "compound", i
                for j in range(self.n):
                    if self.head[j] == h and j != h:
                        self.head[j] = i
            # "leaves on the trees", "the side windows": a plural noun tagged as a verb. A word with
            # a determiner or modifier, in a noun's place, and without a subject or object is a noun.
            if self.tag[i] == "VBZ" and self.dep[i] in NOUN_PLACES:
                kids = [self.dep[k] for k in range(self.n) if self.head[k] == i and k != i]
                if (self.dep[i] != "ROOT" or any(d in NOUN_MODIFIERS for d in kids)) and not any(
                    d in ("nsubj", "dobj", "aux", "attr") for d in kids
                ):
                    self.pos[i], self.tag[i] = "NOUN", "NNS"
                    self.lemma[i] = lemmas.lemma(self.lower[i], "noun")

    def of_object(self, i: int) -> int | None:
        """The object of an "of" phrase hanging on noun `i`, if any."""
        for k in self.kids[i]:
            if self.dep[k] == "prep" and self.lower[k] == "of":
                for o in self.kids[k]:
                    if self.dep[o] == "pobj":
                        return o
        return None
