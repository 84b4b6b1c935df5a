import torch

from sgpipe.vocab import Lexicon
from sgpipe.vocab.matcher import EntityMatcher


class TableEmbedder:
    """Unit vectors from a fixed table (unknown texts: a vector orthogonal to all); counts its calls."""

    def __init__(self, table: dict[str, list[float]]):
        self.table = table
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> torch.Tensor:
        self.calls.append(list(texts))
        rows = [self.table.get(t, [0.0, 0.0, 0.0, 1.0]) for t in texts]
        return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


TABLE = {
    "dog": [1, 0, 0, 0],
    "cat": [0, 1, 0, 0],
    "hair drier": [0, 0, 1, 0],
    "handbag": [0.6, 0, 0.8, 0],
    "drier hood": [0, 0, 1, 0],
    "satchel": [0, 0.2, 0.98, 0],
    "pooch": [0.95, 0.31, 0, 0],  # cos 0.95 to dog, 0.31 to cat
    "feline": [0.3, 0.95, 0, 0],  # cos 0.3 dog, 0.95 cat
    "blowdryer": [0, 0, 1, 0],
    "hair": [0, 0, 1, 0],  # body part: must never reach the embedder
    "drier": [0, 0, 1, 0],
}


def matcher(categories=("dog", "cat", "hair drier", "Handbag/Satchel"), threshold=0.5):
    embedder = TableEmbedder(TABLE)
    return EntityMatcher(Lexicon(list(categories), vocabulary="none"), embedder, threshold), embedder


def test_category_phrases_are_embedded_once_with_slash_alternatives():
    _m, embedder = matcher()
    assert embedder.calls == [["dog", "cat", "hair drier", "handbag", "satchel"]]


def test_lexicon_first_embedder_only_for_unknown_words_and_cached():
    m, embedder = matcher()
    assert m.match("dogs").source == "lexicon" and len(embedder.calls) == 1
    first = m.match("pooch")
    assert first.source == "embedding" and first.categories == ("dog", "Handbag/Satchel")
    m.match("pooch"), m.match("Pooch ")
    assert len(embedder.calls) == 2  # one embedding for the lemma, then the cache


def test_threshold_and_order():
    m, _ = matcher(threshold=0.9)
    assert m.match("feline").categories == ("cat",)
    assert m.match("pooch").categories == ("dog",)
    assert m.match("zzz").source == "unknown_word" and m.match("zzz").categories == ()


def test_non_objects_never_reach_the_embedder():
    m, embedder = matcher()
    assert m.match("hair").source == "body_part"
    assert m.match("long hair").source == "body_part"
    assert m.match("shirt").source == "clothing"
    assert m.match("sky").source == "stuff"
    assert m.match("wheel").source == "part"
    assert len(embedder.calls) == 1


def test_a_modifier_of_a_category_name_is_not_that_category():
    # "drier" is the head of "hair drier" (a drier may be one); "blowdryer" is not a word of it at all
    m, _ = matcher()
    assert m.match("blowdryer").categories[0] == "hair drier"
    m2, _ = matcher(categories=("dog", "drier hood"))
    assert m2.match("drier").categories == ()  # cosine 1.0, refused as a modifier


def test_without_embedder_unknown_words_stay_unknown():
    m = EntityMatcher(Lexicon(["dog"], vocabulary="none"), None)
    assert m.match("pooch").source == "unknown_word"
    assert m.match("dog").categories == ("dog",)


def test_a_category_as_modifier_of_the_lemma_is_not_that_category():
    embedder = TableEmbedder({"dog": [1, 0, 0, 0], "dog bowl": [1, 0, 0, 0], "big dog": [1, 0, 0, 0]})
    m = EntityMatcher(Lexicon(["dog"], vocabulary="none"), embedder, 0.5)
    # a lexicon miss on purpose: the lexicon would take "big dog" by its head word
    assert m._embedding_match("dog bowl").categories == ()
    assert m._embedding_match("big dog").categories == ("dog",)
