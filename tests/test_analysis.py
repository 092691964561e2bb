"""The analyze command on tiny models and data, and the Why they differ page under AppTest (the measurements
themselves: test_analysis_measures.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_folder
from helpers.app import APP, WHY_TABS, history, make_checkpoints, open_tab, texts
from PIL import Image
from streamlit.testing.v1 import AppTest

from cifarnets import CIFAR10_CLASSES, cli
from cifarnets.analysis import analysisfile, analyze, cost
from cifarnets.analysis.gradients import GradientProbe
from cifarnets.analysis.layers import weight_layers
from cifarnets.data import images, sources
from cifarnets.models import ALL_KEYS, KEYS, build
from cifarnets.store.fileio import write_json

PAGE = "app_pages/4_Why_they_differ.py"
pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- the analyze command


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Checkpoints of untrained networks, measured by the analyze command on a tiny CIFAR-shaped data set."""
    root = tmp_path_factory.mktemp("analysis")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFARNETS_CACHE", str(root / "cache"))
        dataset = sources.load(make_image_folder(root / "data", classes=CIFAR10_CLASSES, n_train=2, n_test=2))
        checkpoints = make_checkpoints(root / "checkpoints")
        # The trainer's gradient records, as a history holds them: the epoch chart draws these.
        probe = GradientProbe(dataset.train, "cpu")
        rows = history(2)
        rows[0]["grad_norms_init"] = rows[0]["grad_norms"] = rows[1]["grad_norms"] = probe(build("cnn"))
        write_json(checkpoints / "cnn" / "history.json", rows)
        mp.setattr(analyze, "LATENCY_BUDGET_S", 0.0)
        results = analyze.analyze(checkpoints, dataset, torch.device("cpu"), latency_batches=(1, 2),
                                  photos=analyze.photo_split([photo_folder(root / "photos")], list(CIFAR10_CLASSES)))
    return checkpoints, results


def photo_folder(folder: Path) -> Path:
    """Six full-size 'photos' of three classes (2, 3 and 1 a class), as the development set is laid out."""
    rng = np.random.default_rng(3)
    for c, n in (("cat", 2), ("ship", 3), ("truck", 1)):
        (folder / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / c / f"{i}.png")
    return folder


def test_analyze_writes_a_small_json_beside_each_checkpoint(measured):
    checkpoints, results = measured
    assert set(results) == set(ALL_KEYS)
    for key in ALL_KEYS:
        path = checkpoints / key / analysisfile.ANALYSIS_FILE
        assert path.stat().st_size < 200_000
        record = analysisfile.read(checkpoints / key)
        assert set(record["gradients"]["init"]) == {w.name for w in weight_layers(build(key))}
        assert record["cost"]["macs"] == sum(cost.macs(build(key)).values())
    assert "quality" not in results["resnet_plain"] and "trained" not in results["resnet_plain"]["gradients"]
    assert results["cnn"]["quality"]["n"] == 20 and len(results["cnn"]["quality"]["confusion"]) == 10
    assert "se_class_means" in results["se_resnet"]
    photos = results["cnn"]["quality_photos"]  # the real photos beside the test split, stored, not computed later
    assert photos["n"] == 6 and photos["per_class_n"] == [0, 0, 0, 2, 0, 0, 0, 0, 3, 1]
    assert photos["folders"] == ["photos"] and photos["preparation"] == images.PREPARATION
    present = [a for a, n in zip(photos["per_class"], photos["per_class_n"], strict=True) if n]
    assert photos["balanced"] == pytest.approx(sum(present) / 3, abs=1e-4)
    assert sum(map(sum, photos["confusion"])) == 6
    assert analysisfile.read(checkpoints / "cnn")["quality_photos"] == photos
    joint = analysisfile.read(checkpoints)
    assert joint["networks"].keys() == set(KEYS) and joint["disagreement"]
    assert (checkpoints / analysisfile.ANALYSIS_FILE).stat().st_size < 200_000
    assert analysisfile.png_pixels(joint["disagreement"][0]["png"]).shape == (32, 32, 3)


@pytest.mark.parametrize("damage", ['{"version": 1, "quality": {"per_class": "x"}}', "[1, 2]", "{not json",
                                    '{"version": 1, "gradients": {"init": {"conv1": "big"}}}'])
def test_a_damaged_analysis_file_counts_as_absent(tmp_path, damage):
    (tmp_path / analysisfile.ANALYSIS_FILE).write_text(damage)
    assert analysisfile.read(tmp_path) is None


