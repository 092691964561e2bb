"""The real-photo check and the ways a photo becomes 32x32: the bundle reader, the pictures it makes,
the preparations, the zoom-out augmentation, and `python -m cifarnets photos` on a small set."""

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from cifarnets.data import images, loader
from cifarnets.errors import UsageError
from cifarnets.photos import bootstrap, packageset
from cifarnets.photos import check as photos


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
    assert packageset.read_rcc(bundle, "res/a.webp") == files["res/a.webp"]
    assert packageset.read_rcc(bundle, "res/b.png") == files["res/b.png"]
    with pytest.raises(FileNotFoundError, match="res/c.png"):
        packageset.read_rcc(bundle, "res/c.png")
    (tmp_path / "y.rcc").write_bytes(b"PK\x03\x04 not a bundle")
    with pytest.raises(ValueError, match="not a Qt resource bundle"):
        packageset.read_rcc(tmp_path / "y.rcc", "res/a.webp")


def test_a_cut_out_is_centred_in_its_scene_at_the_framing_asked():
    cutout = Image.new("RGBA", (100, 60), (0, 0, 0, 0))
    cutout.paste((255, 0, 0, 255), (20, 10, 80, 40))  # a 60x30 red object inside transparent margins
    scene = Image.new("RGB", (480, 360), (0, 128, 0))
    picture = np.asarray(packageset.compose(cutout, scene, 0.5))
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


def test_the_photo_like_augmentations_do_what_they_say():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8))
    ones = torch.ones(4)
    centre = torch.full((4, 2), 0.5)
    assert torch.allclose(loader.resized_crop(x, ones, ones, centre), x.float(), atol=1e-3)  # the whole image
    # a quarter of the area at the top-left corner, on a ramp 8 brighter a column: columns 0 to 16, enlarged
    ramp = (torch.arange(32) * 8).expand(4, 3, 32, 32).to(torch.uint8)
    corner = loader.resized_crop(ramp, ones / 4, ones, torch.zeros(4, 2))
    assert corner.max() <= 16 * 8 and float(corner.mean()) == pytest.approx(float(ramp[..., :16].float().mean()), abs=4)
    assert float(corner[..., 1:].diff(dim=-1).mean()) == pytest.approx(4, abs=0.2)  # half the slope: enlarged twice
    assert torch.equal(loader.down_up(x, torch.zeros(4, dtype=torch.bool), 20), x.float())
    soft = loader.down_up(x, torch.tensor([True, False, True, False]), 16)
    assert torch.equal(soft[1], x[1].float())
    assert soft[0].diff(dim=-1).abs().mean() < x[0].float().diff(dim=-1).abs().mean() / 2  # smoother
    assert torch.allclose(loader.colour_jitter(x, torch.ones(4, 3)), x.float(), atol=1e-3)
    grey = loader.colour_jitter(x, torch.tensor([[1.0, 1.0, 0.0]] * 4))  # no saturation: every channel the same
    assert torch.allclose(grey[:, 0], grey[:, 1], atol=1e-3) and torch.allclose(grey[:, 1], grey[:, 2], atol=1e-3)
    darker = loader.colour_jitter(x, torch.tensor([[0.5, 1.0, 1.0]] * 4))
    assert float(darker.mean()) == pytest.approx(float(x.float().mean()) / 2, rel=0.01)


def test_augmix_edits_every_image_the_same_way_for_the_same_seed():
    x = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (40, 3, 32, 32), dtype=np.uint8))
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    mixed = loader.aug_mix(x, 3, seed=7)
    assert torch.equal(torch.rand(3), before)  # the global generator the training step draws from is left alone
    assert mixed.dtype == torch.uint8 and mixed.shape == x.shape
    assert torch.equal(mixed, loader.aug_mix(x, 3, seed=7))  # a resumed run draws the same edits
    assert not torch.equal(mixed, loader.aug_mix(x, 3, seed=8))
    changed = (mixed.float() - x.float()).abs().flatten(1).mean(1)
    assert (changed > 0).all()  # each image blended with its edits, groups of 16 included


