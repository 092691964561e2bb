"""The catalogue of hostile uploads: files people have on their disks, each with what must happen to it.

GOOD files must be classified (with a check on the pixels the networks see); BAD ones must be refused
with one clear reason. Shared by the library tests (test_hostile_images) and the app's (test_app_uploads).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from cifarnets.predict import PREVIEW
from helpers.hostile import encode, gif_bomb, png_bomb, png_raw

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def solid(colour, size=(16, 16), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def halves(size=(40, 20), first=RED, second=BLUE) -> Image.Image:
    """Left half `first`, right half `second`."""
    img = Image.new("RGB", size, second)
    img.paste(first, (0, 0, size[0] // 2, size[1]))
    return img


def close(pixel, colour, tol=40) -> bool:
    return all(abs(int(p) - c) <= tol for p, c in zip(pixel, colour, strict=True))


def animated(fmt: str) -> bytes:
    frames = [solid(RED), solid(BLUE), solid(GREEN)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(halves(), "JPEG", exif=exif.tobytes(), quality=95)


def grey16() -> bytes:
    """A 16-bit greyscale gradient using only the lower quarter of the range, as scanners often do."""
    a = np.tile(np.linspace(0, 16000, 16, dtype=np.uint16), (16, 1))
    return encode(Image.fromarray(a), "PNG")


def rgb16() -> bytes:
    """16-bit-per-channel RGB (colour type 2, depth 16): Pillow reads it but cannot write it."""
    row = b"\x00" + b"\xff\xff\x00\x00\x00\x00" * 8  # filter byte, then 8 red pixels
    return png_raw(8, 8, 16, 2, row * 8)


def float_tiff() -> bytes:
    a = np.tile(np.linspace(-1.0, 1.0, 16, dtype=np.float32), (16, 1))
    a[0, 0], a[0, 1], a[0, 2] = np.nan, np.inf, -np.inf
    return encode(Image.fromarray(a, "F"), "TIFF")


def palette_transparent() -> bytes:
    img = Image.new("P", (16, 16), 0)
    img.putpalette([0, 0, 0] + [255, 0, 0] * 255)
    return encode(img, "PNG", transparency=0)


def cmyk(fmt: str) -> bytes:
    return encode(solid((255, 0, 0, 0), mode="CMYK"), fmt)  # pure cyan ink


def one_bit(fmt: str) -> bytes:
    img = Image.new("1", (16, 16), 0)
    img.paste(1, (0, 0, 16, 8))  # top half white
    return encode(img, fmt)


def truncated(raw: bytes, keep: float = 0.6) -> bytes:
    return raw[: int(len(raw) * keep)]


def corrupt_png() -> bytes:
    """A flipped byte inside the compressed pixels: the chunk's CRC no longer matches."""
    raw = bytearray(encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), np.uint8)), "PNG"))
    idat = raw.index(b"IDAT")
    raw[idat + 20] ^= 0xFF
    return bytes(raw)


def broken_exif_jpeg() -> bytes:
    return encode(solid(RED), "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f garbage")


NOISE = Image.fromarray(np.random.default_rng(1).integers(0, 255, (24, 24, 3), np.uint8))

