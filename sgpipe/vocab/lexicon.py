"""Entity lemma -> the dataset's box categories, by whole words only.

A `Lexicon` is built for one dataset's category list. Each category is reachable by its own name
(alternatives split on "/", case and spacing normalised) and, when a bundled vocabulary covers the
dataset (COCO 80, Objects365 365), by the curated synonyms and hyponyms listed for it in
`coco.json` / `objects365.json`. Lookup never matches substrings: "hair" is not "chair" and never
"person". A compound is tried whole first ("fire hydrant"), then by dropping leading words
("tennis player" -> "player"), unless the bundled vocabularies know the whole compound as something
else ("hot dog" is food, so it does not fall back to "dog").
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from importlib import resources

VOCABULARIES = ("coco", "objects365")
# Share of a dataset's category names that must be known to a bundled vocabulary for "auto" to use it.
AUTO_MIN_OVERLAP = 0.5


def normalise(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").replace("_", " ").split())


def singular(word: str) -> str:
    """A light English singular for category names and stray plurals (the parser already lemmatises)."""
    if len(word) <= 3 or word.endswith(("ss", "us", "ics")) or (word.endswith("is") and len(word) > 4):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes", "uses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def _singular_phrase(phrase: str) -> str:
    words = phrase.split()
    return " ".join(words[:-1] + [singular(words[-1])]) if words else phrase


@cache
def load_vocabulary(name: str) -> dict[str, tuple[str, ...]]:
    """Bundled vocabulary: normalised category name -> normalised terms (the name included)."""
    if name not in VOCABULARIES:
        raise ValueError(f"unknown vocabulary {name!r}; choose from: {', '.join(VOCABULARIES)}")
    raw = json.loads(resources.files("sgpipe.vocab").joinpath(f"{name}.json").read_text(encoding="utf-8"))
    return {normalise(k): tuple(dict.fromkeys(normalise(t) for t in terms)) for k, terms in raw.items()}


@lru_cache(maxsize=1)
def _bundled_terms() -> dict[str, frozenset[str]]:
    """Every bundled term -> the normalised category names it denotes, across vocabularies."""
    index: dict[str, set[str]] = {}
    for name in VOCABULARIES:
        for category, terms in load_vocabulary(name).items():
            for term in terms:
                index.setdefault(term, set()).add(category)
    return {term: frozenset(cats) for term, cats in index.items()}


@lru_cache(maxsize=1)
def _non_objects() -> dict[str, str]:
    raw = json.loads(resources.files("sgpipe.vocab").joinpath("non_objects.json").read_text(encoding="utf-8"))
    index: dict[str, str] = {}
    for kind, terms in raw.items():
        for term in terms:
            index.setdefault(normalise(term), kind)
    return index


def non_object_kind(lemma: str) -> str | None:
    """ "body_part", "clothing" or "stuff" when the lemma (or its head word) names no box-able thing.

    Used to keep such words from the embedding fallback: "hair" is close to "hair drier" in
    embedding space, "water" to "bottle", and neither is either.
    """
    words = normalise(lemma).split()
    if not words:
        return None
    index = _non_objects()
    return index.get(" ".join(words)) or index.get(words[-1]) or index.get(singular(words[-1]))


def choose_vocabulary(categories: list[str]) -> str:
    """ "auto": the bundled vocabulary that knows most of the names (>= half), else "none"."""
    names = {normalise(c) for c in categories}
    if not names:
        return "none"
    best, best_share = "none", 0.0
    for vocab in VOCABULARIES:  # ties go to the first (COCO: a COCO subset is also Objects365-like)
        known = load_vocabulary(vocab)
        share = sum(n in known for n in names) / len(names)
        if share > best_share:
            best, best_share = vocab, share
    return best if best_share >= AUTO_MIN_OVERLAP else "none"


def category_alternatives(category: str) -> list[str]:
    """ "Handbag/Satchel" -> ["handbag/satchel", "handbag", "satchel"] (normalised, deduplicated)."""
    parts = [normalise(category)] + [normalise(p) for p in category.split("/")]
    return list(dict.fromkeys(p for p in parts if p))


class Lexicon:
    """Maps entity lemmas to the category names of one dataset."""

    def __init__(self, categories: list[str], vocabulary: str = "auto"):
        self.categories = list(dict.fromkeys(categories))
        self.vocabulary = choose_vocabulary(self.categories) if vocabulary == "auto" else vocabulary
        curated = load_vocabulary(self.vocabulary) if self.vocabulary in VOCABULARIES else {}
        terms: dict[str, list[str]] = {}
        for category in self.categories:
            own = category_alternatives(category)
            words = own + [_singular_phrase(a) for a in own] + list(curated.get(normalise(category), ()))
            for term in dict.fromkeys(words):
                bucket = terms.setdefault(term, [])
                if category not in bucket:
                    bucket.append(category)
        self._terms = {t: tuple(cats) for t, cats in terms.items()}

    def __contains__(self, term: str) -> bool:
        return normalise(term) in self._terms

    def lookup(self, lemma: str) -> tuple[str, ...]:
        """Category names for an entity lemma, () when no whole-word term matches."""
        words = normalise(lemma).split()
        bundled = _bundled_terms()
        for start in range(len(words)):
            phrase = " ".join(words[start:])
            for form in dict.fromkeys((phrase, _singular_phrase(phrase))):
                if form in self._terms:
                    return self._terms[form]
            if start > 0 or len(words) == 1:
                continue
            # Leading words are about to be dropped: refuse when the whole compound is a known
            # thing unrelated to its last word ("hot dog" is not a "dog").
            known = bundled.get(phrase)
            head = bundled.get(words[-1])
            if known and head is not None and not (known & head):
                return ()
        return ()
