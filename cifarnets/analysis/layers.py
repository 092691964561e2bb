"""The weight layers of a network (convolutions and linear layers) in the order the forward pass uses them.

Depth is counted along the main path only: a projection shortcut or an SE block's two small linear
layers sit beside the main path, so they take the depth of the main-path layer they follow. That way
the ResNet, its plain twin and the SE-ResNet all have depth 14 and their layers line up on one axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class WeightLayer:
    name: str  # as in model.named_modules()
    module: nn.Module
    depth: int  # main-path weight layers up to and including this one (side layers: the one before)
    kind: str  # "conv" | "linear" | "shortcut" | "se"

    @property
    def main(self) -> bool:
        return self.kind in ("conv", "linear")


def _kind(name: str, module: nn.Module) -> str:
    parts = name.split(".")
    if "shortcut" in parts:
        return "shortcut"
    if "se" in parts:
        return "se"
    return "linear" if isinstance(module, nn.Linear) else "conv"


def weight_layers(model: nn.Module, image_size: int = 32) -> list[WeightLayer]:
    """Every Conv2d and Linear, in execution order, traced with forward hooks on one blank image."""
    names = {m: n for n, m in model.named_modules()}
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # eval: a one-image batch would upset BatchNorm in training mode, and buffers stay put
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    layers, depth, seen = [], 0, set()
    for m in order:
        if m in seen:  # a module called twice is one layer
            continue
        seen.add(m)
        kind = _kind(names[m], m)
        if kind in ("conv", "linear"):
            depth += 1
        layers.append(WeightLayer(names[m], m, max(depth, 1), kind))
    return layers
