import pytest

from sgpipe.vocab.tag_score import spatial_relation, tag_score


@pytest.mark.parametrize(
    "predicate, relation",
    [
        ("above", "above"),
        ("sit on", "on"),
        ("on top of", "above"),
        ("to the left of", "left"),
        ("right of", "right"),
        ("under", "below"),
        ("inside", "inside"),
        ("in", "inside"),
        ("in front of", None),
        ("behind", None),
        ("ride", None),
        ("next to", None),
        ("hold", None),
    ],
)
def test_spatial_relation_from_predicate(predicate, relation):
    assert spatial_relation(predicate) == relation


def test_nearby_and_overlapping_pairs_rank_first():
    a = [0, 0, 10, 10]
    overlapping, touching, far = [5, 5, 10, 10], [10, 0, 10, 10], [200, 200, 10, 10]
    assert tag_score(a, overlapping) > tag_score(a, touching) > tag_score(a, far)
    assert 0.0 <= tag_score(a, far) < 0.1
    assert tag_score(a, a) == pytest.approx(1.0)


def test_spatial_term_follows_the_predicate():
    top, bottom = [0, 0, 10, 10], [0, 20, 10, 10]
    left, right = [0, 0, 10, 10], [20, 0, 10, 10]
    assert tag_score(top, bottom, "above") > tag_score(bottom, top, "above")
    assert tag_score(bottom, top, "below") > tag_score(top, bottom, "below")
    assert tag_score(left, right, "left of") > tag_score(right, left, "left of")
    assert tag_score(right, left, "right of") > tag_score(left, right, "right of")
    cup, table = [10, 0, 10, 10], [0, 10, 40, 20]
    assert tag_score(cup, table, "on") > tag_score(table, cup, "on")
    small, big = [10, 10, 5, 5], [0, 0, 40, 40]
    assert tag_score(small, big, "inside") > tag_score(big, small, "inside")
    # no spatial word: symmetric
    assert tag_score(top, bottom, "ride") == tag_score(bottom, top, "ride")


def test_scores_stay_in_unit_interval_on_degenerate_boxes():
    for a, b in [
        ([0, 0, 0, 0], [0, 0, 0, 0]),
        ([0, 0, 1e6, 1], [5, 5, 1, 1e6]),
        ([3, 3, 0, 5], [3, 3, 5, 0]),
    ]:
        for predicate in ("", "on", "inside", "above", "left of"):
            assert 0.0 <= tag_score(a, b, predicate) <= 1.0


def test_pair_matrix_matches_pairwise_scores():
    import numpy as np

    from sgpipe.vocab.tag_score import tag_scores

    rng = np.random.default_rng(0)
    subjects = np.concatenate([rng.uniform(0, 100, (5, 2)), rng.uniform(1, 40, (5, 2))], axis=1)
    objects = np.concatenate([rng.uniform(0, 100, (3, 2)), rng.uniform(1, 40, (3, 2))], axis=1)
    for predicate in ("", "on", "left of", "inside", "under"):
        matrix = tag_scores(subjects, objects, predicate)
        assert matrix.shape == (5, 3)
        for i in range(5):
            for j in range(3):
                assert matrix[i, j] == pytest.approx(
                    tag_score(subjects[i].tolist(), objects[j].tolist(), predicate)
                )
    assert tag_scores(np.zeros((0, 4)), objects).shape == (0, 3)
