"""The unfamiliar inputs the threshold is calibrated against, made here from a seed: the recipe, not files.

Each kind is something a user really uploads that is none of CIFAR-10's ten classes: noise (the
issue's noise GIF), plain colours, colour gradients, screenshots of text, real photographs of other
things, and faces. Every picture is drawn at an upload's size and goes through the uploads' own path
(`images.to_array`, the centre shrunk to 32x32), so the networks see what they would see on
Classify. The photos and faces are the sample data scikit-image ships in its wheel (a dev
dependency); nothing is downloaded.
"""

from __future__ import annotations

import string
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data.images import to_array
from ..errors import UsageError, UserError

# scikit-image's bundled photographs of things outside the ten classes. Left out on purpose: chelsea (a
# cat), horse (a horse's silhouette) and the motorcycle pair (close to CIFAR-10's vehicles).
PHOTOS = ("astronaut", "coffee", "rocket", "camera", "coins", "moon", "brick", "grass", "gravel",
          "hubble_deep_field", "immunohistochemistry", "retina", "clock", "cell")
FACES = 100  # lfw_subset(): 100 faces, then 100 non-faces that we do not use

# How many of each kind one set holds (about 1,100 in all: a few seconds through each network).
COUNTS = {"noise": 200, "plain colour": 100, "gradient": 200, "text": 200, "photo": 280, "face": 100}

WORDS = ("the quick brown fox jumps over a lazy dog error warning total invoice meeting notes page "
         "chapter figure table python import return lorem ipsum dolor sit amet results 2024 ok cancel "
         "submit login password email subject hello world deadline budget report summary").split()


class MissingPackage(UserError):
    """A package the calibration inputs need is not installed; says what to install."""


def noise(rng: np.random.Generator) -> Image.Image:
    """Random pixels, fine or in coarse blocks (a noise GIF's frame), uniform, Gaussian or salt-and-pepper."""
    side = int(rng.choice([32, 64, 128, 256, 400]))
    block = int(rng.choice([1, 1, 2, 4, 8]))
    n = max(1, side // block)
    style = rng.integers(3)
    if style == 0:
        a = rng.integers(0, 256, (n, n, 3))
    elif style == 1:
        a = np.clip(rng.normal(rng.uniform(60, 200), rng.uniform(20, 90), (n, n, 3)), 0, 255)
    else:
        a = rng.choice([0, 255], (n, n, 1)).repeat(3, axis=2)
    if rng.random() < 0.3:  # greyscale noise
        a = a[..., :1].repeat(3, axis=2)
    return Image.fromarray(a.astype(np.uint8)).resize((side, side), Image.Resampling.NEAREST)


def plain_colour(rng: np.random.Generator) -> Image.Image:
    return Image.new("RGB", (int(rng.integers(32, 400)), int(rng.integers(32, 400))),
                     tuple(int(c) for c in rng.integers(0, 256, 3)))


def gradient(rng: np.random.Generator) -> Image.Image:
    """Two random colours blended linearly at a random angle, or radially from a random centre."""
    side = int(rng.choice([64, 128, 256]))
    yy, xx = np.mgrid[0:side, 0:side] / (side - 1)
    if rng.random() < 0.7:
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
    else:
        cx, cy = rng.uniform(0, 1, 2)
        t = np.hypot(xx - cx, yy - cy)
    t = (t - t.min()) / (t.max() - t.min())
    a, b = rng.integers(0, 256, (2, 3))
    return Image.fromarray((a + (b - a) * t[..., None]).astype(np.uint8))


def text(rng: np.random.Generator) -> Image.Image:
    """A screenshot of text: lines of words, dark on light or light on dark, at a readable size."""
    width, height = int(rng.integers(200, 640)), int(rng.integers(120, 480))
    dark = rng.random() < 0.7
    paper = tuple(int(c) for c in (rng.integers(215, 256, 3) if dark else rng.integers(0, 60, 3)))
    ink = tuple(int(c) for c in (rng.integers(0, 80, 3) if dark else rng.integers(190, 256, 3)))
    size = int(rng.integers(11, 40))
    font = ImageFont.load_default(size=size)
    img = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(img)
    y = int(rng.integers(2, 12))
    while y < height - size // 2:
        line = " ".join(rng.choice(WORDS, int(rng.integers(2, 9))))
        if rng.random() < 0.2:
            line = "".join(rng.choice(list(string.ascii_letters + string.digits + "  .,:;()-"), 30))
        draw.text((int(rng.integers(2, 16)), y), line, fill=ink, font=font)
        y += int(size * rng.uniform(1.2, 1.8))
    return img


def _skimage():
    try:
        import skimage.data
    except ImportError:
        raise MissingPackage("the calibration's photos and faces are scikit-image's sample data: "
                             'pip install -e ".[dev]" (or pip install scikit-image)') from None
    return skimage.data


def photos() -> list[Image.Image]:
    data = _skimage()
    out = []
    for name in PHOTOS:
        a = np.asarray(getattr(data, name)())
        out.append(Image.fromarray(a).convert("RGB"))
    return out


def faces() -> list[Image.Image]:
    a = (_skimage().lfw_subset()[:FACES] * 255).round().astype(np.uint8)
    return [Image.fromarray(f).convert("RGB") for f in a]


def crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random square part of a photo (a third of its short side or more), sometimes mirrored."""
    w, h = img.size
    side = int(min(w, h) * rng.uniform(0.35, 1.0))
    left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    out = img.crop((left, top, left + side, top + side))
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else out


def generate(seed: int, counts: dict[str, int] | None = None) -> tuple[np.ndarray, list[str]]:
    """(N, 32, 32, 3) uint8 pixels as the networks see them, and each one's kind; the same for the same seed."""
    counts = COUNTS if counts is None else counts
    rng = np.random.default_rng(seed)
    drawn: dict[str, Callable[[], Image.Image]] = {
        "noise": lambda: noise(rng), "plain colour": lambda: plain_colour(rng), "gradient": lambda: gradient(rng),
        "text": lambda: text(rng)}
    if counts.get("photo"):
        pool = photos()
        drawn["photo"] = lambda: crop(pool[int(rng.integers(len(pool)))], rng)
    if counts.get("face"):
        people = iter(faces() * (1 + counts["face"] // FACES))  # each face once before any twice
        drawn["face"] = lambda: next(people)
    pixels, kinds = [], []
    for kind, n in counts.items():
        if kind not in COUNTS:
            raise UsageError(f"unknown kind of unfamiliar input {kind!r}; known: {', '.join(COUNTS)}")
        for _ in range(n):
            pixels.append(to_array(drawn[kind]()))
            kinds.append(kind)
    return np.stack(pixels) if pixels else np.zeros((0, 32, 32, 3), np.uint8), kinds
