"""The first convolution: its filters as small colour images, and what each makes of one image."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from .layers import weight_layers
from .render import colormap, grid, scaled


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    layer = weight_layers(model)[0]
    return layer.name, layer.module


def filter_tiles(model: nn.Module) -> list[np.ndarray]:
    """Each filter (k x k x 3 RGB), min-max scaled on its own: shows its pattern, not its strength."""
    _, conv = first_conv(model)
    w = conv.weight.detach().float().cpu().permute(0, 2, 3, 1).numpy()  # (out, k, k, 3)
    return [(scaled(f) * 255).round().astype(np.uint8) for f in w]


def filter_image(model: nn.Module, width: int = 480) -> Image.Image:
    tiles = filter_tiles(model)
    cols = min(len(tiles), 16)
    k = tiles[0].shape[0]
    return grid(tiles, cols, scale=max(1, width // (cols * (k + 1))), gap=2)


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The first convolution's output for one normalised image: (channels, H, W)."""
    _, conv = first_conv(model)
    out = conv(x.to(conv.weight.device).float())
    return out[0].float().cpu().numpy()


def feature_image(maps: np.ndarray, width: int = 480) -> Image.Image:
    """Every channel as a heat map (scaled on its own), in rows of up to 8."""
    cols = min(len(maps), 8)
    tiles = [colormap(scaled(m)) for m in maps]
    return grid(tiles, cols, scale=max(1, width // (cols * (maps.shape[-1] + 1))), gap=2)
