"""Hostile input through the app itself. The upload catalogue on the Classify page: every file of one
upload gets its predictions or its one-line reason, whatever else is in the upload. Broken checkpoints:
that network is shown unavailable with its reason, nothing is unpickled, and the others keep working."""

from __future__ import annotations

import mimetypes
import pickle

import pytest
from helpers.app import APP, LABELS, PAGES, make_checkpoints, texts
from helpers.hostile import Payload
from helpers.uploads import BAD, GOOD
from streamlit.testing.v1 import AppTest

from cifarnets.data import images

TIMEOUT = 300  # forty-odd images through four networks, 24 cards of charts, on a busy 2-core machine


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture
def classify_page(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(checkpoints))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page(PAGES["Classify"]).run()
    return at


def upload(at: AppTest, files: dict[str, bytes]) -> AppTest:
    at.file_uploader(key="uploads").set_value(
        [(name, raw, mimetypes.guess_type(name.lower())[0] or "application/octet-stream")
         for name, raw in files.items()]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_one_upload_of_every_hostile_file(classify_page):
    files = {name: make() for name, (make, _) in (GOOD | BAD).items()}
    at = upload(classify_page, files)
    errors = [str(e.value) for e in at.error]
    for name, (_, reason) in BAD.items():  # each refused file: exactly one line, naming it and saying why
        mine = [e for e in errors if e.startswith(name + " ")]
        assert len(mine) == 1 and reason in mine[0] and "\n" not in mine[0], (name, mine)
    assert len(errors) == len(BAD), errors
    table = at.dataframe[0].value  # every readable file is classified, in upload order, by all four
    assert list(table["image"]) == [n for n in files if n in GOOD]
    assert not (table[list(LABELS)] == "-").any().any()
    readable = len([n for n in files if n in GOOD])  # the timing counts what was classified, not what was refused
    assert f"{readable} images through 4 networks" in texts(at)
    assert "image(s)" not in texts(at)


def test_a_refused_file_alone_gets_no_timing_line(classify_page):
    name, (make, reason) = next(iter(BAD.items()))
    at = upload(classify_page, {name: make()})
    assert [str(e.value) for e in at.error][0].startswith(name + " ")
    assert " through " not in texts(at) and "networks in" not in texts(at)


def test_files_over_the_cap_are_refused_in_the_app_too(classify_page, monkeypatch):
    """The browser enforces server.maxUploadSize; the page checks again, for anything that gets past it."""
    monkeypatch.setattr(images, "MAX_BYTES", 1000)
    small, big = GOOD["IMAGE.PNG"][0](), GOOD["large.jpg"][0]()
    assert len(small) < 1000 < len(big)
    at = upload(classify_page, {"small.png": small, "big.jpg": big})
    assert [str(e.value) for e in at.error] == [f"big.jpg is {len(big) / 2**20:.1f} MB, over the 0 MB limit"]
    assert list(at.dataframe[0].value["image"]) == ["small.png"]


def test_a_pickle_upload_is_refused_without_running(classify_page, tmp_path):
    marker = tmp_path / "pwned"
    at = upload(classify_page, {"model.png": pickle.dumps(Payload(marker))})
    assert "a Python pickle, not an image" in at.error[0].value
    assert not marker.exists() and not at.dataframe


def test_a_bad_file_among_many_still_says_why(classify_page):
    """Past the first 24 images only the summary table lists them; a refused file's reason still shows."""
    files = {f"good-{i:02d}.png": GOOD["IMAGE.PNG"][0]() for i in range(30)}
    files["last.png"] = BAD["empty.png"][0]()
    at = upload(classify_page, files)
    assert [str(e.value) for e in at.error] == ["last.png is empty (0 bytes)"]
    assert len(at.dataframe[0].value) == 30


@pytest.mark.parametrize("breakage", ["truncated", "pickle"])
def test_a_broken_checkpoint_leaves_the_other_networks_working(tmp_path, monkeypatch, breakage):
    checkpoints = make_checkpoints(tmp_path / "checkpoints")
    weights = checkpoints / "resnet" / "model.safetensors"
    marker = tmp_path / "unpickled"
    if breakage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        weights.write_bytes(pickle.dumps(Payload(marker)))
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(checkpoints))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")
    home = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not home.exception
    warnings = [str(w.value) for w in home.warning]
    assert len(warnings) == 1 and "model.safetensors is not a readable safetensors file" in warnings[0], warnings
    assert len(home.metric) == 4 + 3  # parameters for all four, accuracy for the three that load

    home.switch_page(PAGES["Classify"]).run()
    at = upload(home, {"photo.png": GOOD["IMAGE.PNG"][0]()})
    assert any("ResNet" in str(i.value) and "not a readable safetensors file" in str(i.value) for i in at.info)
    table = at.dataframe[0].value
    assert list(table.columns) == ["image", "CNN", "DenseNet", "SE-ResNet", "networks disagree",
                                   "all find it unfamiliar"]
    assert all(table[n][0] != "-" for n in ("CNN", "DenseNet", "SE-ResNet"))
    assert not marker.exists(), "a checkpoint was unpickled"
