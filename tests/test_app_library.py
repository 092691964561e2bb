"""The library under the app's pages: layer tables, curves, classification summaries, examples, run states."""

from __future__ import annotations

import json

import pytest
from helpers.app import history, image_bytes, make_checkpoints

from cifarnets import predict
from cifarnets.data.images import decode_image
from cifarnets.diagram import architecture
from cifarnets.examples import FOLDER, list_examples
from cifarnets.models import EXTRA_KEYS, KEYS, build, count_params, spec
from cifarnets.runs import record
from cifarnets.store import curves
from cifarnets.store.checkpoints import discover
from cifarnets.ui.pictures import enlarge


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("depth", [None, 1, 2])
def test_layer_table_accounts_for_every_parameter(key, depth):
    model = build(key)
    rows = architecture.layer_table(model, depth)
    assert sum(r["params"] for r in rows) == count_params(model)
    assert all(r["output"] != "?" for r in rows)
    assert rows[-1]["output"] == "10"  # the logits
    assert model.training  # tracing in eval mode leaves the model as it found it


def test_layer_table_follows_the_image_through_the_cnn():
    rows = architecture.layer_table(build("cnn"))
    assert [(r["layer"], r["output"], r["params"]) for r in rows] == [
        ("conv1", "6x28x28", 456), ("pool", "6x14x14", 0), ("conv2", "16x10x10", 2416),
        ("pool (call 2)", "16x5x5", 0), ("fc1", "120", 48120), ("fc2", "84", 10164), ("fc3", "10", 850)]


def test_layer_table_names_the_identity_shortcut_and_stage_shapes():
    rows = {r["layer"]: r for r in architecture.layer_table(build("resnet"))}
    assert rows["layer1.0.shortcut"]["type"] == "Identity (empty Sequential)"
    assert rows["layer2.0.shortcut.0"]["output"] == "32x16x16"
    assert rows["layer3.1.bn2"]["output"] == "64x8x8"


def test_every_network_has_one_whole_record():
    records = [spec(key) for key in KEYS + EXTRA_KEYS]
    assert all(r.description and r.colour.startswith("#") for r in records)
    assert len({r.colour for r in records}) == len({r.label for r in records}) == len(records)  # none shared
    # the report's four carry its claim and our floor, above the claim; ours carry neither
    assert all(r.report and r.floor > r.report.accuracy for r in records if r.key in KEYS)
    assert not any(r.report or r.floor for r in records if r.key in EXTRA_KEYS)


def test_summaries_cover_every_network():
    counts = {r["network"]: r["params"] for r in architecture.param_counts()}
    assert counts == {"CNN": 62006, "ResNet": 175258, "DenseNet": 130602, "SE-ResNet": 176840}
    assert architecture.overview("densenet")["class"] == "SimpleDenseNet"


def test_curves_long_rows_and_shipped_sources(tmp_path):
    make_checkpoints(tmp_path, keys=("cnn", "resnet"), report_history=True)
    found = curves.shipped_curves(tmp_path)
    assert [(c.key, c.source) for c in found] == [
        ("cnn", "shipped (modern recipe)"), ("cnn", "shipped (report recipe)"),
        ("resnet", "shipped (modern recipe)"), ("resnet", "shipped (report recipe)")]
    rows = curves.long_rows([curves.Curve("cnn", "x", history(2) + [{"epoch": 3, "test_acc": float("nan")},
                                                                     "junk"])])
    assert len(rows) == 2 * 2 * 2  # 2 epochs x (loss, accuracy) x (train, test); NaN and junk skipped
    assert {r["network"] for r in rows} == {"CNN"}
    assert curves.best(history(3))["epoch"] == 3 and curves.best([]) is None


def test_classify_marks_disagreement_and_keeps_bad_files_apart(tmp_path):
    entries = discover(make_checkpoints(tmp_path))
    results = predict.classify([("a.png", image_bytes()), ("bad.jpg", b"nope")], entries)
    assert results[0].ok and set(results[0].top5) == set(KEYS)
    assert all(len(top) == 5 for top in results[0].top5.values())
    assert not results[1].ok and "bad.jpg" in results[1].error
    rows = predict.summary_rows(results, {"cnn": "CNN", "resnet": "ResNet"})
    assert [r["image"] for r in rows] == ["a.png"]
    assert rows[0]["networks disagree"] == results[0].disagree


def test_disagreement_and_unique_names():
    same = predict.Result("x", top5={"cnn": [("cat", 0.9)], "resnet": [("cat", 0.6)]})
    differ = predict.Result("y", top5={"cnn": [("cat", 0.9)], "resnet": [("dog", 0.6)]})
    assert not same.disagree and differ.disagree
    assert predict.unique_names(["a.png", "b.png", "a.png", "a.png"]) == ["a.png", "b.png", "a.png (2)",
                                                                           "a.png (3)"]
    assert enlarge(image_to_pixels()).size == (128, 128)


def image_to_pixels():
    from cifarnets.data.images import to_array

    return to_array(decode_image(image_bytes()))


def test_bundled_examples_are_small_real_images():
    examples = list_examples()
    total = sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total <= 300 * 1024
    assert sum(e.name.startswith("photo-") for e in examples) >= 3
    assert sum(e.name.startswith("cifar10-test-") for e in examples) == 10
    for e in examples:
        decode_image(e.path.read_bytes(), e.name)
    assert any(e.caption == "cat (photo)" for e in examples)
    assert (FOLDER / "SOURCES.md").exists()


def test_run_states_read_from_the_folder(tmp_path):
    folder = tmp_path / "cnn-modern-1"
    folder.mkdir()
    (folder / record.JOB_FILE).write_text(json.dumps({"request": {"model": "cnn", "recipe": "modern"},
                                                    "pid": 2**22 + 12345, "started": 1.0}))  # no such process
    (folder / record.LOG_FILE).write_text("loading\nerror: data source /x does not exist\n")
    run = record.load_run(folder)
    assert run.state == "failed" and run.error == "data source /x does not exist"

    (folder / "status.json").write_text(json.dumps({"state": "running", "epoch": 2, "epochs": 4, "step": 5,
                                                    "steps": 10}))
    run = record.load_run(folder)
    assert run.state == "failed"  # "running", but its process is gone: it died
    assert run.progress() == pytest.approx((1 * 10 + 5) / 40)

    job = json.loads((folder / record.JOB_FILE).read_text())
    (folder / record.JOB_FILE).write_text(json.dumps(job | {"cancelled": True}))
    (folder / "status.json").unlink()
    assert record.load_run(folder).state == "stopped"  # cancelled before it could save anything
    assert [r.name for r in record.list_runs(tmp_path)] == ["cnn-modern-1"]


def test_error_from_log_prefers_the_cli_error_line(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("Traceback (most recent call last):\n  File x\nRuntimeError: boom\n")
    assert record.error_from_log(log) == "the training process ended unexpectedly: RuntimeError: boom"
    assert "without writing a log" in record.error_from_log(tmp_path / "missing.log")
