"""RLIPv2's category tables and its matching of caption entities to them (`tag.matching: rlipv2`).

RLIPv2 names a box by its `category_id` through a fixed table, whatever names the annotation file gives:
COCO's 80 categories under their official ids (its `hico_object_names.txt`), and Objects365's 365 under ids
1..365 in the order of its paraphrase file (`o365_obj_paraphrase.json`, the v2 order with spellings fixed:
"Moniter/TV" is "monitor/tv"). The same names, in that order, are the category texts its R-Tagger reads.

An entity matches a name when one of the name's paraphrases is a substring of the entity's lower-cased
span (the noun chunk, determiner included): "man" matches "a woman", "hair" matches "a chair". Of the
image's names, in the order their first annotation comes in the file, the last one that matches wins.

The paraphrase lists are RLIPv2's own files (Apache-2.0), shipped unchanged as
`rlipv2_coco_paraphrases.json` and `rlipv2_objects365_paraphrases.json`.

A dataset of other categories gets a table of its own: a JSON file in the format of those files (category
name -> paraphrases), its categories under ids 1..N in the file's order, as RLIPv2 numbered Objects365.
Its names must be the dataset's own (the tag stage checks each box's), its paraphrases are lower-cased.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Iterable

COCO_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
    35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)
VOCABULARIES = ("coco", "objects365")
TABLE_FILE_SUFFIX = ".json"  # tag.vocabulary naming a table of one's own


def is_table_file(vocabulary: str) -> bool:
    """Whether `vocabulary` names a paraphrase file rather than one of RLIPv2's tables."""
    return vocabulary.lower().endswith(TABLE_FILE_SUFFIX)


@dataclass(frozen=True)
class RLIPv2Categories:
    """One of RLIPv2's category tables: its names in the R-Tagger's text order, by category id."""

    vocabulary: str
    names: tuple[str, ...]
    ids: tuple[int, ...]
    paraphrases: dict[str, tuple[str, ...]]

    def name_of(self, category_id: int) -> str:
        """The name RLIPv2 gives a box of `category_id`; a ValueError for an id its table lacks."""
        try:
            return self.names[self._index[category_id]]
        except KeyError:
            raise ValueError(
                f"category id {category_id} is not in RLIPv2's {self.vocabulary} table (ids "
                f"{self.ids[0]}..{self.ids[-1]}); RLIPv2's matching needs the dataset's official category ids"
            ) from None

    def index_of(self, category_id: int) -> int:
        """The position of the box's name among the category texts."""
        self.name_of(category_id)
        return self._index[category_id]

    @property
    def _index(self) -> dict[int, int]:
        return _positions(self.ids)

    def match(self, span: str, names: Iterable[str]) -> str | None:
        """The name an entity span gets among the image's `names` (annotation order): the last one with a
        paraphrase inside the lower-cased span, or None."""
        text = span.lower()
        found = None
        for name in names:
            if any(paraphrase in text for paraphrase in self.paraphrases[name]):
                found = name
        return found


@cache
def _positions(ids: tuple[int, ...]) -> dict[int, int]:
    return {category_id: i for i, category_id in enumerate(ids)}


def _table_file(path: str) -> dict[str, tuple[str, ...]]:
    """A paraphrase file of one's own: {name: [paraphrase, ...]}, every paraphrase a non-empty string."""
    from sgpipe.storage import location

    try:
        data = json.loads(location(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"tag.vocabulary {path}: not a readable JSON paraphrase file ({error})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"tag.vocabulary {path}: expected a JSON object of category name -> paraphrases")
    table = {}
    for name, words in data.items():
        if not (isinstance(words, list) and words and all(isinstance(w, str) and w.strip() for w in words)):
            raise ValueError(
                f"tag.vocabulary {path}: {name!r} needs a list of non-empty paraphrases, got {words!r}"
            )
        table[name] = tuple(w.lower() for w in words)
    return table


@cache
def rlipv2_categories(vocabulary: str) -> RLIPv2Categories:
    """RLIPv2's "coco" or "objects365" table, or one read from a paraphrase file (`is_table_file`)."""
    if is_table_file(vocabulary):
        paraphrases = _table_file(vocabulary)
    elif vocabulary in VOCABULARIES:
        text = resources.files("sgpipe.vocab").joinpath(f"rlipv2_{vocabulary}_paraphrases.json").read_text(encoding="utf-8")
        paraphrases = {name: tuple(words) for name, words in json.loads(text).items()}
    else:
        raise ValueError(
            f"RLIPv2 has no {vocabulary!r} category table. Choose from: {', '.join(VOCABULARIES)}, "
            "or a JSON paraphrase file"
        )
    names = tuple(paraphrases)
    ids = COCO_IDS if vocabulary == "coco" else tuple(range(1, len(names) + 1))
    if len(ids) != len(names):
        raise ValueError(f"RLIPv2's {vocabulary} paraphrase file holds {len(names)} names, not {len(ids)}")
    return RLIPv2Categories(vocabulary, names, ids, paraphrases)
