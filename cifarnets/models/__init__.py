"""The registry: one record per network (torchvision's Weights.meta in spirit), and the one place that maps
a network's key to it. What the project says about a network beyond its code lives in its record: the label
a user reads, a description, what the report claimed for it, the accuracy its shipped checkpoint keeps, its
colour on every chart.

Adding a network: its file models/<key>.py, with a builder function named <key> at the bottom, and its
record below. The files are imported when a network is first built, so the records cost no torch import
(the app's job runner reads them without loading any network).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from ..errors import UnknownName

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn


class Claim(NamedTuple):
    """The report's test accuracy for a network, and whether it says "about" that level or "above" it."""
    accuracy: float
    how: str  # "about" or "above"


@dataclass(frozen=True)
class ModelSpec:
    key: str
    label: str  # the name a user reads, everywhere
    description: str  # in our own words: what the network does with an image, and what the report found
    colour: str  # the same on every chart
    report: Claim | None = None  # None: ours, not the report's
    # The test accuracy (as the app answers) its shipped checkpoint keeps: tests/test_shipped_checkpoints.py
    # checks it, `speedrun --target floor` races to it (with the mirror pair's accuracy, a few tenths under
    # the app's). docs/training.md has where each network stands.
    floor: float | None = None
    recipe_of: str | None = None  # a network of ours trains with this report network's recipe

    @property
    def in_report(self) -> bool:
        """False: ours, measured on Why they differ but not among the four every page shows."""
        return self.report is not None

    @property
    def builder(self) -> Callable[..., nn.Module]:
        return getattr(importlib.import_module(f"{__name__}.{self.key}"), self.key)


# Colours from Tableau 10: the report's four take its first four, ours one that none of them uses.
MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec(
            "cnn", "CNN", colour="#4c78a8", report=Claim(0.64, "about"), floor=0.76,
            description=(
                "The baseline: two 5x5 convolutions, each followed by ReLU and 2x2 max pooling, then three fully "
                "connected layers (400 -> 120 -> 84 -> 10), in the style of LeNet-5 and PyTorch's CIFAR-10 "
                "tutorial. No normalisation and no shortcuts, and most of its parameters sit in the first fully "
                "connected layer. The report trained it with Adam for 10 epochs to about 64% test accuracy, close "
                "to what such a shallow network can reach.")),
        ModelSpec(
            "resnet", "ResNet", colour="#f58518", report=Claim(0.80, "above"), floor=0.90,
            description=(
                "A small ResNet: a 3x3 stem with 16 channels, then three stages of two residual blocks (16, 32 and "
                "64 channels). Each block adds its input back to the output of two 3x3 convolutions, so gradients "
                "have a direct path to early layers; where a stage halves the resolution, a strided 1x1 "
                "convolution reshapes the shortcut. Global average pooling feeds a single 64 -> 10 layer. "
                "The report reached above 80% in 20 epochs with no sign of overfitting yet.")),
        ModelSpec(
            "densenet", "DenseNet", colour="#54a24b", report=Claim(0.75, "above"), floor=0.86,
            description=(
                "A small DenseNet: a 7x7 stride-2 stem and 3x3 max pooling shrink the image to 8x8 early, then "
                "three dense blocks of three layers each. Every layer (BatchNorm, ReLU, 3x3 convolution) adds 12 "
                "new channels and sees all earlier ones, so features are reused rather than relearned; transition "
                "layers (1x1 convolution, 2x2 average pooling) compress between blocks. The report measured above "
                "75% with the test loss rising late in training: it overfits.")),
        ModelSpec(
            "se_resnet", "SE-ResNet", colour="#e45756", report=Claim(0.80, "above"), floor=0.90,
            description=(
                "The same ResNet with a squeeze-and-excitation block in every residual branch: it averages each "
                "channel over the image, passes the result through a small bottleneck (C -> C/16 -> C) and a "
                "sigmoid, and rescales the channels by those weights before the shortcut is added. It is channel "
                "attention for about 1% more parameters. Trained with SGD and a step learning-rate schedule, the "
                "report found it converged above 80%, about level with the plain ResNet.")),
        ModelSpec(
            "resnet_plain", "ResNet without shortcuts (ours)", colour="#b279a2", recipe_of="resnet",
            description=(
                "Ours, not the report's: the ResNet with its shortcuts taken out, so each block is just conv-BN-"
                "ReLU-conv-BN-ReLU. The same stem, stages, channels and strides; only the two strided 1x1 "
                "projections go, 2,752 parameters fewer. Set beside the ResNet, it shows what the shortcuts "
                "themselves are worth: the Why they differ page measures its gradients and accuracy.")),
    )
}
KEYS = tuple(k for k, s in MODELS.items() if s.in_report)  # the report's four: what every page shows
ALL_KEYS = tuple(MODELS)  # ours too: trainable, and measured on Why they differ
EXTRA_KEYS = tuple(k for k in ALL_KEYS if k not in KEYS)


def spec(key: str) -> ModelSpec:
    try:
        return MODELS[key]
    except KeyError:
        raise UnknownName(f"unknown network {key!r}; choose one of {', '.join(ALL_KEYS)}") from None


def label(key: str) -> str:
    return spec(key).label


def recipe_key(key: str) -> str:
    """The network whose recipe `key` trains with: itself, or for an extra the report network it derives from."""
    return spec(key).recipe_of or key


def build(key: str, num_classes: int = 10) -> nn.Module:
    return spec(key).builder(num_classes=num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
