"""Batch caption parsing and the merge of an image's triplets across its captions."""

from __future__ import annotations

import dataclasses
import itertools
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from sgpipe.records import Triplet
from sgpipe.text.extract import extract_triplets
from sgpipe.text.nlp import SpacyPipeline

MAX_CHARS = 500
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_OTHER_LANGUAGES = ("fr", "de", "es", "it", "pt", "nl")


def _language_stop_words(lang: str) -> frozenset[str]:
    # Loaded from the file: importing the `spacy.lang.xx` package would compile its tokenizer
    # exceptions (seconds for French) to read one word list, and spaCy is found without importing it
    # (its import is the pipeline loader's to make, see sgpipe.text.nlp.import_spacy).
    import importlib.util

    spec = importlib.util.find_spec("spacy")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("spaCy is not installed: pip install 'spacy>=3.7,<4'")
    path = Path(spec.submodule_search_locations[0]) / "lang" / lang / "stop_words.py"
    spec = importlib.util.spec_from_file_location(f"_sgpipe_stop_words_{lang}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frozenset(module.STOP_WORDS)


@lru_cache(maxsize=1)
def _stop_words() -> tuple[frozenset[str], frozenset[str]]:
    english = _language_stop_words("en")
    foreign: set[str] = set()
    for lang in _OTHER_LANGUAGES:
        foreign |= _language_stop_words(lang)
    return english, frozenset(foreign - english)


def looks_english(text: str) -> bool:
    """False for text without letters, mostly non-Latin, or with more foreign than English function words."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    if sum(c.isascii() for c in letters) < 0.8 * len(letters):
        return False
    english, foreign = _stop_words()
    words = _WORD.findall(text.lower())
    n_foreign = sum(w in foreign for w in words)
    return n_foreign < 2 or n_foreign <= sum(w in english for w in words)


def prepare_caption(text: str, max_chars: int = MAX_CHARS) -> tuple[str | None, bool]:
    """(text to parse or None when it cannot hold English triplets, whether it was truncated)."""
    text = " ".join(text.split())
    truncated = len(text) > max_chars
    if truncated:
        cut = text.rfind(" ", 0, max_chars + 1)
        text = text[: cut if cut > max_chars // 2 else max_chars]
    if not looks_english(text):
        return None, truncated
    return text, truncated


def merge_triplets(
    per_caption: Iterable[tuple[int, Sequence[Triplet]]],
    key_of: Callable[[Triplet], tuple[str, str, str]] = lambda t: t.lemma_key,
) -> list[Triplet]:
    """One triplet per key (the lemmas by default): support = captions stating it, ids 0..n-1 in
    first-seen order."""
    merged: dict[tuple[str, str, str], Triplet] = {}
    for caption_id, triplets in per_caption:
        for t in triplets:
            key = key_of(t)
            first = merged.get(key)
            if first is None:
                merged[key] = dataclasses.replace(t, id=len(merged), support=1, caption_ids=[caption_id])
            elif caption_id not in first.caption_ids:
                first.support += 1
                first.caption_ids.append(caption_id)
    return list(merged.values())


class CaptionParser(SpacyPipeline):
    """spaCy + the extraction rules; the pipeline is loaded on first use."""

    def __init__(
        self, spacy_model: str = "en_core_web_sm", batch_size: int = 256, max_chars: int = MAX_CHARS
    ):
        super().__init__(spacy_model, batch_size)
        self.max_chars = max_chars

    def parse_prepared(self, texts: Sequence[str]) -> list[list[Triplet]]:
        """Triplets of texts already passed through `prepare_caption`."""
        nlp = self.nlp  # loads the pipeline and its lemma tables
        return [extract_triplets(doc, self._lemmas) for doc in nlp.pipe(texts, batch_size=self.batch_size)]

    def parse(self, text: str) -> list[Triplet]:
        return next(self.parse_many([text]))

    def parse_many(self, texts: Iterable[str]) -> Iterator[list[Triplet]]:
        """Triplets per text, in order, streaming in chunks (texts that are not English give [])."""
        iterator = iter(texts)
        while chunk := list(itertools.islice(iterator, self.batch_size * 8)):
            prepared = [prepare_caption(t, self.max_chars)[0] for t in chunk]
            parsed = iter(self.parse_prepared([t for t in prepared if t is not None]))
            for t in prepared:
                yield next(parsed) if t is not None else []
