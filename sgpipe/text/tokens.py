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
        if lemmas is not None:
            self._repair_with_lists()

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

    def _repair_with_lists(self) -> None:
        """Coordination after "with", attached where captions almost never mean it.

        "a kitchen with a stove and a refrigerator": the parser may coordinate the refrigerator with
        the kitchen; it belongs to the stove. "a man with a hat and a woman with a bag": a noun with
        its own "with" phrase coordinated to the hat belongs to the man.
        """
        for k in range(self.n):
            if self.dep[k] != "prep" or self.lower[k] != "with":
                continue
            owner = self.head[k]
            objects = [o for o in self.kids[k] if self.dep[o] == "pobj"]
            if not objects or self.pos[owner] not in ("NOUN", "PROPN"):
                continue
            o = objects[0]
            for c in list(self.kids[owner]):
                if self.dep[c] == "conj" and c > o and not self._has_prep(c):
                    self._move(c, o)
            for c in list(self.kids[o]):
                if self.dep[c] == "conj" and any(
                    self.dep[x] == "prep" and self.lower[x] == "with" for x in self.kids[c]
                ):
                    self._move(c, owner)

    def _has_prep(self, i: int) -> bool:
        return any(self.dep[x] == "prep" for x in self.kids[i])

    def _move(self, i: int, new_head: int) -> None:
        self.kids[self.head[i]].remove(i)
        self.head[i] = new_head
        self.kids[new_head].append(i)
        self.kids[new_head].sort()

    def of_object(self, i: int) -> int | None:
        """The object of an "of" phrase hanging on noun `i`, if any."""
        for k in self.kids[i]:
            if self.dep[k] == "prep" and self.lower[k] == "of":
                for o in self.kids[k]:
                    if self.dep[o] == "pobj":
                        return o
        return None
