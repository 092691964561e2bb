"""Our reimplementation of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019) on uint8 32x32 images.

Each corruption takes (32, 32, 3) uint8 pixels, a severity 0-5 and a numpy Generator, and hands back
(32, 32, 3) uint8 pixels; severity 0 is the image unchanged (the page's slider starts there). The
parameters per severity are the ones the authors published for CIFAR-10 (their make_cifar_c.py), not
the ImageNet-C ones that the `imagecorruptions` package carries; the code is ours. Their helpers came
from OpenCV and ImageMagick (Wand), neither of which is here, so we rebuilt what they do:
- defocus: the anti-aliasing 3x3 Gaussian blur of the disk and the filter, with OpenCV's default
  border (reflect without repeating the edge pixel, scipy's "mirror");
- motion blur (and the streaks of snow): ImageMagick's MotionBlurImage kernel, a one-sided Gaussian
  of 2*radius+1 taps laid along the angle, edge pixels repeated past the border;
- elastic: OpenCV's affine warp, bilinear with the same mirrored border;
- snow's grey: OpenCV's RGB->grey weights (0.299, 0.587, 0.114).
Frost is left out: it lays crops of six photographs of frost over the image, and those files are not
here; any stand-in would be a different corruption. That leaves 14 of the 15.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian
from skimage.util import random_noise

from ..errors import UsageError

SEVERITIES = 5
GROUPS = {"noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
          "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
          "weather": ("snow", "fog"),
          "digital": ("brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression")}
LEFT_OUT = {"frost": "needs the six frost photographs the original overlays, which are not here"}


def _unit(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) / 255.0


def _pixels(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8, truncated as the original's np.uint8() of the stored values."""
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian(x, sigma=sigma, channel_axis=-1)


# ---------------------------------------------------------------- noise

def gaussian_noise(x, c, rng):
    return _pixels(_unit(x) + rng.normal(size=x.shape, scale=c))


def shot_noise(x, c, rng):
    return _pixels(rng.poisson(_unit(x) * c) / c)


def impulse_noise(x, c, rng):
    return _pixels(random_noise(_unit(x), mode="s&p", amount=c, rng=rng))


# ---------------------------------------------------------------- blur

