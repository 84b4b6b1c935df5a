"""Entity lemma -> candidate categories: the lexicon first, sentence embeddings as the fallback."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from sgpipe.vocab.lexicon import Lexicon, category_alternatives, non_object_kind, normalise

if TYPE_CHECKING:
    from sgpipe.models.text_embedder import TextEmbedder

LEXICON, EMBEDDING, UNKNOWN_WORD = "lexicon", "embedding", "unknown_word"


@dataclass(frozen=True, slots=True)
class Match:
    """How an entity matched. `categories` is empty unless `source` is "lexicon" or "embedding"
    (embedding matches: every category at or above the threshold, most similar first); otherwise
    `source` says why: "unknown_word", "body_part", "clothing" or "stuff"."""

    categories: tuple[str, ...]
    source: str

    @property
    def matched(self) -> bool:
        return bool(self.categories)


class EntityMatcher:
    """Looks entities up in a `Lexicon`; words it does not know go to the embedder (when given).

    Category-name embeddings are computed once here; per-lemma results are kept in an LRU cache,
    so the embedder runs once per distinct unknown word.
    """

    def __init__(
        self,
        lexicon: Lexicon,
        embedder: TextEmbedder | None = None,
        threshold: float = 0.55,
        cache_size: int = 65536,
    ):
        self.lexicon = lexicon
        self.embedder = embedder
        self.threshold = threshold
        self._phrases: list[str] = []
        self._phrase_category: list[int] = []
        self._phrase_vectors = None
        if embedder is not None and lexicon.categories:
            for index, category in enumerate(lexicon.categories):
                alternatives = category_alternatives(category)
                # "handbag/satchel" itself is no phrase; its parts are
                for phrase in alternatives[1:] if len(alternatives) > 1 else alternatives:
                    self._phrases.append(phrase)
                    self._phrase_category.append(index)
            self._phrase_vectors = embedder.embed(self._phrases)
        self._by_embedding = lru_cache(maxsize=cache_size)(self._embedding_match)

    def match(self, lemma: str) -> Match:
        categories = self.lexicon.lookup(lemma)
        if categories:
            return Match(categories, LEXICON)
        kind = non_object_kind(lemma)
        if kind is not None:
            return Match((), kind)
        lemma = normalise(lemma)
        if self._phrase_vectors is None or not lemma:
            return Match((), UNKNOWN_WORD)
        return self._by_embedding(lemma)

    def _embedding_match(self, lemma: str) -> Match:
        import torch

        similarity = (self.embedder.embed([lemma]) @ self._phrase_vectors.T)[0]
        words = lemma.split()
        for i, phrase in enumerate(self._phrases):
            # English compounds are head-final: "hair" (in "hair drier") is no drier and a "bus stop"
            # no bus, however close their embeddings are
            name = phrase.split()
            if _is_modifier(words, name) or _is_modifier(name, words):
                similarity[i] = -1.0
        best = torch.full((len(self.lexicon.categories),), -1.0)
        best.scatter_reduce_(0, torch.tensor(self._phrase_category), similarity, reduce="amax")
        order = torch.argsort(best, descending=True, stable=True).tolist()
        chosen = tuple(self.lexicon.categories[i] for i in order if best[i] >= self.threshold)
        return Match(chosen, EMBEDDING if chosen else UNKNOWN_WORD)


def _is_modifier(part: list[str], compound: list[str]) -> bool:
    """`part` occurs in `compound` before its last word."""
    n = len(part)
    return any(compound[i : i + n] == part for i in range(len(compound) - n))
