"""Pictures the tests make: any picture as PNG bytes, and the unfamiliar things users try first (random pixels,
a screenshot of a document)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cifarnets.unfamiliar import inputs
from helpers.hostile import encode


def png(img: Image.Image) -> bytes:
    return encode(img, "PNG")


def noise_picture(width: int, height: int, seed: int) -> Image.Image:
    """Random pixels, each channel uniform over 0-255."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def text_screenshot(seed: int, size: int = 28) -> Image.Image:
    """Black words on white, a screenshot of a document."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (int(rng.integers(320, 640)), int(rng.integers(200, 400))), "white")
    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=size)
    for y in range(6, img.height - size, int(size * 1.4)):
        draw.text((6, y), " ".join(rng.choice(inputs.WORDS, 6)), fill="black", font=font)
    return img
