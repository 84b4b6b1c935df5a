import numpy as np
import pytest

from sgpipe.train.evaluate import ScoredRelation, recall_at_k, roc_auc, threshold_report


def test_roc_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(float)  # many ties
    labels = rng.random(40) < 0.4
    pos, neg = scores[labels], scores[~labels]
    expected = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(scores, labels) == pytest.approx(expected)
    assert roc_auc([0.1, 0.9], [False, True]) == 1.0
    assert roc_auc([0.1, 0.9], [True, False]) == 0.0
    assert roc_auc([0.3], [True]) is None


def test_recall_at_k():
    scores = [np.array([0.9, 0.1, 0.5]), np.array([0.2, 0.3, 0.1])]
    truth = [np.array([False, False, True]), np.array([False, False, True])]
    assert recall_at_k(scores, truth, 1) == 0.0
    assert recall_at_k(scores, truth, 2) == 0.5
    assert recall_at_k(scores, truth, 3) == 1.0


def test_threshold_report():
    rows = [
        ScoredRelation("k", 1, 2, "on", t, s)
        for t, s in [(True, 0.9), (True, 0.1), (False, 0.5), (False, 0.0)]
    ]
    report = threshold_report(rows, 0.2)
    assert report == {
        "candidates": 4,
        "candidate_precision": 0.5,
        "kept": 2,
        "kept_precision": 0.5,
        "kept_recall": 0.5,
    }
