"""Held-out evaluation: ROC-AUC of true vs false relations, recall@K of true predicates per pair,
and the precision/recall of the relations a keep threshold would keep. Small numpy metrics (no
sklearn): ROC-AUC is the Mann-Whitney statistic with tied scores counted half."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Probability that a random true item outscores a random false one (None if a class is empty)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):  # average ranks over ties
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def recall_at_k(score_rows: Sequence[np.ndarray], true_rows: Sequence[np.ndarray], k: int) -> float | None:
    """Fraction of true predicates ranked in the top k of their pair (rows: one per pair)."""
    hits = total = 0
    for scores, truth in zip(score_rows, true_rows):
        if not truth.any():
            continue
        top = np.argsort(-scores, kind="mergesort")[:k]
        hits += int(truth[top].sum())
        total += int(truth.sum())
    return hits / total if total else None


@dataclass
class ScoredRelation:
    key: str
    subject_id: int
    object_id: int
    predicate: str
    truth: bool
    score: float


def threshold_report(rows: Sequence[ScoredRelation], keep_threshold: float) -> dict[str, Any]:
    """What keeping `score >= keep_threshold` does to the candidates' precision and recall."""
    truth = np.array([r.truth for r in rows], dtype=bool)
    kept = np.array([r.score >= keep_threshold for r in rows], dtype=bool)
    n_true = int(truth.sum())
    return {
        "candidates": len(rows),
        "candidate_precision": n_true / len(rows) if rows else None,
        "kept": int(kept.sum()),
        "kept_precision": float(truth[kept].mean()) if kept.any() else None,
        "kept_recall": float(kept[truth].mean()) if n_true else None,
    }


def score_shards(
    model: Any,
    samples: Iterable[Any],
    image_size: int,
    *,
    min_confidence: float = 0.5,
    max_negative_confidence: float = 0.0,
    vocabulary: Sequence[str] = (),
    batch_size: int = 8,
    blank: bool = False,
    max_samples: int = 0,
) -> tuple[list[ScoredRelation], list[tuple]]:
    """Score every stored relation of the samples (their own predicates as candidates), and with
    `vocabulary`, every true pair against all its predicates (for recall@K)."""
    from sgpipe.train.data import decode_image, record_example

    rows: list[ScoredRelation] = []
    ranked: list[tuple] = []
    batch: list[tuple[dict, Any]] = []

    def flush() -> None:
        args = dict(
            min_confidence=min_confidence, max_negative_confidence=max_negative_confidence, blank=blank
        )
        examples = [record_example(r, img, image_size, rng=random.Random(0), **args) for r, img in batch]
        for (record, _), example, scores in zip(batch, examples, model.score(examples)):
            # only the stored relations count, not every pair x predicate cell of the matrix
            ids = [b["id"] for b in record["objects"]]
            stored = {(r["subject_id"], r["object_id"], r["predicate"]) for r in record["relations"]}
            for (i, j), score_row, truth_row in zip(example.pairs, scores, example.targets):
                for name, score, truth in zip(example.predicates, score_row, truth_row):
                    if truth >= 0 and (ids[i], ids[j], name) in stored:
                        rows.append(
                            ScoredRelation(example.key, ids[i], ids[j], name, bool(truth == 1), float(score))
                        )
        if vocabulary:
            full = [record_example(r, img, image_size, predicates=vocabulary, **args) for r, img in batch]
            for example in full:
                keep = [n for n, row in enumerate(example.targets) if (row == 1).any()]
                example.pairs = [example.pairs[n] for n in keep]
                example.targets = example.targets[keep]
            for example, scores in zip(full, model.score(full)):
                ranked.extend(zip(scores, example.targets == 1))
        batch.clear()

    for n, sample in enumerate(samples):
        if max_samples and n >= max_samples:
            break
        record = sample.record
        if not record.get("relations"):
            continue
        batch.append((record, decode_image(sample.image_bytes)))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return rows, ranked


def evaluate(
    model: Any,
    urls: Sequence[str],
    image_size: int,
    *,
    keep_threshold: float = 0.2,
    ks: Sequence[int] = (1, 3, 5),
    storage_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Metrics on held-out shards: auc, recall@k, and the keep-threshold report."""
    from sgpipe.shards import iter_shard_samples

    was_training = model.training
    model.eval()
    try:
        rows, ranked = score_shards(
            model, iter_shard_samples(list(urls), storage_options), image_size, **kwargs
        )
    finally:
        model.train(was_training)
    metrics: dict[str, Any] = {
        "relations": len(rows),
        "auc": roc_auc([r.score for r in rows], [r.truth for r in rows]),
        **threshold_report(rows, keep_threshold),
    }
    for k in ks:
        metrics[f"recall@{k}"] = recall_at_k([s for s, _ in ranked], [t for _, t in ranked], k)
    return metrics