# name -> (bytes, check(prepared) or None): files that must be classified.
GOOD = {
    "PHOTO.JPG": (lambda: encode(solid(RED), "JPEG"), lambda p: close(p.pixels[16, 16], RED)),
    "IMAGE.PNG": (lambda: encode(solid(BLUE), "PNG"), lambda p: close(p.pixels[16, 16], BLUE, 0)),
    "Mixed.Jpeg": (lambda: encode(solid(GREEN), "JPEG"), lambda p: close(p.pixels[16, 16], GREEN)),
    "really-a-png.jpg": (lambda: encode(solid(RED), "PNG"), lambda p: close(p.pixels[16, 16], RED, 0)),
    "grey16.png": (grey16, lambda p: p.pixels[16, 1, 0] < 50 and p.pixels[16, 30, 0] > 200),  # range stretched
    "grey16.tif": (lambda: encode(Image.fromarray(np.full((8, 8), 40000, np.uint16)), "TIFF"), None),
    "rgb16.png": (rgb16, lambda p: close(p.pixels[16, 16], RED, 0)),
    "float.tif": (float_tiff, lambda p: p.pixels[16, 2, 0] < p.pixels[16, 29, 0]),
    "palette.png": (lambda: encode(solid(RED).quantize(4), "PNG"), lambda p: close(p.pixels[16, 16], RED, 0)),
    "palette.gif": (lambda: encode(solid(BLUE), "GIF"), lambda p: close(p.pixels[16, 16], BLUE, 0)),
    "palette-transparent.png": (palette_transparent, lambda p: close(p.pixels[16, 16], WHITE, 0)),
    "transparent.png": (lambda: encode(solid((255, 0, 0, 0), mode="RGBA"), "PNG"),
                        lambda p: close(p.pixels[16, 16], WHITE, 0)),  # invisible red is white, not red
    "half-transparent.png": (lambda: encode(solid((0, 0, 0, 128), mode="RGBA"), "PNG"),
                             lambda p: close(p.pixels[16, 16], (127, 127, 127), 2)),
    "grey-alpha.png": (lambda: encode(solid((0, 0), mode="LA"), "PNG"), lambda p: close(p.pixels[16, 16], WHITE, 0)),
    "transparent.webp": (lambda: encode(solid((0, 0, 255, 0), mode="RGBA"), "WEBP", lossless=True),
                         lambda p: close(p.pixels[16, 16], WHITE, 0)),
    "cmyk.jpg": (lambda: cmyk("JPEG"), lambda p: close(p.pixels[16, 16], (0, 255, 255))),
    "cmyk.tif": (lambda: cmyk("TIFF"), lambda p: close(p.pixels[16, 16], (0, 255, 255), 0)),
    "one-bit.png": (lambda: one_bit("PNG"), lambda p: close(p.pixels[2, 16], WHITE, 0)
                    and close(p.pixels[29, 16], BLACK, 0)),
    "one-bit.bmp": (lambda: one_bit("BMP"), lambda p: close(p.pixels[2, 16], WHITE, 0)
                    and close(p.pixels[29, 16], BLACK, 0)),
    "one-bit.tif": (lambda: one_bit("TIFF"), lambda p: close(p.pixels[2, 16], WHITE, 0)),
    "animated.gif": (lambda: animated("GIF"), lambda p: close(p.pixels[16, 16], RED, 0)),  # the first frame
    "animated.webp": (lambda: animated("WEBP"), lambda p: close(p.pixels[16, 16], RED)),
    "animated.png": (lambda: animated("PNG"), lambda p: close(p.pixels[16, 16], RED, 0)),  # APNG
    "multipage.tif": (lambda: animated("TIFF"), lambda p: close(p.pixels[16, 16], RED, 0)),
    "broken-exif.jpg": (broken_exif_jpeg, lambda p: close(p.pixels[16, 16], RED)),
    "wide.png": (lambda: encode(solid(RED, (10_000, 1)), "PNG"), lambda p: close(p.pixels[0, 0], RED, 0)),
    "tall.png": (lambda: encode(solid(BLUE, (1, 10_000)), "PNG"), lambda p: close(p.pixels[31, 31], BLUE, 0)),
    "1x1.png": (lambda: encode(solid(GREEN, (1, 1)), "PNG"), lambda p: (p.pixels == GREEN).all()),
    "1x1.gif": (lambda: encode(solid(GREEN, (1, 1)), "GIF"), lambda p: (p.pixels == GREEN).all()),
    "large.jpg": (lambda: encode(NOISE.resize((2600, 2200)), "JPEG"), lambda p: max(p.image.size) == PREVIEW),
    "noise.bmp": (lambda: encode(NOISE, "BMP"), None),
    "noise.tiff": (lambda: encode(NOISE, "TIFF", compression="tiff_lzw"), None),
    "noise.webp": (lambda: encode(NOISE, "WEBP"), None),
    "progressive.jpg": (lambda: encode(NOISE, "JPEG", progressive=True), None),
}

# name -> (bytes, what the one-line reason must say): files that must be refused.
BAD = {
    "empty.png": (lambda: b"", "empty (0 bytes)"),
    "notes.jpg": (lambda: b"shopping list:\n- milk\n- eggs\n", "a text file, not an image"),
    "drawing.png": (lambda: b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "an SVG drawing"),
    "photo.heic.jpg": (lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
    "document.png": (lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
    "binary.gif": (lambda: bytes(range(256)) * 4, "not in an image format we can read"),
    "truncated.png": (lambda: truncated(encode(NOISE, "PNG")), "damaged or truncated"),
    "truncated.jpg": (lambda: truncated(encode(NOISE, "JPEG")), "damaged or truncated"),
    "truncated.gif": (lambda: truncated(encode(NOISE, "GIF"), 0.4), "a GIF file, but damaged or truncated"),
    "cut-after-signature.png": (lambda: encode(NOISE, "PNG")[:12], "a PNG file, but damaged or truncated"),
    "header-only.webp": (lambda: encode(NOISE, "WEBP")[:30], "damaged or truncated"),
    "corrupt.png": (corrupt_png, "damaged or truncated"),
    "bomb.png": (png_bomb, "pixel limit (refused before decoding"),
    "bomb.gif": (gif_bomb, "pixel limit (refused before decoding"),
    "9000x9000.png": (lambda: png_bomb(9000, 9000), "pixel limit (refused before decoding"),
}
