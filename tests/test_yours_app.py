"""Your network in the app, under AppTest: added on Classify, it answers as a fifth column there and on the Stress
test, shows on Architecture, and goes with one click; a bad file is refused with one line and nothing is lost."""

from __future__ import annotations

import time

import pytest
from helpers.app import APP, LABELS, PAGES, image_bytes, make_checkpoints, open_tab, texts
from streamlit.testing.v1 import AppTest
from test_yours import raw, tiny_graph

from cifarnets.store.export import checkpoint_zip

TIMEOUT = 90


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture
def app_env(shipped, tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(shipped))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")


def classify_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page(PAGES["Classify"]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def add(at: AppTest, name: str, filename: str, data: bytes, way: str = "onnx") -> AppTest:
    if way == "zip":
        at.segmented_control(key="your_way").set_value("Checkpoint zip").run()
    at.text_input(key="your_name").input(name)
    at.file_uploader(key=f"your_{way}").set_value([(filename, data, "application/octet-stream")]).run()
    at.button(key="your_add").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_an_onnx_network_is_a_fifth_column_on_classify_and_goes_in_one_click(app_env):
    at = add(classify_page(), "tiny net", "tiny.onnx", raw(tiny_graph()))
    at.file_uploader(key="uploads").set_value([("red.png", image_bytes("PNG"), "image/png")]).run()
    assert not at.exception, [e.value for e in at.exception]
    text = texts(at)
    for name in (*LABELS, "tiny net"):
        assert f"**{name}**" in text
    assert list(at.dataframe[0].value.columns)[:6] == ["image", *LABELS, "tiny net"]
    assert len(at.get("vega_lite_chart")) == 5  # a top-5 chart for each of the five
    assert "tiny net: not calibrated for it" in text and "python -m" not in text.split("tiny net:")[1][:300]
    at.switch_page(PAGES["Architecture"]).run()  # converted to PyTorch: its layers and MACs are traced
    assert not at.exception, [e.value for e in at.exception]
    assert "Layers, traced on one 32x32 image" in texts(at) and "multiply-accumulates" in texts(at)
    assert "drawn from its ONNX graph" in texts(at) and "no block diagram" not in texts(at)
    at.switch_page(PAGES["Classify"]).run()
    at.button(key="your_remove").click().run()
    at.file_uploader(key="uploads").set_value([("red.png", image_bytes("PNG"), "image/png")]).run()
    assert "**tiny net**" not in texts(at) and list(at.dataframe[0].value.columns)[:5] == ["image", *LABELS]


def test_a_bad_file_is_refused_in_one_line_and_the_four_still_answer(app_env):
    at = add(classify_page(), "evil", "evil.onnx", raw(tiny_graph(op_domain="com.evil")))
    assert [e.value for e in at.error] == ["evil.onnx uses the custom operator domain 'com.evil': only standard "
                                           "ONNX operators are accepted"]
    at.file_uploader(key="uploads").set_value([("red.png", image_bytes("PNG"), "image/png")]).run()
    assert list(at.dataframe[0].value.columns)[:5] == ["image", *LABELS]


def test_a_checkpoint_zip_shows_on_the_stress_test_architecture_and_training_curves(app_env, shipped):
    at = add(classify_page(), "my run", "run.zip", checkpoint_zip(shipped / "resnet"), way="zip")
    assert "**my run**" in texts(at)
    at.switch_page(PAGES["Stress test"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "**my run**" in texts(at)
    at.switch_page(PAGES["Architecture"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "my run" in texts(at)
    at.switch_page(PAGES["Training curves"]).run()
    assert not at.exception, [e.value for e in at.exception]
    picks = at.selectbox(key="curves_csv_pick")
    assert "ResNet, your network my run" in picks.options


def test_a_network_only_onnxruntime_runs_joins_corruptions_and_says_why_there_are_no_attacks(app_env, monkeypatch):
    monkeypatch.setattr("cifarnets.yours.convert.to_torch",
                        lambda model, raw, expected: (None, "its graph does not convert to PyTorch (a test)"))
    at = add(classify_page(), "runtime only", "tiny.onnx", raw(tiny_graph()))
    at.switch_page(PAGES["Stress test"]).run()
    assert not at.exception, [e.value for e in at.exception]
    text = texts(at)
    assert "**runtime only**" in text  # among the corruptions' answers
    assert ("runtime only: no attacks, because it answers through onnxruntime, which gives no gradients: its graph "
            "does not convert to PyTorch (a test).") in text
    assert not [m for m in at.markdown if m.value.startswith("**runtime only**") and "→" in m.value]  # no attack
    at.switch_page(PAGES["Architecture"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "runtime only: no layer table, because it answers through onnxruntime" in texts(at)
    assert "148 parameters" in texts(at)  # the file's own weights: 4 x 3 x 3 x 3 + 10 x 4


def test_a_hub_id_is_a_fifth_column(app_env, shipped):
    at = classify_page()
    at.segmented_control(key="your_way").set_value("Hub repository").run()
    at.text_input(key="your_name").input("from the hub")
    at.text_input(key="your_repo").input(str(shipped / "densenet")).run()  # a local folder stands in for the Hub
    at.button(key="your_add").click().run()
    assert not at.exception, [e.value for e in at.exception]
    at.file_uploader(key="uploads").set_value([("red.png", image_bytes("PNG"), "image/png")]).run()
    assert list(at.dataframe[0].value.columns)[:6] == ["image", *LABELS, "from the hub"]


def test_its_test_accuracy_is_measured_in_the_background(app_env, tmp_path, monkeypatch):
    from conftest import make_image_folder

    from cifarnets import CIFAR10_CLASSES

    monkeypatch.setenv("CIFARNETS_DATA", str(make_image_folder(tmp_path / "data", CIFAR10_CLASSES, 1, 2)))
    at = add(classify_page(), "tiny net", "tiny.onnx", raw(tiny_graph()))
    at.button(key="your_measure").click().run()
    assert not at.exception, [e.value for e in at.exception]
    deadline = time.monotonic() + 60
    while "Test accuracy as Classify answers" not in texts(at) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert "on 20 test images" in texts(at)


def test_why_they_differ_shows_its_grad_cam_beside_the_four(app_env):
    at = add(classify_page(), "tiny net", "tiny.onnx", raw(tiny_graph()))
    at.switch_page(PAGES["Why they differ"]).run()
    open_tab(at, "What they look at")
    at.selectbox(key="why_cam_target").set_value("truck").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c for image in at.image for c in image.captions]
    assert sum("map for truck" in c for c in captions) == 5
    assert any(c.startswith("tiny net: says") and "its last convolution's" in c for c in captions)
