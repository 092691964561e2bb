"""The checkpoint record (store/record.py): config.json's one owner, and the one rule for a stale figure."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from cifarnets.answering import VIEWS
from cifarnets.data.images import PREPARATION
from cifarnets.models import KEYS
from cifarnets.store.checkpoints import write_weights
from cifarnets.store.record import PHOTOS, UNFAMILIAR, CheckpointRecord, Key
from cifarnets.store.runfolder import CONFIG_FILE, MODEL_FILE

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"


@pytest.fixture
def folder(tmp_path) -> Path:
    """A copy of the shipped CNN's folder, its figures stored as the shipped files store them."""
    shutil.copytree(SHIPPED / "cnn", tmp_path / "cnn")
    return tmp_path / "cnn"


def retrain(folder: Path) -> None:
    """Other weights under the same config.json, as a retrained checkpoint copied by hand would be."""
    from cifarnets.store.checkpoints import load_checkpoint

    model, _ = load_checkpoint(folder)
    for p in model.parameters():
        p.data.add_(0.01)
    write_weights(folder / MODEL_FILE, model)


@pytest.mark.parametrize("key", KEYS)
def test_the_shipped_records_read_and_their_figures_are_current(key):
    record = CheckpointRecord.read(SHIPPED / key)
    assert record.metrics.test_acc == json.loads((SHIPPED / key / CONFIG_FILE).read_text())["metrics"]["test_acc"]
    assert record.photos is not None and record.photos.key.preparation == PREPARATION
    assert record.unfamiliar is not None and not record.stale(record.unfamiliar.key)
    stress = json.loads((SHIPPED / "stress.json").read_text())["networks"][key]["checkpoint"]
    analysis = json.loads((SHIPPED / key / "analysis.json").read_text())["checkpoint"]
    assert not record.stale(stress) and not record.stale(analysis)  # the forms those files were written in


def test_one_rule_says_which_of_weights_preparation_and_views_differ(folder):
    record = CheckpointRecord.read(folder)
    now = record.key
    assert now == Key(record.key.weights_sha256, PREPARATION, VIEWS) and len(now.weights_sha256) == 64
    assert record.why_stale(now.as_dict()) is None
    assert record.why_stale(now.as_dict() | {"preparation": "crop, box"}) == "preparation"
    assert record.why_stale(now.as_dict() | {"views": 2}) == "views"
    assert record.why_stale(now.weights_sha256[:16]) is None  # stress.json's prefix
    other_preparation = CheckpointRecord(folder, record.config, preparation="crop, box")
    assert other_preparation.why_stale(now) == "preparation"
    assert other_preparation.why_stale(record.test_split_key) is None  # the test split is not a photo
    assert record.why_stale(None) == record.why_stale({"weights_sha256": 3}) == "weights"  # unreadable: not ours
    retrain(folder)
    assert CheckpointRecord.read(folder).why_stale(now.as_dict()) == "weights"
    assert CheckpointRecord.read(folder).why_stale(now.weights_sha256[:16]) == "weights"


def test_a_figure_of_other_weights_preparation_or_views_is_not_shown(folder):
    record = CheckpointRecord.read(folder)
    record.write_photos(record.photos.raw)  # as `photos --write` stores it now: naming the weights
    assert CheckpointRecord.read(folder).photos is not None
    stored = json.loads((folder / CONFIG_FILE).read_text())[PHOTOS]
    for change in ({"preparation": "crop 80%, lanczos"}, {"views": 2}):
        config = json.loads((folder / CONFIG_FILE).read_text())
        assert CheckpointRecord(folder, config | {PHOTOS: stored | change}).photos is None, change
    retrain(folder)
    assert CheckpointRecord.read(folder).photos is None


@pytest.mark.parametrize("damage", [None, "high", {"accuracy": "high"}, {"accuracy": 0.5, "interval": [0.4]}])
def test_a_damaged_section_reads_as_absent_and_says_so(folder, damage):
    config = json.loads((folder / CONFIG_FILE).read_text())
    record = CheckpointRecord(folder, config | {PHOTOS: damage, UNFAMILIAR: damage, "metrics": damage})
    assert record.photos is None and record.unfamiliar is None and record.test_acc is None
    assert all(record.damaged(s) for s in (PHOTOS, UNFAMILIAR, "metrics"))
    del config[PHOTOS]
    assert not CheckpointRecord(folder, config).damaged(PHOTOS)  # absent is not damaged


def test_a_writer_changes_its_section_and_keeps_the_rest(folder):
    before = json.loads((folder / CONFIG_FILE).read_text())
    CheckpointRecord.read(folder).write_metrics({"test_acc": 0.5}, {"source": "here", "sha256": None})
    after = json.loads((folder / CONFIG_FILE).read_text())
    assert after["metrics"] == {"test_acc": 0.5, "measured_on": {"source": "here"}}
    assert {k: v for k, v in after.items() if k != "metrics"} == {k: v for k, v in before.items() if k != "metrics"}
    assert not list(folder.glob(".*.tmp"))  # written whole


def test_no_module_outside_store_names_config_json():
    """Every command and page reads and writes config.json through the record."""
    named = re.compile(r'"config\.json"|CONFIG_FILE')
    files = [*sorted((ROOT / "cifarnets").rglob("*.py")), *sorted((ROOT / "app_pages").rglob("*.py")), ROOT / "app.py"]
    found = [f"{f.relative_to(ROOT)}:{n}" for f in files if f.parent != ROOT / "cifarnets" / "store"
             for n, line in enumerate(f.read_text().splitlines(), 1) if named.search(line)]
    assert found == []
