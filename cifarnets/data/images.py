"""Any image a user has -> an upright RGB picture -> the 32x32 array the networks see.

Everything that can go wrong with an image ends in ImageError with one line a person can act on.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from ..errors import UsageError, UserError
from ..paths import public, public_limits

MAX_PIXELS = 64_000_000  # ~8000x8000 as decoded: refuse decompression bombs before decoding a single pixel
SIZE = 32
# JPEGs are decoded at a reduced DCT scale while at least this size remains: a 48-megapixel photo
# then costs a quarter of the time and memory, and 32x32 (or a preview) cannot tell the difference.
DRAFT = 1024
# Pillow holds a decoded picture at up to 4 bytes a pixel (RGB as RGBX), and a PNG cannot be decoded at a
# reduced scale, so a 267 KB PNG of 8000x8000 pixels costs 256 MB once decoded. Past this many pixels the
# picture is shrunk by whole factors, down to DRAFT on its shorter side as a JPEG is, before any colour
# conversion or rotation copies it; at or below it nothing changes (every camera JPEG, once drafted, is
# far below). Converting and rotating then keep at most two copies of what remains.
REDUCE_ABOVE = 16_000_000
# Decodes of more than this many pixels take turns, server-wide (Streamlit's sessions are threads of one
# process): two visitors' large pictures never cost twice the memory at once. Smaller ones never wait.
LARGE = 4_000_000
_LARGE_DECODES = threading.BoundedSemaphore(1)
# Only these decoders ever see user bytes. Pillow can open many more (EPS even runs Ghostscript);
# each is attack surface that no user of a CIFAR-10 demo needs. MPO (camera JPEGs) opens as JPEG.
# The one list of what we read: Pillow's format name -> the file endings the uploader accepts for it.
FORMATS = {"PNG": ("png",), "JPEG": ("jpg", "jpeg"), "WEBP": ("webp",), "GIF": ("gif",), "BMP": ("bmp",),
           "TIFF": ("tif", "tiff"), "AVIF": ("avif",)}
EXTENSIONS = [ext for exts in FORMATS.values() for ext in exts]
# The largest file we take, in MB, as Streamlit counts them (2**20 bytes). The app's uploader has the same
# cap (.streamlit/config.toml's server.maxUploadSize; a test keeps the two equal), so the app and
# `predict` refuse the same files. Public mode takes less: its own CIFARNETS_UPLOAD_MB (upload_mb()).
MAX_UPLOAD_MB = 200


class ImageError(UserError, ValueError):
    """This file cannot be classified, and why, in one line."""


MAX_BYTES = MAX_UPLOAD_MB * 2**20


def upload_mb() -> int:
    """The largest file taken, in MB of 2**20 bytes: public mode's cap, else MAX_UPLOAD_MB."""
    return math.ceil(public_limits().upload_mb) if public() else MAX_UPLOAD_MB


def pixel_cap() -> int:
    """The most pixels a picture may have as decoded: public mode's cap, else MAX_PIXELS."""
    return int(public_limits().megapixels * 1_000_000) if public() else MAX_PIXELS