def test_analyze_without_data_says_where_to_put_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)  # no download attempt, offline or not
    code = cli.main(["analyze", "--data", str(tmp_path / "nowhere"), "--checkpoints", str(tmp_path)])
    assert code == 1 and "does not exist" in capsys.readouterr().err


def open_page(monkeypatch, tmp_path, checkpoints) -> AppTest:
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(checkpoints))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_with_the_precomputed_files_shows_all_five_views(measured, monkeypatch, tmp_path):
    checkpoints, _ = measured
    at = open_page(monkeypatch, tmp_path, checkpoints)
    assert [t.label for t in at.tabs] == list(WHY_TABS)
    assert [len(t.children) > 0 for t in at.tabs] == [True] + [False] * 6  # only the open tab is drawn
    text = texts(at)
    for view in WHY_TABS[1:]:
        text += "\n" + texts(open_tab(at, view))
        assert not at.exception and [t.label for t in at.tabs if t.children] == [view]
    open_tab(at, "Gradient flow")
    assert "At initialisation, the gradient per weight" in text  # written from the measurements
    assert "ResNet without shortcuts (ours)** is not trained yet" in text
    assert "--model resnet_plain" in "\n".join(c.value for c in at.code)
    assert "Test accuracy: CNN" in text and "Expected calibration error" in text and "give the same answer" in text
    assert "the same measures on 6 real photos" in text and "The confusion photos add most" in text
    assert "Every dense layer puts at least" in text and "Most alike" in text
    assert "No current test-split measurements" not in text
    at.segmented_control(key="why_grad_metric").set_value("norm").run()
    open_tab(at, "What they look at")
    at.selectbox(key="why_cam_target").set_value("truck").run()
    captions = [c for image in at.image for c in image.captions]
    assert not at.exception and sum("map for truck" in c for c in captions) == 4


def test_page_without_precomputed_files_says_what_to_run(monkeypatch, tmp_path):
    checkpoints = make_checkpoints(tmp_path / "checkpoints")
    at = open_page(monkeypatch, tmp_path, checkpoints)
    text = "\n".join(texts(open_tab(at, view)) for view in ("Gradient flow", "Quality", "Feature reuse"))
    assert "No current test-split measurements for CNN, ResNet, DenseNet, SE-ResNet" in text
    assert any("python -m cifarnets analyze" in c.value for c in at.code)
    assert "Nothing measured on the test split yet" in text
    assert "Every dense layer puts at least" in text  # weights alone need no test split
    assert "MACs per image" in str(open_tab(at, "Cost").dataframe[0].value.columns.tolist())


def test_page_without_any_checkpoint_still_renders(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path, tmp_path / "none")
    for view in WHY_TABS:
        assert not open_tab(at, view).exception, view
    assert "No DenseNet checkpoint is loaded" in texts(open_tab(at, "Feature reuse"))


def test_photos_only_measures_the_real_photos_again_and_leaves_the_rest(measured, tmp_path):
    checkpoints, _ = measured
    before = analysisfile.read(checkpoints / "resnet")
    folder = tmp_path / "more"
    (folder / "horse").mkdir(parents=True)
    Image.fromarray(np.zeros((40, 50, 3), np.uint8) + 120).save(folder / "horse" / "a.png")
    found = analyze.remeasure_photos(checkpoints, torch.device("cpu"), analyze.photo_split([folder], list(
        CIFAR10_CLASSES)), keys=("resnet",))
    after = analysisfile.read(checkpoints / "resnet")
    assert set(found) == {"resnet"} and after["quality_photos"]["n"] == 1 and after["quality_photos"]["folders"] == [
        "more"]
    assert {k: v for k, v in after.items() if k != "quality_photos"} == \
        {k: v for k, v in before.items() if k != "quality_photos"}
    analysisfile.write(checkpoints / "resnet", before)  # as the fixture left it, for the page's tests


def test_analyze_only_measures_the_networks_named(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARNETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(analyze, "LATENCY_BUDGET_S", 0.0)
    dataset = sources.load(make_image_folder(tmp_path / "data", classes=CIFAR10_CLASSES, n_train=2, n_test=2))
    checkpoints = make_checkpoints(tmp_path / "checkpoints")
    results = analyze.analyze(checkpoints, dataset, torch.device("cpu"), latency_batches=(1,),
                                 keys=("cnn", "resnet"))
    assert set(results) == {"cnn", "resnet"}
    assert [k for k in ALL_KEYS if (checkpoints / k / analysisfile.ANALYSIS_FILE).exists()] == ["cnn", "resnet"]
    assert not (checkpoints / analysisfile.ANALYSIS_FILE).exists()  # the joint file needs all four
