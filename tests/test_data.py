import shutil
import urllib.error

import numpy as np
import pytest
import torch
from conftest import TINY_CLASSES, make_image_folder, make_tar, make_zip
from PIL import Image

from cifarnets import CIFAR10_CLASSES
from cifarnets.data import loader, sources
from cifarnets.data.sources import DataError


def assert_tiny(ds, n_train=24, n_test=8):
    assert ds.classes == sorted(TINY_CLASSES)
    assert ds.train.x.shape == (n_train * 3, 3, 32, 32) and ds.train.x.dtype == torch.uint8
    assert ds.test.x.shape == (n_test * 3, 3, 32, 32)
    assert torch.bincount(ds.train.y).tolist() == [n_train] * 3


def test_folder_tar_and_zip_sources_agree(tiny_folder, tmp_path):
    from_folder = sources.load(tiny_folder)
    from_tar = sources.load(make_tar(tiny_folder, tmp_path / "tiny.tar.gz", top="wrapped"))
    from_zip = sources.load(make_zip(tiny_folder, tmp_path / "tiny.zip"))
    for ds in (from_folder, from_tar, from_zip):
        assert_tiny(ds)
        assert torch.equal(ds.train.x, from_folder.train.x) and torch.equal(ds.test.y, from_folder.test.y)


def test_folder_wrapped_in_one_top_folder(tmp_path):
    make_image_folder(tmp_path / "outer" / "inner")
    assert_tiny(sources.load(tmp_path / "outer"))


def test_cifar_folder_names_keep_cifar_order_and_other_sizes_are_resized(tmp_path):
    classes = list(reversed(CIFAR10_CLASSES))
    make_image_folder(tmp_path / "c", classes=classes, n_train=1, n_test=1, size=50)
    ds = sources.load(tmp_path / "c")
    assert ds.classes == list(CIFAR10_CLASSES)
    assert ds.train.x.shape == (10, 3, 32, 32)


def test_classes_are_listed_from_folder_names_in_the_order_loading_gives_them(tiny_folder, tmp_path):
    # The sidebar warns from this listing before a run decodes anything, so it must agree with load().
    assert sources.list_classes(tiny_folder) == sources.load(tiny_folder).classes == sorted(TINY_CLASSES)
    assert sources.list_classes(make_zip(tiny_folder, tmp_path / "tiny.zip")) == sorted(TINY_CLASSES)
    cifar = make_image_folder(tmp_path / "outer" / "c", classes=list(reversed(CIFAR10_CLASSES)), n_train=1, n_test=1)
    assert sources.list_classes(cifar.parent) == list(CIFAR10_CLASSES) == sources.load(cifar.parent).classes
    # Listing a .tar.gz means decompressing it whole: not known without loading.
    assert sources.list_classes(make_tar(tiny_folder, tmp_path / "tiny.tar.gz")) is None
    assert sources.list_classes(tmp_path / "nowhere") is None


def test_environment_variable_names_the_source(tiny_folder, monkeypatch):
    monkeypatch.setenv("CIFARNETS_DATA", str(tiny_folder))
    assert_tiny(sources.load())


def test_second_load_comes_from_the_cache(tiny_folder, monkeypatch):
    first = sources.load(tiny_folder)
    monkeypatch.setattr(sources, "_decode", lambda *a: pytest.fail("decoded again despite the cache"))
    second = sources.load(tiny_folder)
    assert torch.equal(first.train.x, second.train.x) and second.fingerprint == first.fingerprint


def test_a_changed_source_is_decoded_again(tiny_folder):
    first = sources.load(tiny_folder)
    Image.new("RGB", (32, 32), "red").save(tiny_folder / "train" / "circle" / "new.png")
    assert len(sources.load(tiny_folder).train) == len(first.train) + 1


@pytest.mark.parametrize("breakage, message", [
    ("empty_class", "holds no readable images"),
    ("missing_test", "no test/ split"),
    ("class_mismatch", "same class folders"),
    ("one_class", "at least 2 class folders"),
])
def test_bad_layouts_get_a_clear_message(tmp_path, breakage, message):
    root = make_image_folder(tmp_path / "d", n_train=2, n_test=2)
    if breakage == "empty_class":
        for f in (root / "train" / "square").iterdir():
            f.unlink()
    elif breakage == "missing_test":
        shutil.rmtree(root / "test")
    elif breakage == "class_mismatch":
        shutil.rmtree(root / "test" / "square")
    elif breakage == "one_class":
        for split in ("train", "test"):
            for cls in ("square", "stripes"):
                shutil.rmtree(root / split / cls)
    with pytest.raises(DataError, match=message):
        sources.load(root)


def test_empty_class_folder_inside_an_archive(tmp_path):
    root = make_image_folder(tmp_path / "d", n_train=2, n_test=2)
    for f in (root / "test" / "stripes").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="test/stripes holds no readable images"):
        sources.load(make_tar(root, tmp_path / "d.tar.gz"))


