"""Public mode against a hostile visitor (docs/reliability.md#hostile-visitors): each attack issue 42 found,
reproduced here, and what holds it. The trainer's bounds (attack 4) are in test_public.py."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image, ImageFile

from cifarnets.data import images
from cifarnets.data.images import ImageError, decode_image, to_array
from cifarnets.paths import public_limits


def flat_png(side: int, mode: str = "RGBA") -> bytes:
    """A picture of `side` x `side` pixels of one colour: a file of a few hundred KB at most, whatever its size."""
    buffer = io.BytesIO()
    Image.new(mode, (side, side), 200 if mode in ("P", "L", "I;16") else (200, 30, 30, 128)[:len(mode)]).save(
        buffer, "PNG", optimize=True)
    return buffer.getvalue()


@pytest.fixture
def largest_made(monkeypatch):
    """The most pixels any image made while decoding had: each copy the decoder makes is one image made."""
    seen = [0]
    real_convert, real_new, real_transpose = Image.Image.convert, Image.new, Image.Image.transpose
    real_composite = Image.alpha_composite

    def counted(made):
        seen[0] = max(seen[0], made.size[0] * made.size[1])
        return made

    monkeypatch.setattr(Image.Image, "convert", lambda self, *a, **k: counted(real_convert(self, *a, **k)))
    monkeypatch.setattr(Image.Image, "transpose", lambda self, *a, **k: counted(real_transpose(self, *a, **k)))
    monkeypatch.setattr(Image, "new", lambda *a, **k: counted(real_new(*a, **k)))
    monkeypatch.setattr(Image, "alpha_composite", lambda a, b: counted(real_composite(a, b)))
    return seen


# ---------------------------------------------------------------- 1. a small file that costs a gigabyte

@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "RGB", "LA"])
def test_a_huge_flat_picture_is_shrunk_before_any_copy(largest_made, mode):
    """Once decoded, the picture is shrunk before it is converted: no copy at full size (before: RGBA's
    conversion to RGB over white made four, 1 GB for a 267 KB file; `bench --memory` measures it)."""
    raw = flat_png(5000, mode)
    assert len(raw) < 300_000
    largest_made[0] = 0  # count from here: the picture above was made by the test
    img = decode_image(raw, "bomb.png")
    assert img.mode == "RGB" and min(img.size) >= images.DRAFT
    assert largest_made[0] <= images.REDUCE_ABOVE, f"a copy of {largest_made[0]:,} pixels"


def test_the_shrink_keeps_what_the_networks_see():
    """A picture shrunk on decoding is prepared as the same picture not shrunk, to within a grey level or two."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((4400, 4400), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    shrunk = to_array(decode_image(buffer.getvalue(), "big.png"))
    whole = to_array(big)
    assert np.abs(shrunk.astype(int) - whole.astype(int)).max() <= 2


def test_public_mode_refuses_past_its_pixel_cap_before_decoding(monkeypatch):
    monkeypatch.setenv("CIFARNETS_PUBLIC", "1")
    cap = public_limits().megapixels * 1e6
    assert cap < 7999 * 7999
    with pytest.raises(ImageError, match=r"7999x7999 = 63,984,001 pixels, over the 16,000,000 pixel limit"):
        decode_image(flat_png(7999), "bomb.png")
    monkeypatch.setenv("CIFARNETS_MAX_MEGAPIXELS", "70")
    assert decode_image(flat_png(7999), "bomb.png").size == (1142, 1142)


def test_a_camera_jpeg_is_capped_as_decoded_not_as_stored(monkeypatch):
    """A 48-megapixel phone photo is decoded at a quarter of its size: public mode's cap of 16 takes it."""
    monkeypatch.setenv("CIFARNETS_PUBLIC", "1")
    buffer = io.BytesIO()
    Image.new("RGB", (8000, 6000), (10, 120, 200)).save(buffer, "JPEG", quality=50)
    assert decode_image(buffer.getvalue(), "phone.jpg").size == (2000, 1500)


def test_large_decodes_take_turns_and_small_ones_do_not_wait(monkeypatch):
    """Two visitors' large pictures are decoded one after the other, never at once."""
    inside, most, lock = [0], [0], threading.Lock()
    real_load = ImageFile.ImageFile.load

    def slow_load(self):
        if self.size[0] * self.size[1] > images.LARGE:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.3)
            with lock:
                inside[0] -= 1
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", slow_load)
    raw = flat_png(2500, "RGB")
    threads = [threading.Thread(target=decode_image, args=(raw, f"{i}.png")) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
