"""The real-photo check and the ways a photo becomes 32x32: the bundle reader, the pictures it makes,
the preparations, the zoom-out augmentation, and `python -m cifarnets photos` on a small set."""

import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cifarnets.data import images, loader
from cifarnets.perf import photos


def qt_bundle(files: dict[str, bytes], compress: set[str]) -> bytes:
    """A Qt resource bundle (format 2) holding `files` under one folder each, as rcc writes them."""
    names, name_offsets = b"", {}
    for part in sorted({p for path in files for p in path.split("/")}):
        name_offsets[part] = len(names)
        names += struct.pack(">HI", len(part), 0) + part.encode("utf-16-be")
    blobs, data_offsets = b"", {}
    for path, raw in files.items():
        stored = struct.pack(">I", len(raw)) + zlib.compress(raw) if path in compress else raw
        data_offsets[path] = len(blobs)
        blobs += struct.pack(">I", len(stored)) + stored
    # nodes: 0 the root, 1 the folder, then the files; 22 bytes each in format 2
    folder = files and next(iter(files)).split("/")[0]
    leaves = list(files)
    node = lambda name, flags, a, b: struct.pack(">IHII", name, flags, a, b) + bytes(8)
    tree = node(0, 2, 1, 1) + node(name_offsets[folder], 2, len(leaves), 2)
    for path in leaves:
        tree += struct.pack(">IHHHI", name_offsets[path.split("/")[1]], 1 if path in compress else 0, 0, 0,
                            data_offsets[path]) + bytes(8)
    header = 24
    return (b"qres" + struct.pack(">IIIII", 2, header, header + len(tree), header + len(tree) + len(blobs), 0)
            + tree + blobs + names)


def test_files_come_out_of_a_qt_bundle_compressed_or_not(tmp_path):
    files = {"res/a.webp": b"plain bytes", "res/b.png": b"squeezed " * 50}
    bundle = tmp_path / "x.rcc"
    bundle.write_bytes(qt_bundle(files, compress={"res/b.png"}))
    assert photos.read_rcc(bundle, "res/a.webp") == files["res/a.webp"]
    assert photos.read_rcc(bundle, "res/b.png") == files["res/b.png"]
    with pytest.raises(FileNotFoundError, match="res/c.png"):
        photos.read_rcc(bundle, "res/c.png")
    (tmp_path / "y.rcc").write_bytes(b"PK\x03\x04 not a bundle")
    with pytest.raises(ValueError, match="not a Qt resource bundle"):
        photos.read_rcc(tmp_path / "y.rcc", "res/a.webp")


def test_a_cut_out_is_centred_in_its_scene_at_the_framing_asked():
    cutout = Image.new("RGBA", (100, 60), (0, 0, 0, 0))
    cutout.paste((255, 0, 0, 255), (20, 10, 80, 40))  # a 60x30 red object inside transparent margins
    scene = Image.new("RGB", (480, 360), (0, 128, 0))
    picture = np.asarray(photos.compose(cutout, scene, 0.5))
    red = np.argwhere((picture[..., 0] > 200) & (picture[..., 1] < 50))
    (top, left), (bottom, right) = red.min(0), red.max(0)
    assert right - left + 1 == pytest.approx(0.5 * 480 * 0.5 * 2, abs=2)  # 60 wide -> half of 480
    assert (top + bottom) / 2 == pytest.approx(180, abs=2) and (left + right) / 2 == pytest.approx(240, abs=2)
    assert (picture[0, 0] == (0, 128, 0)).all()  # the scene around it is untouched


def test_every_preparation_gives_32x32_and_leaves_cifar_images_alone():
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    for name in images.PREPARATIONS:
        a = images.to_array(photo, preparation=name)
        assert a.shape == (32, 32, 3) and a.dtype == np.uint8, name
    tiny = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for name in images.PREPARATIONS:
        assert (images.to_array(Image.fromarray(tiny), preparation=name) == tiny).all(), name
    assert images.PREPARATION in images.PREPARATIONS


def test_crop_takes_the_centre_and_pad_keeps_the_whole_picture():
    # a white picture 3 wide by 1 high with a black centre square: crop 100% sees only black;
    # pad sees white on the sides (top and bottom padded with the mean colour); crop 50% is all black too
    picture = np.full((100, 300, 3), 255, np.uint8)
    picture[:, 100:200] = 0
    img = Image.fromarray(picture)
    assert images.to_array(img, preparation="crop, box").max() == 0
    padded = images.to_array(img, preparation="pad, lanczos")
    assert padded[16, 1].min() > 200 and padded[16, 16].max() < 30


def test_zoom_out_shrinks_the_image_and_reflects_its_edges():
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    x[:, :, :, 16:] = 200  # left half dark, right half bright
    same, small = loader.zoom_out(x, torch.tensor([1.0, 0.5]))
    assert (same == x[0]).all()
    assert small[0, 16, 8:15].max() < 20 and small[0, 16, 17:24].min() > 180  # the two halves, now narrower
    # beyond the shrunk image the edges are reflected: the bright right edge next to the image's right side
    assert small[0, 16, 25:].float().mean() > 100 and small[0, 16, :7].float().mean() < 100


def test_photos_measures_each_preparation_and_view_count_on_a_set(tmp_path):
    rng = np.random.default_rng(1)
    for label in ("cat", "ship"):
        (tmp_path / label).mkdir()
        for name in ("photo", "cutout-50%"):
            Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(tmp_path / label / f"{name}.png")
    out = subprocess.run([sys.executable, "-m", "cifarnets", "photos", str(tmp_path), "--views", "1", "2", "--json"],
                         capture_output=True, text=True, check=True).stdout
    results = json.loads(out)
    assert set(results) == {"cnn", "resnet", "densenet", "se_resnet"}
    for by_preparation in results.values():
        assert set(by_preparation) == set(images.PREPARATIONS)
        for by_views in by_preparation.values():
            assert set(by_views) == {"1", "2"}
            for r in by_views.values():
                assert r["n"] == 4 and 0 <= r["correct"] <= 4 and 0 <= r["accuracy"] <= 1
                assert set(r["by_framing"]) == {"photo", "50%"}


def test_photos_says_how_to_make_the_set_when_there_is_none(tmp_path):
    run = subprocess.run([sys.executable, "-m", "cifarnets", "photos", str(tmp_path / "none")],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "--build" in run.stderr and "Traceback" not in run.stderr


def test_a_small_picture_is_taken_whole_not_blown_up_to_be_cropped():
    rng = np.random.default_rng(2)
    small = Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))
    whole = images.PREPARATIONS["crop, lanczos"](small, 32)
    assert (np.asarray(images.to_array(small)) == np.asarray(whole)).all()  # under 32 across: the whole square
    photo = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    assert not (images.to_array(photo) == np.asarray(images.PREPARATIONS["crop, lanczos"](photo, 32))).all()
