"""Views a user can share, and results a user takes away, under AppTest: the choices that define a page live in
its URL (a link restores the view; a bad or stale value falls back with one line, never an exception), the
diagrams and stage maps the pages draw, and what the download buttons hand over."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import pytest
from helpers.app import APP, LABELS, PAGES, history, make_checkpoints, open_tab, texts
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from cifarnets.diagram.architecture import layer_table
from cifarnets.models import build
from cifarnets.store.fileio import write_json
from cifarnets.store.runfolder import REPORT_HISTORY_FILE

TIMEOUT = 120  # a busy 2-core machine loading four networks
RUN_FILES = ["model.safetensors", "config.json", "history.json", REPORT_HISTORY_FILE, "README.md"]
NOT_CHECKPOINT = ["train_state.pt", "status.json", ".lock", ".model.safetensors.x1y2.tmp", "job.json", "train.log"]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture
def app_env(shipped, tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(shipped))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")
    return tmp_path / "runs"


@pytest.fixture
def downloads(monkeypatch) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every file the page hands a download button, as Streamlit stores it."""
    stored = []
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):
        if filename:  # pictures have no file name; downloads do
            stored.append((filename, path_or_data))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    return stored


def open_page(page: str, **params) -> AppTest:
    """The page as a pasted link opens it: a fresh session, with these query parameters."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(PAGES[page]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def tab_shown(at: AppTest, key: str) -> str:
    """The label of the tab a URL-bound st.tabs opens on."""
    def find(node):
        for child in getattr(node, "children", {}).values():
            if getattr(child, "type", None) == "tab_container" and child.proto.tab_container.query_param_key == key:
                return child
            if (found := find(child)) is not None:
                return found
        return None
    container = find(at._tree)
    return list(container.children.values())[container.proto.tab_container.default_tab_index].label


def notices(at: AppTest) -> list[str]:
    """The link notices as a person reads them: share.plain's escapes and word joiners taken out."""
    return [re.sub(r"\\(.)", r"\1", c.value).replace("\u2060", "") for c in at.caption if "The link" in c.value]


def finished_run(runs, name="resnet-run", key="resnet"):
    """A finished run folder as the trainer leaves one: the checkpoint's files beside its private ones."""
    folder = make_checkpoints(runs / "tmp-checkpoints", keys=(key,)) / key
    run = runs / name
    run.mkdir(parents=True)
    for f in ("model.safetensors", "config.json", "history.json"):
        (run / f).write_bytes((folder / f).read_bytes())
    write_json(run / REPORT_HISTORY_FILE, history(2))
    (run / "README.md").write_text("# a card of its own\n")
    write_json(run / "status.json", {"state": "finished", "model": key, "epochs": 3, "epoch": 3})
    write_json(run / "job.json", {"request": {"model": key, "recipe": "fast"}, "started": 1.0})
    for f in ("train_state.pt", ".lock", ".model.safetensors.x1y2.tmp", "train.log"):
        (run / f).write_bytes(b"private")
    return run


# ---------------------------------------------------------------- Architecture

def test_architecture_link_restores_network_and_level(app_env):
    at = open_page("Architecture", network="DenseNet", level="every layer")
    assert tab_shown(at, "network") == "DenseNet"
    assert at.segmented_control(key="level").value == "every layer"
    assert not notices(at)
    dots = [g.proto.spec for g in at.get("graphviz_chart")]
    dense = dots[LABELS.index("DenseNet")]
    # every layer: each DenseNet module with parameters is a box of its own (its tooltip names it)...
    tips = [name for tip in re.findall(r'tooltip="([^"]*)"', dense) for name in tip.split(", ")]
    for row in layer_table(build("densenet")):
        if row["params"]:
            assert tips.count(row["layer"]) == 1
    # ...and the concatenations' traced shapes are on the edges
    assert 'label="76x8x8"' in dense and 'label="164x4x4"' in dense and "concat" in dense
    # the layer table follows the level
    assert len(at.dataframe[LABELS.index("DenseNet")].value) == len(layer_table(build("densenet")))


def test_architecture_bad_link_falls_back_with_one_line_each(app_env):
    at = open_page("Architecture", network="Inception", level="everything", colour="blue")
    assert tab_shown(at, "network") == "CNN" and at.segmented_control(key="level").value == "blocks"
    lines = notices(at)
    assert len(lines) == 3
    assert any("“Inception”" in line for line in lines) and any("“everything”" in line for line in lines)
    assert any("“colour”" in line for line in lines)
    assert dict(at.query_params) == {}  # Streamlit drops the bad values, the page the unknown name
    at.run()  # the next run has nothing left to say
    assert not notices(at) and not at.exception


