"""Every page of the app under Streamlit's AppTest: with the four checkpoints, and with none at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from helpers.app import APP, LABELS, PAGES, image_bytes, make_checkpoints, texts
from streamlit.testing.v1 import AppTest

from cifarnets.diagram.architecture import overview
from cifarnets.models import EXTRA_KEYS, KEYS, spec

TIMEOUT = 60  # the first run of a session loads torch models; generous for a busy 2-core machine


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"), report_history=True)


@pytest.fixture
def with_checkpoints(shipped, tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(shipped))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")


@pytest.fixture
def without_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(tmp_path / "no-checkpoints"))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")


def open_page(name: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    if name:
        at.switch_page(PAGES[name]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sidebar_text(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("header", "caption", "markdown") for e in getattr(at.sidebar, kind))


# ---------------------------------------------------------------- Home

def test_home_shows_each_network_with_its_checkpoint(with_checkpoints):
    at = open_page()
    text = texts(at)
    for label in LABELS:
        assert label in text
    metrics = [m.value for m in at.metric]
    assert "62,006" in metrics and "176,840" in metrics  # parameters
    assert "50.0%" in metrics and "80.0%" in metrics  # the checkpoints' test accuracy
    assert "Device in use" in text and "cpu" in text
    assert not at.warning


def test_home_without_checkpoints_says_why_per_network(without_checkpoints):
    at = open_page()
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 4
    for key in KEYS:
        assert any(f"no-checkpoints/{key}" in w for w in warnings)
    assert "62,006" in [m.value for m in at.metric]


@pytest.mark.parametrize("page", [None, *PAGES])
def test_every_page_has_the_trainer_sidebar(without_checkpoints, page):
    at = open_page(page)
    text = sidebar_text(at)
    assert "Train a network" in text and "Runs" in text
    assert [o for o in at.sidebar.selectbox[0].options] == list(LABELS)


# ---------------------------------------------------------------- Architecture

def test_architecture_shows_diagrams_printouts_tables_and_chart(without_checkpoints):
    at = open_page("Architecture")
    networks = KEYS + EXTRA_KEYS
    assert [t.label for t in at.tabs] == [*LABELS, spec("resnet_plain").label, "The four side by side"]
    assert [c.value for c in at.code] == [overview(k)["printout"] for k in networks]
    assert len(at.dataframe) == len(networks)
    assert len(at.get("vega_lite_chart")) == 1  # the parameter comparison
    # a diagram per network, and the four again two by two, each at its own size (legible at 1400 px)
    assert len(at.get("graphviz_chart")) == len(networks) + len(KEYS)
    blocks = len(at.dataframe[1].value)
    at.segmented_control(key="level").set_value("every layer").run()
    assert not at.exception
    assert len(at.dataframe[1].value) > blocks  # the ResNet's blocks open up into layers
    assert set(at.dataframe[0].value.columns) == {"layer", "type", "output", "params"}


# ---------------------------------------------------------------- Training curves

def test_training_curves_with_shipped_and_report_histories(with_checkpoints):
    at = open_page("Training curves")
    assert len(at.get("vega_lite_chart")) == 2  # accuracy and loss
    summary_table = at.dataframe[0].value
    assert set(summary_table["source"]) == {"shipped (modern recipe)", "shipped (report recipe)"}
    assert not at.info
    at.segmented_control(key="curves_layout").set_value("side by side").run()
    assert not at.exception and len(at.get("vega_lite_chart")) == 2
    at.pills(key="curves_splits").set_value([]).run()
    assert "Nothing to draw" in texts(at)


def test_training_curves_without_checkpoints_says_so_per_network(without_checkpoints):
    at = open_page("Training curves")
    infos = [i.value for i in at.info]
    for label in LABELS:
        assert any(label in i for i in infos)
    assert not at.get("vega_lite_chart")
    assert "No runs yet" in texts(at)


# ---------------------------------------------------------------- Classify

def test_classify_uploads_side_by_side(with_checkpoints):
    at = open_page("Classify")
    at.file_uploader(key="uploads").set_value([
        ("red.png", image_bytes("PNG"), "image/png"),
        ("noise.jpg", image_bytes("JPEG", size=(300, 200), seed=1), "image/jpeg"),
        ("broken.png", b"\x89PNG\r\n\x1a\n not really", "image/png"),
    ]).run()
    assert not at.exception
    text = texts(at)
    for name in ("red.png", "noise.jpg", "broken.png"):
        assert name in text
    for label in LABELS:
        assert text.count(f"**{label}**") == 2  # a column per network on the two readable images
    assert "broken.png" in " ".join(e.value for e in at.error)  # the bad file says why...
    table = at.dataframe[0].value  # ...and the good ones are classified all the same
    assert list(table["image"]) == ["red.png", "noise.jpg"]
    assert list(table.columns) == ["image", *LABELS, "networks disagree", "all find it unfamiliar"]
    assert len(at.get("vega_lite_chart")) == 8  # a top-5 chart per network per image
    assert len(at.image) == 4  # each image, and the 32x32 input the networks see


@pytest.mark.parametrize("fmt,mime", [("WEBP", "image/webp"), ("BMP", "image/bmp"), ("GIF", "image/gif"),
                                      ("TIFF", "image/tiff")])
def test_classify_accepts_every_listed_format(with_checkpoints, fmt, mime):
    at = open_page("Classify")
    at.file_uploader(key="uploads").set_value((f"picture.{fmt.lower()}", image_bytes(fmt), mime)).run()
    assert not at.exception and not at.error
    assert list(at.dataframe[0].value["image"]) == [f"picture.{fmt.lower()}"]


def test_classify_same_name_twice_stays_two_images(with_checkpoints):
    at = open_page("Classify")
    at.file_uploader(key="uploads").set_value([("image.png", image_bytes(seed=1), "image/png"),
                                               ("image.png", image_bytes(seed=2), "image/png")]).run()
    assert list(at.dataframe[0].value["image"]) == ["image.png", "image.png (2)"]


def test_classify_bundled_examples_and_camera(with_checkpoints):
    at = open_page("Classify")
    examples = at.multiselect(key="examples")
    picked = examples.options[:2]
    examples.set_value([o for o in examples.options[:2]]).run()
    at.toggle(key="camera_on").set_value(True).run()
    at.camera_input(key="camera").set_value(("camera.jpg", image_bytes("JPEG", seed=3), "image/jpeg")).run()
    assert not at.exception
    names = list(at.dataframe[0].value["image"])
    assert len(names) == 3 and names[-1] == "camera.jpg"
    assert len(picked) == 2


def test_classify_without_checkpoints_still_shows_the_input(without_checkpoints):
    at = open_page("Classify")
    assert len(at.info) == 4 and at.warning  # one notice per network, and what to do
    at.file_uploader(key="uploads").set_value(("a.png", image_bytes(), "image/png")).run()
    assert not at.exception
    text = texts(at)
    assert "a.png" in text and text.count("not loaded") >= 4
    assert len(at.image) == 2 and not at.dataframe


def test_pandas_is_whole_before_any_page_runs():
    """Sessions run in threads; Altair reads pandas from sys.modules. `cifarnets.ui` must import it whole first,
    or a chart drawn while another session imports pandas fails (the load test found it)."""
    code = ("import sys; assert 'pandas' not in sys.modules; import cifarnets.ui; "
            "assert hasattr(sys.modules['pandas'], 'Timestamp')")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_the_served_app_watches_no_source_files():
    """Streamlit's watcher scans every imported module's file (about 2,400 with torch) on the server's event loop when
    a new session's first page ends: 2.8 s in which no session got an answer, once per visitor (docs/performance.md,
    Home's first load). The project's config turns it off; pagetime and the load tests serve with this config."""
    config = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"