def _disk(radius: float, alias_blur: float) -> np.ndarray:
    size = np.arange(-8, 9) if radius <= 8 else np.arange(-int(radius), int(radius) + 1)
    xx, yy = np.meshgrid(size, size)
    disk = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    taps = 3 if radius <= 8 else 5  # OpenCV's GaussianBlur with a fixed kernel size and this sigma
    g = np.exp(-(np.arange(taps) - taps // 2) ** 2 / (2 * alias_blur ** 2))
    g /= g.sum()
    return ndimage.correlate(disk, np.outer(g, g), mode="mirror")


def defocus_blur(x, c, rng):
    kernel = _disk(*c)
    u = _unit(x)
    return _pixels(np.stack([ndimage.correlate(u[..., d], kernel, mode="mirror") for d in range(3)], -1))


def glass_blur(x, c, rng):
    sigma, delta, iterations = c
    x = _pixels(_blur(_unit(x), sigma))
    # The original means to swap each pixel with a neighbour, bottom-right to top-left; its tuple assignment of
    # numpy views copies the neighbour over the pixel instead, and that is what CIFAR-10-C holds, so we do the same.
    for _ in range(iterations):
        for h in range(32 - delta, delta, -1):
            for w in range(32 - delta, delta, -1):
                dx, dy = rng.integers(-delta, delta, size=2)  # [-delta, delta): the original's np.random.randint
                x[h, w] = x[h + dy, w + dx]
    return _pixels(_blur(_unit(x), sigma))


def _motion(img: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's MotionBlurImage on a (H, W, C) float image: each pixel becomes a Gaussian-weighted mean of
    the pixels behind it along `angle` degrees."""
    width = 2 * int(np.ceil(radius)) + 1
    weights = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2))
    weights /= weights.sum()
    px, py = width * np.sin(np.radians(angle)), width * np.cos(np.radians(angle))
    norm = np.hypot(px, py)
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    out = np.zeros_like(img)
    for i, wt in enumerate(weights):
        ox, oy = int(np.rint(i * py / norm)), int(np.rint(i * px / norm))
        out += wt * img[np.clip(ys + oy, 0, h - 1), np.clip(xs + ox, 0, w - 1)]
    return out


def motion_blur(x, c, rng):
    return _pixels(_motion(_unit(x), *c, angle=rng.uniform(-45, 45)))


def _clipped_zoom(img: np.ndarray, factor: float) -> np.ndarray:
    h = img.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    img = ndimage.zoom(img[top:top + ch, top:top + ch], (factor, factor, 1), order=1)
    trim = (img.shape[0] - h) // 2
    return img[trim:trim + h, trim:trim + h]


def zoom_blur(x, c, rng):
    u = _unit(x).astype(np.float32)
    factors = np.arange(1, c, 0.01)
    out = sum(_clipped_zoom(u, f) for f in factors)
    return _pixels((u + out) / (len(factors) + 1))


# ---------------------------------------------------------------- weather

def snow(x, c, rng):
    loc, scale, zoom, threshold, radius, sigma, keep = c
    u = _unit(x).astype(np.float32)
    layer = _clipped_zoom(rng.normal(size=(32, 32, 1), loc=loc, scale=scale), zoom)
    layer[layer < threshold] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8) / 255.0  # the original passes it through a PNG
    layer = _motion(layer, radius, sigma, angle=rng.uniform(-135, -45))
    grey = (u @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    u = keep * u + (1 - keep) * np.maximum(u, grey * 1.5 + 0.5)
    return _pixels(u + layer + np.rot90(layer, k=2))


def _plasma(rng, size: int = 32, decay: float = 3) -> np.ndarray:
    """A fractal height map in [0, 1] by the diamond-square algorithm, as the original's plasma_fractal."""
    m = np.zeros((size, size))
    step, wibble = size, 100.0

    def wibbled(a):
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corners = m[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=0)
        square += np.roll(square, -1, axis=1)
        m[half:size:step, half:size:step] = wibbled(square)
        dr, ul = m[half:size:step, half:size:step], m[0:size:step, 0:size:step]
        m[0:size:step, half:size:step] = wibbled(dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1))
        m[half:size:step, 0:size:step] = wibbled(dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0))
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


def fog(x, c, rng):
    amount, decay = c
    u = _unit(x)
    top = u.max()
    u = u + amount * _plasma(rng, decay=decay)[..., None]
    return _pixels(u * top / (top + amount))


# ---------------------------------------------------------------- digital

def brightness(x, c, rng):
    hsv = rgb2hsv(_unit(x))
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return _pixels(hsv2rgb(hsv))


def contrast(x, c, rng):
    u = _unit(x)
    means = u.mean(axis=(0, 1), keepdims=True)
    return _pixels((u - means) * c + means)


def elastic_transform(x, c, rng):
    alpha, sigma, affine = c
    u = _unit(x).astype(np.float32)
    centre, side = np.float32([16, 16]), 32 // 3
    src = np.float32([centre + side, [centre[0] + side, centre[1] - side], centre - side])
    dst = src + rng.uniform(-affine, affine, size=src.shape).astype(np.float32)
    # The affine map taking src to dst (points as (x, y)); the warp samples the source at its inverse.
    forward = np.linalg.solve(np.c_[src, np.ones(3)], dst).T  # 2x3
    inverse = np.linalg.inv(np.r_[forward, [[0, 0, 1]]])
    rows = np.array([[inverse[1, 1], inverse[1, 0]], [inverse[0, 1], inverse[0, 0]]])  # in (row, col) order
    offset = np.array([inverse[1, 2], inverse[0, 2]])
    u = np.stack([ndimage.affine_transform(u[..., d], rows, offset, order=1, mode="mirror") for d in range(3)], -1)
    dx = (gaussian(rng.uniform(-1, 1, size=(32, 32)), sigma, mode="reflect", truncate=3) * alpha)
    dy = (gaussian(rng.uniform(-1, 1, size=(32, 32)), sigma, mode="reflect", truncate=3) * alpha)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float64)
    out = np.stack([ndimage.map_coordinates(u[..., d], [yy + dy, xx + dx], order=1, mode="reflect")
                    for d in range(3)], -1)
    return _pixels(out)


