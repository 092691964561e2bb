"""How well each network does, beyond one accuracy number: per class, how calibrated, and where the four disagree."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from ..answering import answer, split_batch
from ..data.loader import DeviceLoader
from ..data.sources import Split
from ..models.common import eval_mode
from ..training.metrics import confusion_matrix, per_class_accuracy

BINS = 15  # equal-width confidence bins, as in Guo et al. (2017), "On Calibration of Modern Neural Networks"


@torch.no_grad()
def test_probs(model: nn.Module, split: Split) -> torch.Tensor:
    """The answer (softmax averaged over the views, N x classes) on the CPU, in float32 as the app classifies, in
    the split's order."""
    device = next(model.parameters()).device
    with eval_mode(model):
        loader = DeviceLoader(split, split_batch(device), device, train=False)
        out = [answer(model, x)[1].cpu() for x, _ in loader.batches()]
    return torch.cat(out)


def reliability(probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> list[dict]:
    """Per confidence bin: mean confidence, accuracy and count (empty bins left out).

    Confidence is the top probability; a calibrated network is right that often (accuracy == confidence).
    """
    conf, pred = probs.max(1)
    correct = (pred == labels).double()
    which = (conf.double() * bins).long().clamp(max=bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        if n:
            rows.append({"lo": b / bins, "hi": (b + 1) / bins, "count": n,
                         "confidence": round(float(conf[mask].double().mean()), 4),
                         "accuracy": round(float(correct[mask].mean()), 4)})
    return rows


def ece(bins: list[dict]) -> float:
    """Expected calibration error: the count-weighted mean gap |accuracy - confidence| over the bins."""
    total = sum(b["count"] for b in bins)
    return sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / max(total, 1)


def overconfidence(bins: list[dict]) -> float:
    """Count-weighted mean of (confidence - accuracy): above 0 over-confident, below 0 under-confident."""
    total = sum(b["count"] for b in bins)
    return sum(b["count"] * (b["confidence"] - b["accuracy"]) for b in bins) / max(total, 1)


def measure(probs: torch.Tensor, labels: torch.Tensor) -> dict:
    matrix = confusion_matrix(labels, probs.argmax(1), probs.shape[1])
    bins = reliability(probs, labels)
    return {"n": len(labels), "accuracy": round(float((probs.argmax(1) == labels).double().mean()), 4),
            "confusion": matrix.tolist(), "per_class": per_class_accuracy(matrix), "reliability": bins,
            "ece": round(ece(bins), 4), "overconfidence": round(overconfidence(bins), 4)}


def disagreement(probs: dict[str, torch.Tensor], labels: torch.Tensor, top: int = 20) -> list[dict]:
    """The test images the networks disagree on most, most disputed first.

    Ranked by how many different top-1 answers the networks give, then by how far apart their
    probability vectors are (mean pairwise total-variation distance), so among images with the same
    number of answers the most confidently contradictory come first.
    """
    keys = list(probs)
    if not keys:
        return []
    preds = torch.stack([probs[k].argmax(1) for k in keys], 1)  # (N, networks)
    classes = probs[keys[0]].shape[1]
    distinct = torch.zeros(len(labels), classes).scatter_(1, preds, 1.0).sum(1)
    pairs = list(itertools.combinations(keys, 2))
    spread = (torch.stack([0.5 * (probs[a] - probs[b]).abs().sum(1) for a, b in pairs], 1).mean(1)
              if pairs else torch.zeros(len(labels)))
    # The spread is at most 1, so it only breaks ties between images with the same number of answers.
    order = torch.argsort(distinct * 2 + spread, descending=True, stable=True)[:top].tolist()
    return [{"index": i, "label": int(labels[i]), "answers": int(distinct[i]), "spread": round(float(spread[i]), 4),
             "predictions": {k: {"class": int(preds[i, j]), "prob": round(float(probs[k][i, preds[i, j]]), 4),
                                 "p_true": round(float(probs[k][i, labels[i]]), 4)} for j, k in enumerate(keys)}}
            for i in order]


def agreement(probs: dict[str, torch.Tensor], labels: torch.Tensor) -> dict:
    """Shares of the split on which all networks give the same answer, all are right, and all are wrong."""
    preds = torch.stack([p.argmax(1) for p in probs.values()], 1)
    right = preds == labels[:, None]
    same = (preds == preds[:, :1]).all(1)
    share = lambda mask: round(float(mask.double().mean()), 4)  # noqa: E731
    return {"same_answer": share(same), "all_right": share(right.all(1)), "all_wrong": share((~right).all(1))}
