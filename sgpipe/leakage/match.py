"""Nearest perceptual hash: each query's closest evaluation hash within a Hamming radius.

A 256-bit hash is four uint64 words. The distance of a block of queries to a block of the index is
four XORs and four popcounts (`np.bitwise_count`) per pair, vectorised, so matching N source images
against M evaluation images costs O(N*M) word operations in C, with memory bounded by the block
(QUERY_BLOCK x INDEX_BLOCK pairs), never a Python loop per pair. benchmarks/bench_leakage.py measures
the rate (docs/BENCHMARKS.md). Query blocks run in threads (numpy releases the GIL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from sgpipe.leakage.hashing import HASH_BITS

WORDS = HASH_BITS // 64
# 64 x 16,384 pairs (8 MiB of XORs) per step: blocks that stay in cache ran 5x faster than 128 MiB ones
QUERY_BLOCK = 64
INDEX_BLOCK = 16_384
NO_MATCH = -1


def to_words(hashes: list[int]) -> np.ndarray:
    """Hashes (ints of HASH_BITS bits) -> a (len, WORDS) uint64 array, most significant word first."""
    words = np.zeros((len(hashes), WORDS), dtype=np.uint64)
    for row, value in enumerate(hashes):
        words[row] = np.frombuffer(value.to_bytes(HASH_BITS // 8, "big"), dtype=">u8")
    return words


def _nearest_block(
    queries: np.ndarray, index_t: np.ndarray, max_distance: int
) -> tuple[np.ndarray, np.ndarray]:
    best_index = np.full(len(queries), NO_MATCH, dtype=np.int64)
    best_distance = np.full(len(queries), max_distance + 1, dtype=np.int64)
    for start in range(0, index_t.shape[1], INDEX_BLOCK):
        chunk = index_t[:, start : start + INDEX_BLOCK]
        distances = np.zeros((len(queries), chunk.shape[1]), dtype=np.uint16)
        for word in range(WORDS):
            distances += np.bitwise_count(np.bitwise_xor(queries[:, word, None], chunk[word][None, :]))
        row_min = distances.min(axis=1).astype(np.int64)
        better = np.flatnonzero(row_min < best_distance)
        if better.size:
            best_distance[better] = row_min[better]
            best_index[better] = start + distances[better].argmin(axis=1)
    best_distance[best_index == NO_MATCH] = NO_MATCH
    return best_index, best_distance


def nearest(
    queries: np.ndarray, index: np.ndarray, max_distance: int, threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """For (n, WORDS) queries and an (m, WORDS) index: each query's nearest index position with
    distance <= max_distance (the first on ties) and that distance; `NO_MATCH` (-1) in both where none
    is that close."""
    queries = np.ascontiguousarray(queries, dtype=np.uint64).reshape(-1, WORDS)
    index_t = np.ascontiguousarray(np.asarray(index, dtype=np.uint64).reshape(-1, WORDS).T)
    if len(queries) == 0 or index_t.shape[1] == 0:
        empty = np.full(len(queries), NO_MATCH, dtype=np.int64)
        return empty, empty.copy()
    starts = range(0, len(queries), QUERY_BLOCK)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        parts = list(
            pool.map(lambda s: _nearest_block(queries[s : s + QUERY_BLOCK], index_t, max_distance), starts)
        )
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