@pytest.mark.parametrize("name, content", [
    ("corrupt.tar.gz", b"\x1f\x8b\x08\x00 this is not really gzip" * 50),
    ("notes.zip", b"just some text, not a zip"),
])
def test_corrupt_archives_get_a_clear_message(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match="archive"):
        sources.load(path)


def test_truncated_archive_gets_a_clear_message(tiny_folder, tmp_path):
    whole = make_tar(tiny_folder, tmp_path / "t.tar.gz").read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="damaged archive"):
        sources.load(cut)


def test_unreadable_images_are_skipped_with_a_warning(tiny_folder, capsys):
    (tiny_folder / "train" / "circle" / "broken.png").write_bytes(b"not a png")
    ds = sources.load(tiny_folder)
    assert len(ds.train) == 72
    assert "skipped 1 unreadable image" in capsys.readouterr().err


def test_missing_path_and_offline_default_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="does not exist.*CIFARNETS_DATA"):
        sources.load(tmp_path / "nowhere")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.datasets.CIFAR10", offline)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"no CIFAR-10 data in \./data.*CIFARNETS_DATA.*download failed"):
        sources.load()


def test_batched_augmentation_matches_crop_and_flip_per_image():
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    offsets = torch.tensor([[0, 0], [8, 8], [3, 5], [4, 4], [7, 1]])
    flips = torch.tensor([False, True, True, False, True])
    out = loader.augment(x, offsets, flips)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(5):
        oy, ox = offsets[i].tolist()
        expected = padded[i, :, oy:oy + 32, ox:ox + 32]
        assert torch.equal(out[i], expected.flip(2) if flips[i] else expected)


def test_loader_order_is_repeatable_and_ranks_are_disjoint(tiny_folder):
    ds = sources.load(tiny_folder)
    whole = loader.DeviceLoader(ds.train, 8, "cpu", train=True)
    a = [y.tolist() for _, y in whole.batches(epoch=1, seed=3)]
    assert a == [y.tolist() for _, y in whole.batches(epoch=1, seed=3)]
    assert a != [y.tolist() for _, y in whole.batches(epoch=2, seed=3)]
    # Two ranks split every global batch of 8 into disjoint halves that together make the whole.
    ds.train.y = torch.arange(len(ds.train))  # label = index, to see which images each rank got
    parts = [[y.tolist() for _, y in loader.DeviceLoader(ds.train, 8, "cpu", train=True, rank=r, world=2)
              .batches(epoch=1, seed=3)] for r in (0, 1)]
    merged = [sorted(p0 + p1) for p0, p1 in zip(*parts, strict=True)]
    one_rank = loader.DeviceLoader(ds.train, 8, "cpu", train=True)
    full = [sorted(y.tolist()) for _, y in one_rank.batches(epoch=1, seed=3)]
    assert merged == full and all(not set(p0) & set(p1) for p0, p1 in zip(*parts, strict=True))


def test_batches_are_normalised_floats(tiny_folder):
    ds = sources.load(tiny_folder)
    xb, yb = next(loader.DeviceLoader(ds.test, 10, "cpu", train=False).batches())
    assert xb.dtype == torch.float32 and xb.shape == (10, 3, 32, 32) and yb.dtype == torch.int64
    assert float(xb.abs().max()) < 3.5 and np.isfinite(xb.numpy()).all()


def test_cutout_blanks_one_square_clipped_by_the_edges():
    x = torch.ones(3, 3, 32, 32)
    out = loader.cut_out(x, torch.tensor([[16, 16], [0, 0], [31, 5]]), 8)
    blank = out[:, 0] == 0
    assert torch.equal(blank[0], torch.zeros(32, 32, dtype=torch.bool).index_fill(0, torch.arange(12, 20), True)
                       & torch.zeros(32, 32, dtype=torch.bool).index_fill(1, torch.arange(12, 20), True))
    assert blank[1].sum() == 16 and blank[1, :4, :4].all()  # centred on the corner: a quarter of the square
    assert blank[2].sum() == 5 * 8 and blank[2, 27:, 1:9].all()
    assert (out[:, 1:] == 0).equal(out[:, :1].expand(3, 2, 32, 32) == 0)  # every channel alike


def test_cutout_is_drawn_only_for_training_and_only_when_asked(tiny_folder):
    ds = sources.load(tiny_folder)
    plain, cut = (loader.DeviceLoader(ds.train, 8, "cpu", train=True, augment=True, cutout=c) for c in (0, 8))
    (xp, yp), (xc, yc) = next(plain.batches(epoch=1)), next(cut.batches(epoch=1))
    assert torch.equal(yp, yc)  # the same order, crops and flips: cutout draws its squares after them
    changed = (xp != xc).any(1)
    assert changed.any() and torch.equal(xc[:, 0][changed], torch.zeros(int(changed.sum())))
    assert all(changed[i].sum() <= 64 for i in range(8))
    test = loader.DeviceLoader(ds.test, 8, "cpu", train=False, augment=True, cutout=8)
    plain_test = loader.DeviceLoader(ds.test, 8, "cpu", train=False)
    assert torch.equal(next(test.batches())[0], next(plain_test.batches())[0])