def pixelate(x, c, rng):
    side = int(32 * c)
    img = Image.fromarray(x).resize((side, side), Image.Resampling.BOX)
    return np.asarray(img.resize((32, 32), Image.Resampling.BOX)).copy()


def jpeg_compression(x, c, rng):
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=c)
    with Image.open(buf) as img:
        return np.asarray(img.convert("RGB")).copy()


# ---------------------------------------------------------------- the table

S = 32  # elastic's parameters are fractions of the image size
PARAMETERS: dict[str, tuple[Callable, list]] = {
    "gaussian_noise": (gaussian_noise, [0.04, 0.06, 0.08, 0.09, 0.10]),
    "shot_noise": (shot_noise, [500, 250, 100, 75, 50]),
    "impulse_noise": (impulse_noise, [0.01, 0.02, 0.03, 0.05, 0.07]),
    "defocus_blur": (defocus_blur, [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]),
    "glass_blur": (glass_blur, [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)]),
    "motion_blur": (motion_blur, [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)]),
    "zoom_blur": (zoom_blur, [1.06, 1.11, 1.16, 1.21, 1.26]),  # zoom factors 1, 1.01, ... below this
    "snow": (snow, [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)]),
    "fog": (fog, [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)]),
    "brightness": (brightness, [0.05, 0.1, 0.15, 0.2, 0.3]),
    "contrast": (contrast, [0.75, 0.5, 0.4, 0.3, 0.15]),
    "elastic_transform": (elastic_transform, [(S * 0, S * 0, S * 0.08), (S * 0.05, S * 0.2, S * 0.07),
                                              (S * 0.08, S * 0.06, S * 0.06), (S * 0.1, S * 0.04, S * 0.05),
                                              (S * 0.1, S * 0.03, S * 0.03)]),
    "pixelate": (pixelate, [0.95, 0.9, 0.85, 0.75, 0.65]),
    "jpeg_compression": (jpeg_compression, [80, 65, 58, 50, 40]),
}
NAMES = tuple(PARAMETERS)
# Where the published parameters do not grow with severity, the change to an image does not either: elastic's
# severity 1 moves the image by the largest affine jitter of the five, its later severities by smaller ones
# with a finer warp; glass blur's severity 3 blurs more (sigma 0.4, one pass) than severity 4 (0.25, two).
NOT_MONOTONE = ("elastic_transform", "glass_blur")


def title(name: str) -> str:
    """'gaussian_noise' -> 'Gaussian noise', 'jpeg_compression' -> 'JPEG compression'."""
    words = name.split("_")
    first = {"jpeg": "JPEG", "gaussian": "Gaussian"}.get(words[0], words[0].capitalize())
    return " ".join([first] + words[1:])


def corrupt(pixels: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """(32, 32, 3) uint8 -> the same image under corruption `name` at `severity` (0: unchanged).

    The random draws come from `seed`, so an image and seed give the same picture every time, at every
    severity the same noise pattern scaled."""
    if name not in PARAMETERS:
        raise UsageError(f"unknown corruption {name!r}: one of {', '.join(NAMES)}")
    if not 0 <= severity <= SEVERITIES:
        raise UsageError(f"severity: 0 to {SEVERITIES}, not {severity}")
    pixels = np.asarray(pixels)
    if pixels.shape != (32, 32, 3) or pixels.dtype != np.uint8:
        raise UsageError(f"corruptions take 32x32x3 uint8 pixels, not {pixels.shape} {pixels.dtype}")
    if severity == 0:
        return pixels.copy()
    fn, params = PARAMETERS[name]
    return fn(pixels.copy(), params[severity - 1], np.random.default_rng(seed))


def parse(spec: str) -> tuple[str, int]:
    """'gaussian_noise:3' -> ('gaussian_noise', 3), for `predict --corrupt`; a one-line ValueError otherwise."""
    name, _, level = spec.partition(":")
    if name not in PARAMETERS:
        raise UsageError(f"--corrupt {spec!r}: the corruption is one of {', '.join(NAMES)}")
    if not level.isdigit() or not 0 <= int(level) <= SEVERITIES:
        raise UsageError(f"--corrupt {spec!r}: give NAME:SEVERITY, the severity 0 to {SEVERITIES}")
    return name, int(level)
