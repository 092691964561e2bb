"""Pictures for the browser: the 32x32 input as a person can see it, and a photo small enough to send."""

from __future__ import annotations

import numpy as np
from PIL import Image


def enlarge(pixels: np.ndarray, size: int = 128) -> Image.Image:
    """The 32x32 input blown up with hard pixel edges, so a person sees exactly what the networks see."""
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST)


def preview(image: Image.Image, side: int = 480) -> Image.Image:
    """A copy small enough to send to the browser; a 12-megapixel photo need not travel whole."""
    small = image.copy()
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    return small