def test_a_recipe_with_augmix_trains_through_the_loader():
    from cifarnets.data.sources import Split
    from cifarnets.training import recipes

    recipe = recipes.get("fast", "cnn", augmix=3, batch_size=8)
    split = Split(torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8), torch.arange(32) % 10)
    plain = recipes.get("fast", "cnn", batch_size=8)
    a = [xb for xb, _ in loader.DeviceLoader.for_recipe(recipe, split, "cpu").batches(epoch=1)]
    b = [xb for xb, _ in loader.DeviceLoader.for_recipe(plain, split, "cpu").batches(epoch=1)]
    assert len(a) == len(b) == 4 and all(not torch.equal(p, q) for p, q in zip(a, b, strict=True))
    with pytest.raises(UsageError, match="AugMix"):
        recipes.get("fast", "cnn", augmix=11)


def test_photos_measures_real_photos_and_composites_apart(tmp_path):
    rng = np.random.default_rng(1)
    for label in ("cat", "ship"):
        (tmp_path / label).mkdir()
        for name in ("photo.jpg", "cutout-50%.png"):
            Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(tmp_path / label / name)
    (tmp_path / "cat" / "notes.txt").write_text("not a picture")  # skipped, not an error
    out = subprocess.run([sys.executable, "-m", "cifarnets", "photos", str(tmp_path), "--views", "1", "2", "--json",
                          "--preparations", "crop, lanczos", images.PREPARATION],
                         capture_output=True, text=True, check=True).stdout
    results = json.loads(out)
    assert results["pictures"]["composite"] == [True, False, True, False]  # cat/cutout-50%.png sorts before photo.jpg
    for part in ("real", "composites"):
        assert set(results[part]) == {"cnn", "resnet", "densenet", "se_resnet", photos.MEAN}
        for by_preparation in results[part].values():
            assert set(by_preparation) == {"crop, lanczos", images.PREPARATION}
            for by_views in by_preparation.values():
                assert set(by_views) == {"1", "2"}
                for r in by_views.values():
                    assert r["n"] == 2 and 0 <= r["correct"] <= 2  # the mean row: shares of the networks right
                    assert r["interval"][0] <= r["accuracy"] <= r["interval"][1]


