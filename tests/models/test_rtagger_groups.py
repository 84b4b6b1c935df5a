"""`score_groups`: RLIPv2's batches of candidate groups (one image, one merged text list, groups of pairs).

Its equality with RLIPv2's own loop is proven end to end in tests/rlipv2_flow; here, its relation to the
per-image path (itself equal to RLIPv2's code, test_rtagger.py) and what a batch's texts do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sgpipe.models.device import one_thread
from sgpipe.models.rtagger import GroupedInput, score_groups
from sgpipe.models.rtagger.reference import cached_fixture_tagger, fixture_inputs

REFERENCE = Path(__file__).parent / "rtagger_fixtures" / "reference_scores.json"
BATCH_TOLERANCE = 2e-5  # batched with other images vs alone (as test_rtagger.py)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def tagger():
    return cached_fixture_tagger(str(REFERENCE))[1]


@pytest.fixture(scope="module")
def items():
    return fixture_inputs(cached_fixture_tagger(str(REFERENCE))[0])


def _grouped(item, groups, texts=None) -> GroupedInput:
    return GroupedInput(item.image, item.boxes_xywh, item.box_labels, item.category_names,
                        list(item.texts if texts is None else texts), groups)


def test_one_group_is_the_per_image_score(tagger, items):
    for item in items:
        [[scores]] = score_groups(tagger, [_grouped(item, [item.pairs])])
        single = tagger.score(item.image, item.boxes_xywh, item.box_labels, item.pairs, item.texts, item.category_names)
        assert np.abs(scores - single).max() < BATCH_TOLERANCE


def test_groups_of_a_batch_share_its_texts_and_not_their_queries(tagger, items):
    """Two groups of one image: each scores as its pairs alone with the batch's texts (the encoding is
    shared, the decoding is not); a different text list moves the scores (the image is fused with it)."""
    item = items[2]
    first, second = item.pairs[:2], item.pairs[2:]
    texts = list(item.texts) + ["riding", "holding"]
    [[a, b]] = score_groups(tagger, [_grouped(item, [first, second], texts)])
    [[a_alone]] = score_groups(tagger, [_grouped(item, [first], texts)])
    [[b_alone]] = score_groups(tagger, [_grouped(item, [second], texts)])
    assert a.shape == (2, len(texts)) and b.shape == (3, len(texts))
    assert np.abs(a - a_alone).max() < BATCH_TOLERANCE and np.abs(b - b_alone).max() < BATCH_TOLERANCE
    [[fewer]] = score_groups(tagger, [_grouped(item, [first])])  # without the two added texts
    assert np.abs(fewer - a[:, : len(item.texts)]).max() > 1e-3


@pytest.mark.parametrize("rows_per_forward", [32, 1])
def test_batches_of_many_images_equal_each_alone(tagger, items, rows_per_forward, monkeypatch):
    monkeypatch.setattr("sgpipe.models.rtagger.groups.MAX_ROWS_PER_FORWARD", rows_per_forward)
    batches = [_grouped(items[0], [items[0].pairs[:1], items[0].pairs[1:]]), _grouped(items[1], [items[1].pairs]),
               _grouped(items[0], [items[0].pairs], ["next to"]), _grouped(items[2], [[], items[2].pairs])]
    together = score_groups(tagger, batches)
    for batch, scores in zip(batches, together):
        alone = score_groups(tagger, [batch])[0]
        assert [s.shape for s in scores] == [(len(g), len(batch.texts)) for g in batch.groups]
        for got, want in zip(scores, alone):
            assert got.size == 0 or np.abs(got - want).max() < BATCH_TOLERANCE


def test_what_cannot_be_scored(tagger, items):
    item = items[0]
    assert score_groups(tagger, [_grouped(item, [item.pairs], [])])[0][0].shape == (len(item.pairs), 0)
    assert score_groups(tagger, [_grouped(item, [])]) == [[]]
    with pytest.raises(ValueError, match="a group holds 101 pairs; the model decodes at most 100 at once"):
        score_groups(tagger, [_grouped(item, [[(0, 1)] * 101])])
    with pytest.raises(ValueError, match="does not name two of the 3 boxes"):
        score_groups(tagger, [_grouped(item, [[(0, 7)]])])
