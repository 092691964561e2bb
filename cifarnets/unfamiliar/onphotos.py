"""The unfamiliar-input check judged photo against photo: the question a user asks is "is my photo one of the
ten?", so a score is judged by how well it ranks photos of something else (../shared/data/photos-other: objects,
food, scenes, people) above real photos of the ten classes (the development set), and by the share of each it
flags at its threshold. Neither set is ever trained on; the photos of the ten classes also raise the threshold
(measure.py), so both shares are counted on halves that did not set it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.images import EXTENSIONS, decode_image
from .scores import auroc

LEVEL = 0.9  # the intervals' coverage, as the real-photo check's (perf/bootstrap.py)
RESAMPLES = 2000


def read_other(folder: Path) -> list:
    """Every picture directly in `folder` (photos of none of the ten classes have no class folders)."""
    return [decode_image(f.read_bytes(), f.name) for f in sorted(Path(folder).iterdir())
            if f.is_file() and f.suffix.lower().lstrip(".") in EXTENSIONS]


def halves(n: int) -> np.ndarray:
    """0 or 1 for each of n pictures, alternating: the other photos' two halves."""
    return np.arange(n) % 2


def _ranked_auroc(familiar: np.ndarray, unfamiliar: np.ndarray) -> np.ndarray:
    """auroc() of many resamples at once, (R, n) and (R, m) -> (R,); ties counted half, as auroc() does."""
    both = np.concatenate([familiar, unfamiliar], 1)
    order = both.argsort(1, kind="stable")
    ranks = np.empty_like(order, dtype=float)
    np.put_along_axis(ranks, order, np.arange(1, both.shape[1] + 1, dtype=float)[None].repeat(len(both), 0), 1)
    # tied scores share their mean rank
    sorted_ = np.take_along_axis(both, order, 1)
    for r in np.flatnonzero((np.diff(sorted_, axis=1) == 0).any(1)):
        _, group, counts = np.unique(both[r], return_inverse=True, return_counts=True)
        last = np.cumsum(counts)
        ranks[r] = ((last - counts + 1 + last) / 2)[group]
    m, n = unfamiliar.shape[1], familiar.shape[1]
    return (ranks[:, n:].sum(1) - m * (m + 1) / 2) / (m * n)


def paired_auroc(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], labels: np.ndarray,
                 level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """A `level` bootstrap interval of AUROC(a) minus AUROC(b), two scores of the same pictures, each given as
    (scores of the photos of the ten classes, scores of the other photos). Each resample draws the photos of the
    ten again within each class (their sizes kept) and the other photos again, and scores both on that draw."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    familiar = np.stack([np.concatenate([i[rng.integers(0, len(i), len(i))] for i in by_class])
                         for _ in range(resamples)])
    other = rng.integers(0, len(a[1]), (resamples, len(a[1])))
    diff = (_ranked_auroc(np.asarray(a[0])[familiar], np.asarray(a[1])[other])
            - _ranked_auroc(np.asarray(b[0])[familiar], np.asarray(b[1])[other]))
    tail = (1 - level) / 2
    return float(np.quantile(diff, tail)), float(np.quantile(diff, 1 - tail))


def judged(scores: dict[str, tuple[np.ndarray, np.ndarray]], labels: np.ndarray, against: str = "msp") -> dict:
    """{method: {"auroc", "against_msp": paired interval}} for every method's (photos, other photos) scores."""
    out = {}
    for method, (photos, other) in scores.items():
        out[method] = {"auroc": round(auroc(photos, other), 4)}
        if method != against and against in scores:
            out[method]["against_" + against] = [round(v, 4) for v in paired_auroc((photos, other), scores[against],
                                                                                    labels)]
    return out
