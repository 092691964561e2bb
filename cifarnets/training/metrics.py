"""Counting answers: the confusion matrix and per-class accuracy, for the trainer and the analysis alike."""

from __future__ import annotations

import torch


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, classes) int64 counts on the labels' device, rows the true class, columns the answer."""
    return torch.bincount(labels * classes + predicted, minlength=classes * classes).view(classes, classes)


def per_class_accuracy(confusion: torch.Tensor) -> list[float]:
    """Each class's share of its images answered right, rounded to 4 places (a class with none: 0)."""
    confusion = confusion.cpu().double()
    return [round(float(a), 4) for a in confusion.diag() / confusion.sum(1).clamp(min=1)]