# ---------------------------------------------------------------- Why they differ

def test_why_link_opens_the_stage_maps_of_the_chosen_example(app_env):
    at = open_page("Why they differ", tab="What every stage sees", stages_example="dog (CIFAR-10 test image)")
    assert tab_shown(at, "tab") == "What every stage sees"
    assert at.selectbox(key="stages_example").value.name == "cifar10-test-dog.jpg"
    stage_captions = [c.value for c in at.caption if " · ranks " in c.value]
    # the CNN's two convolutions, the ResNets' stem and three stages, DenseNet's stem, blocks and transitions
    assert len(stage_captions) == 2 + 4 + 6 + 4
    assert "**block2** · 164x4x4 · ranks 1–8 of 164" in stage_captions
    at.select_slider(key="stages_ranks_8").set_value("9–16").run()
    assert not at.exception
    text = texts(at)
    assert "**conv1** · 6x28x28: all 6 channels are on earlier pages" in text
    assert "**layer1** · 16x32x32 · ranks 9–16 of 16" in text


def test_why_bad_link_falls_back(app_env):
    at = open_page("Why they differ", tab="Everything", stages_example="zebra (photo)")
    assert tab_shown(at, "tab") == "Gradient flow"
    assert [line for line in notices(at) if "“Everything”" in line] == notices(at) and len(notices(at)) == 1
    open_tab(at, "What every stage sees")  # only the open tab is drawn: its example is checked when opened
    assert at.selectbox(key="stages_example").value.name == "cifar10-test-cat.jpg"
    assert [line for line in notices(at) if "“zebra (photo)”" in line] == notices(at) and len(notices(at)) == 1


# ---------------------------------------------------------------- Classify

def test_classify_link_restores_examples_and_the_summary_downloads_as_csv(app_env, downloads):
    at = open_page("Classify", examples=["cat (photo)", "unicorn (photo)", "ship (CIFAR-10 test image)"])
    assert [e.name for e in at.multiselect(key="examples").value] == ["photo-cat.jpg", "cifar10-test-ship.jpg"]
    assert notices(at) == [":orange[The link asks for the example “unicorn (photo)”, which is not here: left out.]"]
    table = at.dataframe[0].value
    assert list(table["image"]) == ["photo-cat.jpg", "cifar10-test-ship.jpg"]
    csv_files = [data for name, data in downloads if name == "classify-summary.csv"]
    assert csv_files
    rows = list(csv.DictReader(io.StringIO(csv_files[-1].decode())))
    assert [r["image"] for r in rows] == list(table["image"])
    assert list(rows[0]) == list(table.columns)
    assert [r[LABELS[0]] for r in rows] == list(table[LABELS[0]])  # "cat (12%)": as the table shows it


# ---------------------------------------------------------------- Training curves

def test_curves_link_restores_the_selection_and_drops_a_stale_run(app_env, downloads):
    run = finished_run(app_env)
    at = open_page("Training curves", curves_layout="side by side", curves_splits="test",
                   curves_runs=[run.name, "deleted-run"])
    assert at.segmented_control(key="curves_layout").value == "side by side"
    assert at.pills(key="curves_splits").value == ["test"]
    assert [r.name for r in at.multiselect(key="curves_runs").value] == [run.name]
    assert len(notices(at)) == 1 and "“deleted-run”" in notices(at)[0]
    # downloads: the first history (the shipped CNN's) as CSV, and the finished run's checkpoint as a zip
    csv_files = [(name, data) for name, data in downloads if name.endswith("-history.csv")]
    name, data = csv_files[-1]
    assert name == "cnn-shipped-modern-recipe-history.csv"
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [float(r["test_acc"]) for r in rows] == [h["test_acc"] for h in history()]
    zips = [data for name, data in downloads if name == f"{run.name}.zip"]
    with zipfile.ZipFile(io.BytesIO(zips[-1])) as z:
        assert sorted(z.namelist()) == sorted(f"{run.name}/{f}" for f in RUN_FILES)
        assert z.read(f"{run.name}/model.safetensors") == (run / "model.safetensors").read_bytes()
    assert all((run / private).exists() for private in NOT_CHECKPOINT)  # there to leave out, and left out


def test_curves_bad_values_fall_back(app_env):
    at = open_page("Training curves", curves_layout="stacked", curves_splits=["test", "validation"])
    assert at.segmented_control(key="curves_layout").value == "overlaid"
    assert at.pills(key="curves_splits").value == ["test"]
    assert len(notices(at)) == 2 and not at.exception
    assert "No runs yet" in texts(at)
