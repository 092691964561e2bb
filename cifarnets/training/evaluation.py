"""evaluate(): a network measured on a whole split as the app answers it, after each epoch of a run and
by `python -m cifarnets evaluate`."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..answering import MIRRORED, PRECISION, VIEWS, average, logits_of_views
from ..data.loader import DeviceLoader
from ..models.common import eval_mode
from .metrics import confusion_matrix, per_class_accuracy


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DeviceLoader, classes: list[str], views: int = VIEWS) -> dict:
    """Loss, accuracy, per-class accuracy and confusion matrix (rows: true class) on a whole split.

    All of the network's answer from `views` views of each image (answering.VIEWS: as the app gives it), in
    the app's precision, with the single view's and the mirror pair's loss and accuracy beside it under
    "single_view" and "mirrored", from the same forward pass.
    """
    c = len(classes)
    confusion = torch.zeros(c, c, dtype=torch.int64, device=loader.device)
    # loss and correct count of the answer, the single view and the mirror pair
    sums = torch.zeros(6, dtype=torch.float64, device=loader.device)
    with eval_mode(model):
        for xb, yb in loader.batches():
            per_view = logits_of_views(model, xb, views).view(views, len(xb), -1)
            answers = [average(per_view[:n]) for n in (views, 1, min(MIRRORED, views))]
            confusion += confusion_matrix(yb, answers[0].argmax(1), c)
            sums += torch.stack([s for p in answers for s in (F.nll_loss(p.clamp_min(1e-12).log(), yb, reduction="sum"),
                                                              (p.argmax(1) == yb).sum())]).double()
    if loader.world > 1:
        dist.all_reduce(confusion)
        dist.all_reduce(sums)
    confusion = confusion.cpu()
    n = max(int(confusion.sum()), 1)
    loss, correct, single_loss, single_correct, mirrored_loss, mirrored_correct = sums.tolist()
    return {"test_acc": correct / n, "test_loss": loss / n,
            "per_class": dict(zip(classes, per_class_accuracy(confusion), strict=True)),
            "confusion": confusion.tolist(), "n": int(confusion.sum()), "views": views,
            "precision": PRECISION,
            "single_view": {"test_acc": single_correct / n, "test_loss": single_loss / n},
            "mirrored": {"test_acc": mirrored_correct / n, "test_loss": mirrored_loss / n}}
