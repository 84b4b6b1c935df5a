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
        # The tables hold lists, keyed by string hashes: sets of the parts of speech used, for lookups.
        self.index = {pos: frozenset(index.get(pos, ())) for pos in ("noun", "verb", "adj", "adv")}
        self.rules = rules
        self.verbs = self.index.get("verb", frozenset())
        self._cache: dict[tuple[str, str], str] = {}

    @classmethod
    def from_nlp(cls, nlp: Any) -> "RuleLemmas | None":
        """The tables of `nlp`'s rule lemmatizer, or None when it has none."""
        if "lemmatizer" not in nlp.component_names:  # present even when disabled
            return None
        lookups = nlp.get_pipe("lemmatizer").lookups
        if not all(lookups.has_table(t) for t in ("lemma_exc", "lemma_index", "lemma_rules")):
            return None
        return cls(
            lookups.get_table("lemma_exc"), lookups.get_table("lemma_index"), lookups.get_table("lemma_rules")
        )

    def lemma(self, word: str, pos: str) -> str:
        """`word` (lowercase) as a `pos` ("noun", "verb", "adj") lemma."""
        key = (word, pos)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._lemma(word, pos)
        return found

    def for_tag(self, word: str, tag: str) -> str:
        """The lemma of `word` (lowercase) with Penn tag `tag`."""
        if tag in ("NNS", "NNPS"):
            return self.lemma(word, "noun")
        if tag in _INFLECTED_VERB_TAGS:
            return _CLITICS.get(word) or self.lemma(word, "verb")
        if tag in ("JJR", "JJS"):
            return self.lemma(word, "adj")
        return word

    def _lemma(self, word: str, pos: str) -> str:
        exceptions = self.exceptions.get(pos, {}).get(word)
        if exceptions:
            return exceptions[0]
        if pos == "verb":
            found = self._verb_stem(word)
            if found:
                return found
        # Without a tag to say "plural", a suffix rule that lands on a known lemma wins over the
        # word itself ("legs" is in the noun index too).
        index = self.index.get(pos, frozenset())
        for old, new in self.rules.get(pos, ()):
            if word.endswith(old):
                form = word[: len(word) - len(old)] + new
                if form in index:
                    return form
        return word

    def _verb_stem(self, word: str) -> str | None:
        """-ing and -ed forms, where the suffix rules alone pick badly ("riding" -> "rid")."""
        index = self.verbs
        for suffix in ("ing", "ed"):
            if not word.endswith(suffix) or len(word) < len(suffix) + 2:
                continue
            stem = word[: -len(suffix)]
            if stem[-1] == stem[-2] and stem[:-1] in index:  # "sitting" -> sit, "hopped" -> hop
                return stem[:-1]
            with_e = stem + "e"
            if with_e in index and stem in index:
                # English doubles a single consonant after a short vowel ("ridding" from rid), so an
                # undoubled vowel-consonant ending ("riding") keeps the silent e; "swinging" does not.
                return with_e if _short_vowel_end(stem) else stem
            if with_e in index:
                return with_e
            if stem in index:
                return stem
        return None


_VOWELS = frozenset("aeiou")
_INFLECTED_VERB_TAGS = frozenset(("VBD", "VBG", "VBN", "VBP", "VBZ", "MD"))
_CLITICS = {"'s": "be", "'re": "be", "'m": "be", "'ve": "have", "'d": "would", "'ll": "will"}


def _short_vowel_end(stem: str) -> bool:
    return (
        len(stem) >= 3
        and stem[-1] not in _VOWELS
        and stem[-1] not in "wxy"
        and stem[-2] in _VOWELS
        and stem[-3] not in _VOWELS
    )