def decode_image(raw: bytes, name: str = "image", *, max_bytes: int | None = None,
                 max_pixels: int | None = None) -> Image.Image:
    """Decode bytes into an upright RGB image (first frame; transparency over white).

    Raises ImageError, and nothing else, whatever the bytes are. `max_bytes` and `max_pixels` default to
    the caps in force (public mode's, else MAX_BYTES and MAX_PIXELS), read at call time.
    """
    if max_bytes is None:
        max_bytes = int(public_limits().upload_mb * 2**20) if public() else MAX_BYTES
    max_pixels = pixel_cap() if max_pixels is None else max_pixels
    if not raw:
        raise ImageError(f"{name} is empty (0 bytes)")
    if len(raw) > max_bytes:
        raise ImageError(f"{name} is {len(raw) / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "corrupt EXIF" and the like: we cope, quietly
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw), formats=_formats())
            if img.size[0] < 1 or img.size[1] < 1:
                raise ImageError(f"{name} has no pixels ({img.size[0]}x{img.size[1]})")
            img.seek(0)  # animated GIF/WebP/PNG/TIFF: the first frame
            if img.format == "JPEG":
                img.draft("RGB", (DRAFT, DRAFT))  # the size below is then the size decoded
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(f"{name} is {w}x{h} = {w * h:,} pixels, over the {max_pixels:,} pixel limit "
                                 "(refused before decoding)")
            with _LARGE_DECODES if w * h > LARGE else contextlib.nullcontext():
                img.load()
                orientation = _orientation(img)
                if w * h > REDUCE_ABOVE:
                    img = _reduce(img, max(1, min(w, h) // DRAFT))
                img = _to_rgb(img)
                return _upright(img, orientation)
    except ImageError:
        raise
    except UnidentifiedImageError:
        formats = formats_text()
        what = _sniff(raw)
        raise ImageError(f"{name} is {what} (we read {formats})" if what else
                         f"{name} is not in an image format we can read ({formats})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own check, in Image.open, for sizes far beyond ours: the same refusal, the same words
        raise ImageError(f"{name} is over the {max_pixels:,} pixel limit (refused before decoding: "
                         "a decompression bomb?)") from None
    except MemoryError:
        raise ImageError(f"{name} needs more memory to decode than is free; try a smaller image") from None
    except (OSError, SyntaxError, ValueError, TypeError, LookupError, EOFError, RuntimeError, struct.error,
            zlib.error, ArithmeticError) as e:
        # What Pillow's decoders raise on damaged data (the hypothesis fuzz test in tests/ checks the list).
        raise ImageError(f"{name} is damaged or truncated ({type(e).__name__}: {str(e)[:80]})") from None
    except Exception as e:
        # Anything else is a decoder failure we did not foresee: still one bad file, never a crash of the
        # whole upload. Chained, so that a log shows it and the fuzz test can tell it from the foreseen.
        raise ImageError(f"{name} could not be decoded ({type(e).__name__}: {str(e)[:80]})") from e


def _formats() -> list[str]:
    Image.init()  # registers every plugin once; then only ours are tried
    return [f for f in FORMATS if f in Image.OPEN]


def formats_text() -> str:
    """'PNG, JPEG, WEBP, ...': what a person is told we read."""
    return ", ".join(_formats())


# The first bytes of the formats we read: past them, "unidentified" means damaged, not foreign.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
               (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"RIFF", "WebP"))


def _sniff(raw: bytes) -> str:
    """What a file Pillow cannot identify probably is, and what to do ("" when unsure)."""
    for magic, fmt in _SIGNATURES:
        if raw.startswith(magic) and (fmt != "WebP" or raw[8:12] == b"WEBP"):
            return f"a {fmt} file, but damaged or truncated"
    head = raw[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in head:
        return "an SVG drawing: export it as PNG"
    if head.startswith(b"%pdf"):
        return "a PDF document, not an image"
    if raw[4:8] == b"ftyp" and raw[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1"):
        return "a HEIC/HEIF photo: save it as JPEG"
    if len(raw) > 1 and raw[0] == 0x80 and 2 <= raw[1] <= 5:  # pickle protocols 2 to 5
        return "a Python pickle, not an image"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:  # also a multi-byte character cut at 1024 bytes: then we just don't say
        return ""
    return "a text file, not an image" if all(c.isprintable() or c.isspace() for c in text) else ""


# Modes whose pixels cannot be averaged as they are (palette indices, bits, 16-bit integers Pillow's reduce
# refuses), and the mode each is averaged in instead.
_AVERAGED_AS = {"P": "RGBA", "PA": "RGBA", "1": "L", "I;16": "I", "I;16L": "I", "I;16B": "I", "I;16N": "I"}
_STRIP = 64  # rows of the shrunk picture made at a time: each strip converted is a few MB at most


def _reduce(img: Image.Image, factor: int) -> Image.Image:
    """`img` shrunk by a whole factor, each pixel the mean of a factor x factor block (Image.reduce), a strip at
    a time, so that a mode that must be converted first is never converted whole."""
    if factor < 2:
        return img
    mode = _AVERAGED_AS.get(img.mode, img.mode)
    if img.mode == "P" and "transparency" not in img.info:
        mode = "RGB"
    w, h = img.size[0] // factor, img.size[1] // factor
    out = Image.new(mode, (w, h))
    for top in range(0, h, _STRIP):
        rows = min(_STRIP, h - top)
        strip = img.crop((0, top * factor, w * factor, (top + rows) * factor))
        out.paste(strip.convert(mode).reduce(factor), (0, top))
    return out


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB, transparency over white, each step dropping the picture before: at most two copies at once."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit and float greyscale: scale to 8 bits by the range actually used, not by clipping.
        a = np.array(img, dtype=np.float32)  # a copy we may write to; float32: 64 megapixels stay at 256 MB
        del img
        if not np.isfinite(a).all():  # NaN and infinities (float TIFFs) count as black instead of poisoning the range
            np.nan_to_num(a, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(a.min()), float(a.max())
        with np.errstate(all="ignore"):  # float32 overflow near +-3e38 saturates, then clips
            if hi > lo:
                a -= lo
                a *= 255 / (hi - lo)
                np.clip(a, 0, 255, out=a)
            else:
                a[...] = 0
        img = Image.fromarray(a.astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        del img
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))  # the same pixels as alpha_composite over white, one copy less
        return out
    return img if img.mode == "RGB" else img.convert("RGB")


ORIENTATION = 0x0112  # the EXIF tag a camera writes for how it was held


def _orientation(img: Image.Image) -> int | None:
    try:
        return img.getexif().get(ORIENTATION)
    except Exception:  # a broken EXIF block does not make the pixels unusable
        return None


def _upright(img: Image.Image, orientation: int | None) -> Image.Image:
    """`img` turned as its EXIF orientation says (read before the picture was shrunk and converted)."""
    turn = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}.get(orientation)
    return img.transpose(turn) if turn is not None else img


def crop_box(width: int, height: int, crop: float = 1.0, size: int = SIZE) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centre square (CIFAR-10's objects are centred), `crop` of the shorter side
    across: the part of a picture the networks see."""
    # never closer than the picture's own pixels allow: a small picture (an icon, a thumbnail) is not blown up
    # further to be cropped, it is taken whole
    side = max(1, min(min(width, height), max(round(crop * min(width, height)), size)))
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def _square(img: Image.Image, crop: float, size: int) -> Image.Image:
    """The centre square (crop_box); or with crop 0 the whole picture padded out to a square with its own mean
    colour."""
    w, h = img.size
    if crop:
        return img.crop(crop_box(w, h, crop, size))
    mean = tuple(int(v) for v in np.asarray(img.resize((8, 8), Image.Resampling.BOX)).reshape(-1, 3).mean(0))
    return ImageOps.pad(img, (max(w, h), max(w, h)), color=mean)


def _shrink(filter: Image.Resampling, crop: float = 1.0, jpeg: int = 0, soften: float = 0.0):
    def prepare(img: Image.Image, size: int) -> Image.Image:
        gap = None if filter == Image.Resampling.NEAREST else 2.0  # a box pre-shrink would antialias "nearest"
        square = _square(img, crop, size)
        small = square.resize((size, size), filter, reducing_gap=gap)
        if soften and square.size[0] > size:  # only a shrunk photo is sharper than CIFAR-10's own images
            small = small.filter(ImageFilter.GaussianBlur(soften))
        if jpeg:  # as CIFAR-10's copy here was made: every image we train and test on is a JPEG at this quality
            buffer = io.BytesIO()
            small.save(buffer, "JPEG", quality=jpeg)
            small = Image.open(buffer).convert("RGB")
        return small
    return prepare


# A photo shrunk to 32x32 keeps more fine detail than CIFAR-10's own images: 8.2% of its spectrum's energy
# above half the highest frequency, against 5.5% (medians, `python -m cifarnets photos --data PATH`). A Gaussian
# blur of this radius (pixels) after the shrink brings the real photos' median to CIFAR-10's test split's. Chosen
# on that statistic alone, which needs no labels; the photos' accuracy was measured after (docs/photos.md).
SOFTEN = 0.45

# Ways of turning a photo into the 32x32 picture the networks see; `python -m cifarnets photos` measures
# each on real photos (docs/photos.md). Pillow's filters average over the whole
# footprint when they shrink (antialiasing); "nearest" does not, to show what that is worth.
PREPARATIONS = {
    "crop, lanczos": _shrink(Image.Resampling.LANCZOS),
    "crop, bicubic": _shrink(Image.Resampling.BICUBIC),
    "crop, box": _shrink(Image.Resampling.BOX),
    "crop, nearest": _shrink(Image.Resampling.NEAREST),
    "pad, lanczos": _shrink(Image.Resampling.LANCZOS, crop=0),
    "crop 90%, lanczos": _shrink(Image.Resampling.LANCZOS, crop=0.9),
    "crop 80%, lanczos": _shrink(Image.Resampling.LANCZOS, crop=0.8),
    "crop 70%, lanczos": _shrink(Image.Resampling.LANCZOS, crop=0.7),
    "crop 80%, bicubic": _shrink(Image.Resampling.BICUBIC, crop=0.8),
    "crop, lanczos, jpeg 75": _shrink(Image.Resampling.LANCZOS, jpeg=75),
    "crop, bicubic, jpeg 75": _shrink(Image.Resampling.BICUBIC, jpeg=75),
    "crop, lanczos, softened": _shrink(Image.Resampling.LANCZOS, soften=SOFTEN),
}
# What the app, `predict`, the unfamiliar-input check and the data loader use: the centre square, shrunk by
# Lanczos and softened to CIFAR-10's fine detail (SOFTEN). Chosen on the 783 real photos of the development set
# (docs/photos.md), for the four networks together: against area averaging (our choice on 72 photos before) the
# paired 90% interval is +0.4 to +1.9 points, against bicubic -0.4 to +0.8 (a tie, where the label-free detail
# statistic also favours softened: 5.1% against CIFAR-10's 5.5%, bicubic 6.8%). On 218 held-out ImageNet photos
# every network got 6 to 11 more right from the whole centre square than from its centre 80% (our choice on
# composites before that). CIFAR-10's own 32x32 images are taken whole.
PREPARATION = "crop, lanczos, softened"


def to_array(img: Image.Image, size: int = SIZE, preparation: str = PREPARATION) -> np.ndarray:
    """(size, size, 3) uint8: exactly the pixels the networks get. A picture already that size (CIFAR-10's
    own) is taken as it is."""
    if img.size != (size, size):
        img = PREPARATIONS[preparation](img, size)
    return np.asarray(img, dtype=np.uint8)


def read_labelled(folder: Path, classes: list[str], how: str = "") -> tuple[list[Image.Image], np.ndarray, list[str]]:
    """Every picture under folder/<class>/, decoded as an upload is, with its label (the class's index in
    `classes`) and name (<class>/<file>): a folder of real photos (`photos`, `calibrate --photos`). `how`:
    what the user is told to give instead, when the folder holds none."""
    tail = f"; {how}" if how else ""
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder of photos (FOLDER/<class>/<picture>){tail}")
    pictures, labels, names = [], [], []
    for i, c in enumerate(classes):
        for f in sorted((folder / c).glob("*")):
            if f.suffix.lower().lstrip(".") in EXTENSIONS:
                pictures.append(decode_image(f.read_bytes(), f.name))
                labels.append(i)
                names.append(f"{c}/{f.name}")
    if not pictures:
        raise UsageError(f"no pictures under {folder}/<class>/{tail}")
    return pictures, np.array(labels), names


def read_photos(folders: list, classes: list[str], how: str = "") -> tuple[list[Image.Image], np.ndarray, list[str]]:
    """read_labelled over several folders pooled, each name <folder's name>/<class>/<file>: a picture says
    which folder (source) it came from, and never a path of the machine."""
    pictures, labels, names = [], [], []
    for folder in folders:
        p, y, n = read_labelled(Path(folder), classes, how)
        pictures += p
        labels += list(y)
        names += [f"{Path(folder).name}/{name}" for name in n]
    return pictures, np.array(labels, dtype=int), names
