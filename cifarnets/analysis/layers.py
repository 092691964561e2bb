"""The weight layers of a network (convolutions and linear layers) in the order the forward pass uses them.

Depth is counted along the main path only: a projection shortcut or an SE block's two small linear
layers sit beside the main path, so they take the depth of the main-path layer they follow. That way
the ResNet, its plain twin and the SE-ResNet all have depth 14 and their layers line up on one axis.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn

from ..diagram.architecture import trace


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
    """Every Conv2d and Linear, in the order an image meets them (the one tracer, on a private copy)."""
    modules = dict(model.named_modules())
    traced = trace(copy.deepcopy(model), image_size)
    order = [modules[op.name] for op in traced.ops
             if op.kind == "module" and isinstance(modules[op.name], (nn.Conv2d, nn.Linear))]
    names = {m: n for n, m in modules.items()}
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