def test_photos_reads_its_folders_from_the_setting_or_the_development_set_and_says_what_to_do_without(
        tmp_path, monkeypatch):
    from cifarnets import paths

    env = {k: v for k, v in os.environ.items() if k != "CIFARNETS_PHOTOS"}
    run = subprocess.run([sys.executable, "-m", "cifarnets", "photos"], capture_output=True, text=True,
                         env=env | {"CIFARNETS_PHOTOS": str(tmp_path / "none")})
    assert run.returncode == 1 and "none is not a folder" in run.stderr and "Traceback" not in run.stderr
    # several folders, separated as PATH is
    monkeypatch.setenv("CIFARNETS_PHOTOS", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert paths.photos_folders() == [tmp_path / "a", tmp_path / "b"]
    # unset: the development set beside the project, those of its folders that are there
    monkeypatch.delenv("CIFARNETS_PHOTOS")
    monkeypatch.setattr(paths, "project_root", lambda: tmp_path / "project")
    assert paths.photos_folders() == []
    (tmp_path / "shared" / "data" / "photos-more").mkdir(parents=True)
    assert paths.photos_folders() == [tmp_path / "shared" / "data" / "photos-more"]
    (tmp_path / "shared" / "data" / "photos-more").rmdir()
    with pytest.raises(UsageError, match="CIFARNETS_PHOTOS") as said:
        photos.run(photos_args([]))
    assert "\n" not in str(said.value)  # one line


def photos_args(folders: list[Path]):
    import argparse

    parser = argparse.ArgumentParser()
    photos.add_parser(parser.add_subparsers())
    return parser.parse_args(["photos", *map(str, folders)])


def test_photos_reports_per_class_and_per_source(tmp_path):
    """A source is the folder, and within it what a file's name starts with (photos-more's <source>__<name>)."""
    from cifarnets.answering import VIEWS

    prep = images.PREPARATION
    names = ["photos-real/cat/a.jpg", "photos-more/cat/c101__b.jpg", "photos-more/ship/c101__c.jpg",
             "photos-more/ship/pacs__d.jpg"]
    assert [photos.source(n) for n in names] == ["photos-real", "photos-more: c101", "photos-more: c101",
                                                 "photos-more: pacs"]
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    measured = {"names": names, "labels": [3, 3, 8, 8], "classes": classes, "composite": [False] * 4,
                "right": {"cnn": {prep: {VIEWS: [1, 0, 1, 1]}}, "resnet": {prep: {VIEWS: [0, 0, 1, 0]}}}}
    per_class = photos.by_group(measured, "cnn", "class")
    assert per_class == {"cat": {"accuracy": 0.5, "correct": 1, "n": 2, "classes": 1},
                         "ship": {"accuracy": 1.0, "correct": 2, "n": 2, "classes": 1}}
    per_source = photos.by_group(measured, "cnn", "source")
    assert per_source["photos-more"] == {"accuracy": 0.5, "correct": 2, "n": 3, "classes": 2}  # cat 0/1, ship 2/2
    assert per_source["photos-more: c101"]["accuracy"] == 0.5 and per_source["photos-real"]["n"] == 1
    assert photos.by_group(measured, photos.MEAN, "class")["ship"]["accuracy"] == 0.75


def test_the_mean_row_counts_each_picture_as_the_share_of_networks_right():
    from cifarnets.answering import VIEWS

    prep = images.PREPARATION
    measured = {"names": ["a", "b", "c", "d"], "labels": [0, 0, 1, 1], "composite": [False] * 4,
                "right": {"cnn": {prep: {VIEWS: [1, 0, 1, 1]}, "crop, lanczos": {VIEWS: [0, 0, 1, 1]}},
                          "resnet": {prep: {VIEWS: [1, 1, 0, 1]}, "crop, lanczos": {VIEWS: [1, 0, 0, 1]}}}}
    mean = photos.summary(measured)[photos.MEAN]
    # per picture: 1, 0.5, 0.5, 1 -> class 0: 0.75, class 1: 0.75; the other way 0.5, 0, 0.5, 1 -> 0.25, 0.75
    assert mean[prep][VIEWS]["accuracy"] == pytest.approx(0.75) and mean[prep][VIEWS]["correct"] == 3
    assert mean["crop, lanczos"][VIEWS]["accuracy"] == pytest.approx(0.5)
    lo, hi = mean["crop, lanczos"][VIEWS]["against_shipped"]
    assert lo <= -0.25 <= hi <= 0


def test_balanced_accuracy_counts_each_class_equally():
    # class 0: 2 of 3 right, class 1: 1 of 1 -> (2/3 + 1) / 2, where the raw share is 3/4
    assert bootstrap.balanced_accuracy([1, 1, 0, 1], [0, 0, 0, 1]) == pytest.approx(5 / 6)


def test_the_paired_interval_on_a_case_with_a_known_answer():
    labels = np.array([0, 0, 1, 1, 1])
    same = np.array([1, 0, 1, 1, 0])
    assert bootstrap.paired_interval(same, same, labels) == (0.0, 0.0)  # the same answers: no difference at all
    # a is right on every picture, b wrong on every one: the difference is 1 in every resample
    assert bootstrap.paired_interval(np.ones(5), np.zeros(5), labels) == (1.0, 1.0)
    # one class of two pictures, b wrong on one of them: a resample holds that picture 0, 1 or 2 times
    # (chances 1/4, 1/2, 1/4), so the difference is 0, 0.5 or 1, and the 90% interval runs from 0 to 1
    lo, hi = bootstrap.paired_interval([1, 1], [1, 0], [0, 0])
    assert (lo, hi) == (0.0, 1.0)
    diffs = bootstrap._resampled(np.array([0.0, 1.0]), np.array([0, 0]), 20_000, 0)
    assert np.mean(diffs == 0.5) == pytest.approx(0.5, abs=0.02) and np.mean(diffs) == pytest.approx(0.5, abs=0.02)
    # and the interval of one accuracy holds it: 3 of 4 right in one class
    lo, hi = bootstrap.interval([1, 1, 1, 0], [0, 0, 0, 0])
    assert lo <= 0.75 <= hi and lo >= 0.25 and hi == 1.0


def test_a_small_picture_is_taken_whole_not_blown_up_to_be_cropped():
    rng = np.random.default_rng(2)
    small = Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))
    whole = images.PREPARATIONS["crop, lanczos"](small, 32)
    closer = images.PREPARATIONS["crop 80%, lanczos"]
    assert (np.asarray(closer(small, 32)) == np.asarray(whole)).all()  # under 32 across: the whole square
    photo = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    assert not (np.asarray(closer(photo, 32)) == np.asarray(images.PREPARATIONS["crop, lanczos"](photo, 32))).all()


