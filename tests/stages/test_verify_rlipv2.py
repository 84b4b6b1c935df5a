"""`verify.texts: rlipv2`, step by step with scores written by hand: RLIPv2's groups and batches of groups,
the texts each batch shares, the strict threshold and the best of duplicates. (The whole, with the real
tagger, equals RLIPv2's own code: tests/rlipv2_flow.)"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from sgpipe.config import VerifyConfig
from sgpipe.records import Box, Relation
from sgpipe.stages import verify_rlipv2
from sgpipe.stages.verify import ASSIGNED_BY_VERIFIER
from tests.helpers.samples import build_sample

# candidates in RLIPv2's order: (subject box, object box, lemma, surface text)
CANDIDATES = [(1, 2, "ride", "riding"), (1, 2, "next to", "next to"), (1, 3, "ride", "riding"),
              (2, 1, "hold", "holding"), (3, 1, "on", "on")]
# with groups of 2 pairs and batches of 2 groups: batch 0 = groups [0, 1] + [2, 3], texts riding, next to,
# holding; batch 1 = group [4], text on. Scores per group: rows = the group's pairs, columns = the texts.
SCORES = [
    [np.array([[0.50, 0.05, 0.20], [0.30, 0.60, 0.01]]), np.array([[0.70, 0.04, 0.90], [0.10, 0.02, 0.03]])],
    [np.array([[0.25]])],
]


@pytest.fixture
def scored(monkeypatch):
    calls = []

    def fake_score_groups(tagger, items):
        calls.extend(items)
        return SCORES[: len(items)]

    monkeypatch.setattr("sgpipe.models.rtagger.score_groups", fake_score_groups)
    monkeypatch.setattr(verify_rlipv2, "GROUPS_PER_BATCH", 2)
    sample = build_sample(1, "coco", width=40, height=30, objects=[
        Box(1, "person", 1, [0, 0, 10, 10]), Box(2, "horse", 19, [5, 5, 20, 20]), Box(3, "dog", 18, [1, 1, 5, 5])])
    sample.image = Image.new("RGB", (40, 30))
    sample.relations = [Relation(i, s, o, p, 7, 0.0, predicate_text=t) for i, (s, o, p, t) in enumerate(CANDIDATES)]
    tagger = SimpleNamespace(net=object(), config=SimpleNamespace(num_pairs=2))
    config = VerifyConfig(enabled=True, texts="rlipv2", store_threshold=0.05, keep_threshold=0.3)
    verify_rlipv2.verify_as_rlipv2(tagger, [sample], "coco", config)
    return sample, calls


def test_groups_share_their_batchs_texts(scored):
    _, calls = scored
    assert [item.texts for item in calls] == [["riding", "next to", "holding"], ["on"]]
    assert [item.groups for item in calls] == [[[(0, 1), (0, 1)], [(0, 2), (1, 0)]], [[(2, 0)]]]
    assert calls[0].box_labels == [0, 17, 16] and len(calls[0].category_names) == 80  # RLIPv2's COCO table


def test_cells_strictly_above_the_threshold_and_the_best_of_duplicates(scored):
    sample, _ = scored
    got = [(r.subject_id, r.object_id, r.predicate_text, r.predicate, r.triplet_id, r.confidence, r.kept)
           for r in sample.relations]
    assert got == [
        (1, 2, "riding", "ride", 7, 0.50, True),  # 0.50 and 0.30 (its other query): the best
        (1, 2, "next to", "next to", 7, 0.60, True),  # 0.05 is not above 0.05
        (1, 3, "riding", "ride", 7, 0.70, True),
        (3, 1, "on", "on", 7, 0.25, False),
        (1, 2, "holding", "hold", ASSIGNED_BY_VERIFIER, 0.20, False),  # a text of the batch no candidate holds
        (1, 3, "holding", "hold", ASSIGNED_BY_VERIFIER, 0.90, True),
        (2, 1, "riding", "ride", ASSIGNED_BY_VERIFIER, 0.10, False),
    ]  # (2, 1, holding) scored 0.03: gone
    assert [r.id for r in sample.relations] == [0, 1, 2, 4, 5, 6, 7]
    counters = sample.counters
    assert (counters["verify_cells_above_threshold"], counters["verify_groups"], counters["verify_assigned"]) == (8, 3, 3)
    assert counters["verify_below_store_threshold"] == 1 and counters["verify_kept"] == 4
