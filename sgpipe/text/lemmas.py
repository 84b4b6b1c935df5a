"""Context-free lemmas from a spaCy English lemmatizer's rule tables.

The extraction rules use them to repair a word the tagger got wrong ("leaves" tagged as a verb is
lemmatised "leave"; as a noun it is "leaf"), and the FACTUAL scorer to lemmatise gold phrases
that come without a sentence around them.
"""

from __future__ import annotations

from typing import Any


class RuleLemmas:
    def __init__(self, exceptions: Any, index: Any, rules: Any):
        self.exceptions = exceptions
        self.index = index
        self.rules = rules
        self.verbs = frozenset(index.get("verb", ()))
        self._cache: dict[tuple[str, str], str] = {}

    @classmethod
    def from_nlp(cls, nlp: Any) -> "RuleLemmas | None":
        """The tables of `nlp`'s rule lemmatizer, or None when it has none."""
        if "lemmatizer" not in nlp.pipe_names:
            return None
        lookups = nlp.get_pipe("lemmatizer").lookups
        if not all(lookups.has_table(t) for t in ("lemma_exc", "lemma_index", "lemma_rules")):
            return None
        return cls(lookups.get_table("lemma_exc"), lookups.get_table("lemma_index"), lookups.get_table("lemma_rules"))

    def lemma(self, word: str, pos: str) -> str:
        """`word` (lowercase) as a `pos` ("noun", "verb", "adj") lemma."""
        key = (word, pos)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._lemma(word, pos)
        return found

    def _lemma(self, word: str, pos: str) -> str:
        exceptions = self.exceptions.get(pos, {}).get(word)
        if exceptions:
            return exceptions[0]
        # Without a tag to say "plural", a suffix rule that lands on a known lemma wins over the
        # word itself ("legs" is in the noun index too).
        index = self.index.get(pos, ())
        for old, new in self.rules.get(pos, ()):
            if word.endswith(old):
                form = word[: len(word) - len(old)] + new
                if form in index:
                    return form
        return word
