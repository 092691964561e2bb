"""The arithmetic of a small, uneven check: class-balanced accuracy, and bootstrap intervals for it alone and
for the difference between two choices answered on the same pictures (paired).

The real-photo check has 2 to 13 pictures a class, so each class counts equally (a class of two is not
drowned by a class of twelve), and a resample keeps every class's size (stratified): the interval is the
noise of drawing other pictures of the same classes, not of drawing other classes.
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.9  # the intervals' coverage
RESAMPLES = 10_000


def balanced_accuracy(right: np.ndarray, labels: np.ndarray) -> float:
    """The mean over the classes present of the share right in each."""
    right, labels = np.asarray(right, dtype=float), np.asarray(labels)
    return float(np.mean([right[labels == c].mean() for c in np.unique(labels)]))


def _resampled(right: np.ndarray, labels: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples,) class-balanced accuracies of `right` (any per-picture score: 1/0, or a difference of two),
    each class's pictures drawn again with replacement, its size kept."""
    rng = np.random.default_rng(seed)
    right, labels = np.asarray(right, dtype=float), np.asarray(labels)
    per_class = []
    for c in np.unique(labels):
        scores = right[labels == c]
        draws = rng.integers(0, len(scores), (resamples, len(scores)))
        per_class.append(scores[draws].mean(1))
    return np.mean(per_class, 0)


def interval(right: np.ndarray, labels: np.ndarray, level: float = LEVEL, resamples: int = RESAMPLES,
             seed: int = 0) -> tuple[float, float]:
    """A `level` percentile-bootstrap interval of the class-balanced accuracy."""
    means = _resampled(right, labels, resamples, seed)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def paired_interval(right_a: np.ndarray, right_b: np.ndarray, labels: np.ndarray, level: float = LEVEL,
                    resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """A `level` interval of balanced accuracy a minus b, where a and b answered the same pictures: each
    resample draws pictures, and both choices are scored on the same draw, so what the pictures have in
    common (easy ones, hard ones) cancels and only the choices' difference remains."""
    diff = np.asarray(right_a, dtype=float) - np.asarray(right_b, dtype=float)
    means = _resampled(diff, labels, resamples, seed)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
