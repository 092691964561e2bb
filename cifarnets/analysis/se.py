"""The SE-ResNet's channel attention: each SE block's per-channel weights, for one image or per class.

Hu et al. (2018) found early SE blocks weight channels alike whatever the class, and late ones
class-specifically; the per-class means let the page check that on this network.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..answering import split_batch
from ..data.loader import DeviceLoader
from ..data.sources import Split
from ..models.common import eval_mode
from ..models.se_resnet import SEBlock


def has_se(model: nn.Module) -> bool:
    return any(isinstance(m, SEBlock) for m in model.modules())


@torch.no_grad()
def gates(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """{block name: (C,) channel weights in (0, 1)} for one normalised image, in eval mode."""
    with eval_mode(model):
        out = model.forward_intermediates(x.to(next(model.parameters()).device))
    return {name: g[0].float().cpu().numpy() for name, g in out.gates.items()}


@torch.no_grad()
def class_means(model: nn.Module, split: Split, classes: int) -> dict[str, list[list[float]]]:
    """{block name: [class][channel] mean channel weight} over a split, by true class."""
    device = next(model.parameters()).device
    sums: dict[str, torch.Tensor] = {}
    counts = torch.zeros(classes, dtype=torch.float64)
    with eval_mode(model):
        for x, y in DeviceLoader(split, split_batch(device), device, train=False).batches():
            one_hot = torch.nn.functional.one_hot(y.cpu(), classes).double()  # (N, classes)
            counts += one_hot.sum(0)
            for name, g in model.forward_intermediates(x).gates.items():
                sums[name] = sums.get(name, 0) + one_hot.T @ g.double().cpu()
    return {name: (s / counts.clamp(min=1)[:, None]).round(decimals=4).tolist() for name, s in sums.items()}


def class_gap(means: dict[str, list[list[float]]], a: int, b: int) -> dict[str, np.ndarray]:
    """{block: (C,) mean weight of class a minus class b}."""
    return {name: np.asarray(m[a]) - np.asarray(m[b]) for name, m in means.items()}


def class_spread(means: dict[str, list[list[float]]]) -> dict[str, float]:
    """{block: mean over channels of the standard deviation across classes}: 0 means class-agnostic."""
    return {name: round(float(np.asarray(m).std(0).mean()), 5) for name, m in means.items()}
