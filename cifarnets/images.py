"""Any image a user has -> an upright RGB picture -> the 32x32 array the networks see.

Everything that can go wrong with an image ends in ImageError with one line a person can act on.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 200 * 1024 * 1024  # the same cap as .streamlit/config.toml's server.maxUploadSize (MB)
MAX_PIXELS = 64_000_000  # ~8000x8000: refuse decompression bombs before decoding a single pixel
SIZE = 32


class ImageError(ValueError):
    """This file cannot be classified, and why, in one line."""


def decode_image(raw: bytes, name: str = "image", *, max_bytes: int = MAX_BYTES,
                 max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode bytes into an upright RGB image (first frame; transparency over white)."""
    if not raw:
        raise ImageError(f"{name} is empty (0 bytes)")
    if len(raw) > max_bytes:
        raise ImageError(f"{name} is {len(raw) / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(f"{name} is {w}x{h} = {w * h:,} pixels, over the {max_pixels:,} pixel limit "
                                 "(refused before decoding)")
            if w < 1 or h < 1:
                raise ImageError(f"{name} has no pixels ({w}x{h})")
            img.seek(0)  # animated GIF/WebP/TIFF: the first frame
            img.load()
            try:
                img = ImageOps.exif_transpose(img) or img
            except Exception:  # a broken EXIF block does not make the pixels unusable
                pass
            return _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image format we can read (PNG, JPEG, WebP, BMP, GIF, TIFF)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} decodes to too many pixels (a decompression bomb?); refused") from None
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, EOFError,
            MemoryError, RuntimeError, struct_error(), ZeroDivisionError, OverflowError) as e:
        raise ImageError(f"{name} is damaged or truncated ({type(e).__name__}: {str(e)[:80]})") from None


def struct_error() -> type[Exception]:
    import struct

    return struct.error


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit and float greyscale: scale to 8 bits by the range actually used, not by clipping.
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        a = np.nan_to_num((a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a))
        img = Image.fromarray(a.astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def fit(img: Image.Image, size: int = SIZE) -> Image.Image:
    """Centre-crop to a square (keeping the aspect ratio, as CIFAR-10's objects are centred), then resize."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side),
                      reducing_gap=2.0)


def to_array(img: Image.Image, size: int = SIZE) -> np.ndarray:
    """(size, size, 3) uint8: exactly the pixels the networks get."""
    return np.asarray(fit(img, size), dtype=np.uint8)