def test_fine_detail_counts_the_high_half_of_the_spectrum():
    checker = (np.indices((32, 32)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, -1)
    stripes = np.tile((np.sin(np.arange(32) * 2 * np.pi / 16) * 100 + 128).astype(np.uint8), (32, 1))
    flat = np.full((32, 32, 3), 90, np.uint8)
    share = photos.fine_detail(np.stack([checker, stripes[..., None].repeat(3, -1), flat]))
    assert share[0] == pytest.approx(1.0) and share[1] == pytest.approx(0.0, abs=1e-4)  # 1/16 of a cycle a pixel
    assert share[2] == 0.0  # no variation at all: nothing to share, and no division by zero


def test_the_softened_preparation_blurs_only_what_it_shrank():
    rng = np.random.default_rng(5)
    photo = Image.open(Path(images.__file__).parents[1] / "examples" / "photo-cat.jpg").convert("RGB")
    sharp = np.asarray(images.PREPARATIONS["crop, lanczos"](photo, 32))
    soft = np.asarray(images.PREPARATIONS["crop, lanczos, softened"](photo, 32))
    assert photos.fine_detail(soft[None])[0] < 0.8 * photos.fine_detail(sharp[None])[0]
    assert abs(float(soft.mean()) - float(sharp.mean())) < 1  # a blur, not a change of brightness
    small = Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))  # enlarged, not shrunk: left alone
    assert (np.asarray(images.PREPARATIONS["crop, lanczos, softened"](small, 32))
            == np.asarray(images.PREPARATIONS["crop, lanczos"](small, 32))).all()
    cifar = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))  # CIFAR-10's own size: taken whole
    assert (images.to_array(cifar) == np.asarray(cifar)).all()


def test_the_app_predict_and_the_loader_prepare_a_photo_identically(tmp_path, monkeypatch):
    from cifarnets import predict
    from cifarnets.data import sources

    rng = np.random.default_rng(4)
    photo = Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)).filter(ImageFilter.SMOOTH)
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            (tmp_path / "data" / split / label).mkdir(parents=True)
            photo.save(tmp_path / "data" / split / label / "photo.png")
    (tmp_path / "photo.png").write_bytes((tmp_path / "data" / "test" / "cat" / "photo.png").read_bytes())
    shipped = np.asarray(images.PREPARATIONS[images.PREPARATION](photo, 32))
    app = predict.prepare((tmp_path / "photo.png").read_bytes(), "photo.png").pixels  # Classify's path
    seen = []  # predict's path, where it reads files: the pixels it batches for the networks
    monkeypatch.setattr(predict, "batch", lambda pixels: seen.extend(pixels) or torch.zeros(len(pixels), 3, 32, 32))
    monkeypatch.setattr(predict, "answers", lambda entries, x, small=None: {})
    predict.predict_files([str(tmp_path / "photo.png")], {})
    loaded = sources.load(tmp_path / "data", verbose=False).test.x[0].permute(1, 2, 0).numpy()
    assert (app == shipped).all() and (seen[0] == shipped).all() and (loaded == shipped).all()
