"""The registry: one place that maps a network's key to its builder and its display label."""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .cnn import cnn
from .densenet import densenet
from .resnet import resnet
from .se_resnet import se_resnet


@dataclass(frozen=True)
class ModelSpec:
    key: str
    label: str  # the name a user reads, everywhere
    builder: Callable[..., nn.Module]


MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec("cnn", "CNN", cnn),
        ModelSpec("resnet", "ResNet", resnet),
        ModelSpec("densenet", "DenseNet", densenet),
        ModelSpec("se_resnet", "SE-ResNet", se_resnet),
    )
}
KEYS = tuple(MODELS)


def spec(key: str) -> ModelSpec:
    try:
        return MODELS[key]
    except KeyError:
        raise KeyError(f"unknown network {key!r}; choose one of {', '.join(KEYS)}") from None


def label(key: str) -> str:
    return spec(key).label


def build(key: str, num_classes: int = 10) -> nn.Module:
    return spec(key).builder(num_classes=num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
