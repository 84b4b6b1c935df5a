"""Blocked popcount matching against a plain reference, and the bounded thread window."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from sgpipe.leakage import match
from sgpipe.leakage.hashing import HASH_BITS, bounded_map
from sgpipe.leakage.match import NO_MATCH, nearest, to_words


def _reference(queries: list[int], index: list[int], max_distance: int) -> list[tuple[int, int]]:
    result = []
    for query in queries:
        distances = [(query ^ value).bit_count() for value in index]
        best = min(range(len(index)), key=lambda i: (distances[i], i))
        result.append((best, distances[best]) if distances[best] <= max_distance else (NO_MATCH, NO_MATCH))
    return result


@pytest.mark.parametrize("threads", [1, 3])
def test_nearest_agrees_with_a_plain_loop_across_block_edges(monkeypatch, threads):
    monkeypatch.setattr(match, "QUERY_BLOCK", 7)
    monkeypatch.setattr(match, "INDEX_BLOCK", 16)
    rng = random.Random(0)
    index = [rng.getrandbits(HASH_BITS) for _ in range(70)]
    queries = [rng.getrandbits(HASH_BITS) for _ in range(10)]
    for k, position in enumerate((3, 17, 33, 69)):  # near copies, some past the first index block
        flips = rng.sample(range(HASH_BITS), 5 * k)
        queries.append(index[position] ^ sum(1 << bit for bit in flips))
    queries.append(index[40])  # an exact copy
    found, distances = nearest(to_words(queries), to_words(index), 40, threads)
    assert list(zip(found.tolist(), distances.tolist())) == _reference(queries, index, 40)
    assert found[-1] == 40 and distances[-1] == 0 and (found[:10] == NO_MATCH).all()


def test_ties_go_to_the_first_index_entry_and_empty_sides_match_nothing():
    index = to_words([5, 6, 5])
    found, distances = nearest(to_words([5]), index, 0)
    assert (found.tolist(), distances.tolist()) == ([0], [0])
    assert nearest(to_words([]), index, 10)[0].size == 0
    assert nearest(to_words([1, 2]), to_words([]), 10)[0].tolist() == [NO_MATCH, NO_MATCH]


def test_words_keep_every_bit():
    value = (1 << 255) | (1 << 128) | 1
    words = to_words([value])
    assert words.shape == (1, HASH_BITS // 64) and int(np.bitwise_count(words).sum()) == 3


def test_bounded_map_keeps_order_and_never_runs_ahead_of_its_window():
    pulled = 0
    lock = threading.Lock()

    def items():
        nonlocal pulled
        for i in range(100):
            with lock:
                pulled += 1
            yield i

    results = bounded_map(lambda x: x * x, items(), threads=2, window=5)
    assert next(results) == 0
    assert pulled <= 5  # the rest are not read until asked for
    assert list(results) == [i * i for i in range(1, 100)]
