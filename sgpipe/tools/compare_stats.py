"""The numbers of `sgpipe compare`: set agreement and the correlation of two confidence lists."""

from __future__ import annotations

from typing import Sequence

import numpy as np

HISTOGRAM_BINS = 10  # the joint histogram of shared confidences: [0, 0.1), ..., [0.9, 1.0]


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def agreement(a: int, b: int, both: int) -> dict[str, float | None]:
    """B measured against A as the reference: precision = |A and B| / |B|, recall = |A and B| / |A|."""
    return {
        "jaccard": ratio(both, a + b - both),
        "precision": ratio(both, b),
        "recall": ratio(both, a),
        "f1": ratio(2 * both, a + b),
    }


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """None where undefined: fewer than two pairs, or one side constant."""
    if len(x) < 2:
        return None
    xs = np.asarray(x, dtype=np.float64) - np.mean(x)
    ys = np.asarray(y, dtype=np.float64) - np.mean(y)
    denominator = float(np.sqrt(np.dot(xs, xs) * np.dot(ys, ys)))
    return float(np.dot(xs, ys)) / denominator if denominator > 0 else None


def ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties given the mean of the ranks they span (as Spearman's rho asks)."""
    _, inverse, counts = np.unique(
        np.asarray(values, dtype=np.float64), return_inverse=True, return_counts=True
    )
    last = np.cumsum(counts)
    return ((last - counts + 1 + last) / 2.0)[inverse]


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    return pearson(ranks(x), ranks(y)) if len(x) >= 2 else None


def joint_histogram(x: Sequence[float], y: Sequence[float]) -> list[list[int]]:
    """counts[i][j]: pairs whose A confidence is in bin i and B confidence in bin j (1.0 in the last)."""
    counts = np.zeros((HISTOGRAM_BINS, HISTOGRAM_BINS), dtype=np.int64)
    if len(x):
        i = np.clip((np.asarray(x) * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
        j = np.clip((np.asarray(y) * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
        np.add.at(counts, (i, j), 1)
    return counts.tolist()


def confidence_summary(x: Sequence[float], y: Sequence[float]) -> dict:
    """Correlations and absolute differences of paired confidences (A's `x`, B's `y`)."""
    differences = np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64))
    return {
        "pairs": len(x),
        "pearson": pearson(x, y),
        "spearman": spearman(x, y),
        "max_abs_diff": float(differences.max()) if len(x) else None,
        "mean_abs_diff": float(differences.mean()) if len(x) else None,
        "mean_a": float(np.mean(x)) if len(x) else None,
        "mean_b": float(np.mean(y)) if len(y) else None,
        "histogram": {
            "edges": [round(k / HISTOGRAM_BINS, 10) for k in range(HISTOGRAM_BINS + 1)],
            "counts": joint_histogram(x, y),
        },
    }
