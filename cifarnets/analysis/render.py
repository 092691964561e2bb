"""Arrays -> pictures for the page: a colour map, heat-map overlays and tile grids (numpy and Pillow only)."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Five stops of matplotlib's "inferno" (dark = low, bright = high), interpolated linearly: no matplotlib needed.
_STOPS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB of the same shape plus a trailing 3."""
    v = np.clip(np.nan_to_num(values), 0, 1) * (len(_STOPS) - 1)
    lo = np.floor(v).astype(int).clip(max=len(_STOPS) - 2)
    t = (v - lo)[..., None]
    return (_STOPS[lo] * (1 - t) + _STOPS[lo + 1] * t).round().astype(np.uint8)


def scaled(values: np.ndarray) -> np.ndarray:
    """Min-max scaled to [0, 1]; a constant array becomes zeros."""
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values, dtype=np.float32)


def overlay(pixels: np.ndarray, heat: np.ndarray, size: int = 160, alpha: float = 0.55,
            top: float | None = None) -> Image.Image:
    """The 32x32 image blown up to `size`, with `heat` (divided by `top`, default its own maximum) on top."""
    top = top if top is not None else float(heat.max())
    norm = heat / top if top > 0 else np.zeros_like(heat)
    smooth = np.asarray(Image.fromarray(norm.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))
    base = np.asarray(Image.fromarray(pixels).resize((size, size), Image.NEAREST), dtype=np.float32)
    mixed = base * (1 - alpha) + colormap(smooth).astype(np.float32) * alpha
    return Image.fromarray(mixed.round().clip(0, 255).astype(np.uint8))


def grid(tiles: list[np.ndarray], cols: int, scale: int = 4, gap: int = 2) -> Image.Image:
    """Equal-sized uint8 tiles (H, W, 3), each enlarged `scale` times with hard edges, in rows of `cols`."""
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    th, tw = h * scale, w * scale
    canvas = np.full((rows * (th + gap) - gap, cols * (tw + gap) - gap, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        big = np.repeat(np.repeat(tile, scale, 0), scale, 1)
        canvas[r * (th + gap): r * (th + gap) + th, c * (tw + gap): c * (tw + gap) + tw] = big
    return Image.fromarray(canvas)
