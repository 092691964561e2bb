"""The Stress test page under AppTest: one image under corruptions and attacks, and the shipped measurements."""

from __future__ import annotations

import shutil

import pytest
from helpers.app import APP, LABELS, PAGES, image_bytes, make_checkpoints, texts
from streamlit.testing.v1 import AppTest

from cifarnets.paths import project_root
from cifarnets.stress import stressfile

TIMEOUT = 120  # a busy 2-core machine: the first run loads torch and four networks


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Freshly built networks beside the shipped stress.json: the page must say they are not the ones measured."""
    root = make_checkpoints(tmp_path_factory.mktemp("checkpoints"))
    shutil.copy(project_root() / "checkpoints" / stressfile.STRESS_FILE, root / stressfile.STRESS_FILE)
    return root


@pytest.fixture
def app_env(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(folder))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")


def open_stress(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.switch_page(PAGES["Stress test"]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_shows_answers_attacks_and_the_shipped_measurements(app_env):
    at = open_stress()
    text = texts(at)
    for name in LABELS:
        assert f"**{name}**" in text
        assert f"{name} in use is not the checkpoint these numbers were measured on" in text
    record = stressfile.read(project_root() / "checkpoints")
    assert f"Measured on {record['images']:,} of the" in text and "frost" in text
    assert ("Transfer: a perturbation made against one network" in text) == ("transfer" in record)
    at.slider(key="severity").set_value(5).run()
    at.button(key="search").click().run()
    assert not at.exception
    assert sum("ε = **" in m.value or "holds up to" in m.value for m in at.markdown) == len(LABELS)


def test_link_with_values_that_are_not_options_says_so(app_env):
    at = open_stress({"corruption": "frost", "eps": "99", "colour": "red"})
    text = texts(at)
    assert "the corruption “frost”, which is not here" in text
    assert "the budget “99”" in text and "“colour” is not one this page has" in text


def test_a_broken_upload_is_one_line_and_nothing_else_breaks(app_env):
    at = open_stress()
    at.file_uploader(key="stress_upload").set_value(("broken.png", b"\x89PNG not really", "image/png")).run()
    assert not at.exception and len(at.error) == 1 and "broken.png" in at.error[0].value
    assert "Measured on" in texts(at)


def test_the_example_box_is_greyed_out_while_an_upload_is_in_use(app_env):
    at = open_stress()
    assert not at.selectbox(key="image").disabled
    at.file_uploader(key="stress_upload").set_value(("mine.png", image_bytes(), "image/png")).run()
    assert not at.exception and at.selectbox(key="image").disabled
