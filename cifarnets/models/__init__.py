"""The registry: one place that maps a network's key to its builder and its display label.

Each network's file is models/<key>.py with a builder function named <key> at the bottom. The files
are imported when a network is first built, so the keys and labels cost no torch import (the app's
job runner reads them without loading any network).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    key: str
    label: str  # the name a user reads, everywhere
    in_report: bool = True  # False: ours, measured on Why they differ but not among the four every page shows
    recipe_of: str | None = None  # a network of ours trains with this report network's recipe

    @property
    def builder(self) -> Callable[..., nn.Module]:
        return getattr(importlib.import_module(f"{__name__}.{self.key}"), self.key)


MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec("cnn", "CNN"),
        ModelSpec("resnet", "ResNet"),
        ModelSpec("densenet", "DenseNet"),
        ModelSpec("se_resnet", "SE-ResNet"),
        ModelSpec("resnet_plain", "ResNet without shortcuts (ours)", in_report=False,
                  recipe_of="resnet"),
    )
}
KEYS = tuple(k for k, s in MODELS.items() if s.in_report)  # the report's four: what every page shows
ALL_KEYS = tuple(MODELS)  # ours too: trainable, and measured on Why they differ
EXTRA_KEYS = tuple(k for k in ALL_KEYS if k not in KEYS)


def spec(key: str) -> ModelSpec:
    try:
        return MODELS[key]
    except KeyError:
        raise KeyError(f"unknown network {key!r}; choose one of {', '.join(ALL_KEYS)}") from None


def label(key: str) -> str:
    return spec(key).label


def recipe_key(key: str) -> str:
    """The network whose recipe `key` trains with: itself, or for an extra the report network it derives from."""
    return spec(key).recipe_of or key


def build(key: str, num_classes: int = 10) -> nn.Module:
    return spec(key).builder(num_classes=num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
