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


# ---------------------------------------------------------------- 8. a server path in a download

def test_a_runs_download_names_its_data_set_never_a_server_path(tiny_folder, tmp_path):
    """A run's zip says which data set it learnt from by name and hash; where the server keeps it, never."""
    import zipfile

    from cifarnets.data import sources
    from cifarnets.store.export import checkpoint_zip
    from cifarnets.training import recipes
    from cifarnets.training.fit import fit

    secret = tmp_path / "srv-secret-place"
    tiny_folder.rename(secret)
    data = sources.load(str(secret))
    fit("cnn", recipes.get("modern", "cnn", epochs=1, batch_size=16), data, tmp_path / "run", device="cpu")
    with zipfile.ZipFile(io.BytesIO(checkpoint_zip(tmp_path / "run"))) as z:
        texts = {name: z.read(name).decode("utf-8", "replace") for name in z.namelist()}
    assert '"source": "srv-secret-place"' in texts["run/config.json"] and data.fingerprint in texts["run/config.json"]
    leaked = [name for name, text in texts.items() if str(tmp_path) in text]
    assert not leaked, leaked


# ---------------------------------------------------------------- 2 and 3. caps before the bytes, on every page

@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    from helpers.app import make_checkpoints

    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture
def public_app(tiny_checkpoints, tmp_path, monkeypatch):
    """A page of the app under AppTest, in public mode with the default caps (10 MB, 20 images)."""
    from helpers.app import APP, PAGES
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CIFARNETS_PUBLIC", "1")
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(tiny_checkpoints))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")

    def open_page(name: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=120).run()
        at.switch_page(PAGES[name]).run()
        assert not at.exception, [e.value for e in at.exception]
        return at
    return open_page


def test_within_caps_judges_sizes_alone_and_refuses_past_the_count():
    from types import SimpleNamespace

    from cifarnets.paths import PublicLimits
    from cifarnets.ui.pictures import within_caps

    def unread(name, size):  # a file whose bytes must not be touched
        return SimpleNamespace(name=name, size=size, getvalue=lambda: pytest.fail("read"))

    limits = PublicLimits(upload_mb=1, images=3)
    files = [unread(f"{i}.png", 1000) for i in range(2)] + [unread("big.png", 2**20 + 1)]
    kept, refused = within_caps(files, limits)
    assert [f.name for f in kept] == ["0.png", "1.png"] and refused == [
        "big.png: 1.0 MB, over this demo's limit of 1 MB per image"]
    kept, refused = within_caps(files + [unread("3.png", 10)], limits)
    assert kept == [] and refused == ["This demo takes at most 3 images at once, and 4 came: none was read. "
                                      "Choose fewer."]


def test_more_uploads_than_the_cap_are_refused_unread_and_the_uploader_empties(public_app):
    at = public_app("Classify")
    at.file_uploader(key="uploads").set_value([(f"{i}.png", b"\x89PNG" + bytes(i), "image/png")
                                               for i in range(21)]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == ["This demo takes at most 20 images at once, and 21 came: none was read. "
                                           "Choose fewer."]
    assert at.file_uploader(key="uploads__1").value in (None, [])  # a fresh, empty uploader


@pytest.mark.parametrize("page,key", [("Stress test", "stress_upload"), ("Classify", "uploads")])
def test_every_page_refuses_a_file_over_the_public_cap_before_decoding_it(public_app, page, key):
    at = public_app(page)
    big = b"\x89PNG\r\n\x1a\n" + bytes(11 * 2**20)
    at.file_uploader(key=key).set_value(("big.png", big, "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == ["big.png: 11.5 MB, over this demo's limit of 10 MB per image"]
