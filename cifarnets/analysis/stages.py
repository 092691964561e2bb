"""What every stage of a network makes of one image: its feature maps, the most active channels first.

The stages are the ones each network hands back from forward_intermediates (the CNN's two convolutions,
the ResNets' stem and stages, DenseNet's stem, dense blocks and transitions): nothing is hooked and no
mode is switched, so this runs on the networks the app shares between sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..models.common import eval_mode
from .render import colormap, grid, scaled

TILE = 64  # pixels a side for one channel's map, whatever its resolution
SCALES = ("each stage", "each channel")


@dataclass
class StageMaps:
    name: str
    maps: np.ndarray  # (C, H, W) float32, channels in the network's own order
    order: np.ndarray  # channel indices, most active first
    activity: np.ndarray  # mean absolute activation of each channel, in `order`

    @property
    def shape(self) -> str:
        return "x".join(str(d) for d in self.maps.shape)

    @property
    def channels(self) -> int:
        return self.maps.shape[0]


@torch.no_grad()
def stage_maps(model: nn.Module, x: torch.Tensor) -> list[StageMaps]:
    """Every stage's output for one normalised image (1, 3, 32, 32), ranked by how strongly each channel responds."""
    with eval_mode(model):  # the app's networks are in eval mode already: this writes nothing to them
        out = model.forward_intermediates(x.to(next(model.parameters()).device))
    stages = []
    for name, t in out.stages.items():
        maps = t[0].float().cpu().numpy()
        activity = np.abs(maps).mean(axis=(1, 2))
        order = np.argsort(-activity, kind="stable")  # ties keep the network's order: the same on every CPU
        stages.append(StageMaps(name, maps, order, activity[order]))
    return stages


def page(stage: StageMaps, start: int, count: int) -> np.ndarray:
    """The channel indices ranked start+1 .. start+count (fewer at the end; none past it)."""
    return stage.order[start:start + count]


def page_image(stage: StageMaps, start: int, count: int, scale: str = "each stage",
               cols: int = 4) -> Image.Image | None:
    """Those channels' maps as heat maps in rows of `cols`, each TILE pixels a side (bright: strong).

    "each stage" puts every channel of the stage on one colour scale, so a weak channel looks weak;
    "each channel" stretches each map on its own, so its pattern shows however faint it is.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown colour scale {scale!r}; choose one of {', '.join(SCALES)}")
    chosen = page(stage, start, count)
    if not len(chosen):
        return None
    if scale == "each stage":
        lo, hi = float(stage.maps.min()), float(stage.maps.max())
        norm = [(stage.maps[c] - lo) / (hi - lo) if hi > lo else np.zeros_like(stage.maps[c]) for c in chosen]
    else:
        norm = [scaled(stage.maps[c]) for c in chosen]
    size = stage.maps.shape[-1]
    return grid([colormap(m) for m in norm], min(cols, len(chosen)), scale=max(1, TILE // size), gap=3)
