"""Training runs started from the app: child processes in their own run folders, on tiny generated data."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_CLASSES, make_image_folder, make_tar
from helpers.app import APP, LABELS, PAGES, image_bytes, make_checkpoints, texts, until_timed, wait_for_state
from streamlit.testing.v1 import AppTest

from cifarnets import CIFAR10_CLASSES
from cifarnets.models import label
from cifarnets.runs import jobs, record
from cifarnets.runs import race as races
from cifarnets.runs.request import TrainRequest
from cifarnets.runs.request import check as check_request
from cifarnets.training import recipes
from cifarnets.training.fit import read_state

TIMEOUT = 60
RUN_LIMIT = 180  # seconds a tiny run may take on a busy 2-core machine, start-up of torch included


def request(data, **overrides) -> TrainRequest:
    fields = {"model": "cnn", "recipe": "modern", "epochs": 2, "lr": 0.01, "batch_size": 16, "data": str(data),
              "device": "cpu"} | overrides
    return TrainRequest(**fields)


def wait_for(run: record.Run, states: tuple[str, ...], timeout: float = RUN_LIMIT) -> record.Run:
    return wait_for_state(record.load_run, run.folder, states, timeout)


def test_a_recipe_that_distils_is_refused_before_start_without_a_teacher_for_the_data(runs, tmp_path, monkeypatch):
    teachers = recipes.get("modern", "densenet").teachers  # the ResNet first
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(make_checkpoints(tmp_path / "shipped", keys=teachers)))
    shapes = make_image_folder(tmp_path / "shapes", n_train=2, n_test=1)
    refusal = "DenseNet: the modern recipe distils from the ResNet in "
    assert refusal in check_request(request(shapes, model="densenet"))
    assert "trained on other classes than this data's (circle, square, stripes)" in check_request(
        request(shapes, model="densenet"))
    assert refusal in races.check_race(races.RaceRequest("modern", 1, 16, str(shapes), "cpu"))
    assert check_request(request(shapes, model="densenet", recipe="fast")) == ""  # no teacher
    assert check_request(request(shapes, model="resnet")) == ""
    cifar = make_image_folder(tmp_path / "cifar", classes=list(CIFAR10_CLASSES), n_train=1, n_test=1)
    assert check_request(request(cifar, model="densenet")) == ""  # the teacher's own classes
    archive = make_tar(shapes, tmp_path / "shapes.tar.gz")
    assert check_request(request(archive, model="densenet")) == ""  # classes known only once loaded: the trainer checks
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(tmp_path / "nowhere"))
    assert "DenseNet: the modern recipe distils from the ResNet, which cannot be loaded" in check_request(
        request(archive, model="densenet"))
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(tmp_path / "shipped"))

    # The sidebar says so before Start, which is off until the choice changes.
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.selectbox(key="train_model").set_value("densenet")
    at.selectbox(key="train_recipe").set_value("modern")
    at.radio(key="train_data").set_value("path").run()  # CIFAR-10 comes first; the path box then
    at.text_input(key="train_data_path").input(str(shapes)).run()
    assert [w.value for w in at.sidebar.warning if refusal in w.value], [w.value for w in at.sidebar.warning]
    assert at.button(key="train_start").disabled
    at.selectbox(key="train_recipe").set_value("fast").run()
    assert not [w for w in at.sidebar.warning if refusal in w.value] and not at.button(key="train_start").disabled


def test_sidebar_run_finishes_and_becomes_the_active_checkpoint(runs, tmp_path):
    data = make_image_folder(tmp_path / "data")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.number_input(key="epochs-cnn-fast").set_value(2)
    at.number_input(key="batch-cnn-fast").set_value(16)
    at.number_input(key="lr-cnn-fast").set_value(0.01)
    at.radio(key="train_data").set_value("path").run()  # CIFAR-10 comes first; the path box then
    at.text_input(key="train_data_path").input(str(data))
    at.selectbox(key="train_device").set_value("cpu")
    at.button(key="train_start").click().run()
    assert not at.exception and not at.sidebar.error, [e.value for e in at.sidebar.error]

    [run] = record.list_runs(runs)
    assert run.model == "cnn" and run.state in ("queued", "starting", "running", "testing", "finished")
    run = wait_for(run, ("finished", "failed"))
    assert run.state == "finished", run.error
    history = run.history()
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(0 <= row["test_acc"] <= 1 for row in history)
    assert run.has_checkpoint and not run.resumable

    at.run()  # the sidebar now lists it as finished, with the button that adopts it
    assert "finished" in " ".join(m.value for m in at.sidebar.markdown)
    at.button(key=f"use-{run.name}").click().run()
    assert record.active(runs) == {"cnn": run.folder}

    # A new session (a reload, another browser) classifies with the run's own classes.
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert f"your run `{run.name}`" in texts(at)
    at.switch_page(PAGES["Classify"]).run()
    at.file_uploader(key="uploads").set_value(("shape.png", image_bytes(), "image/png")).run()
    table = at.dataframe[0].value
    assert table["CNN"][0].split(" (")[0] in TINY_CLASSES

    at.switch_page(PAGES["Training curves"]).run()
    assert not at.exception
    assert run.name in list(at.dataframe[1].value["run"])  # the runs table
    assert f"your run {run.name}" in set(at.dataframe[0].value["source"])  # and its curves
    at.selectbox(key=f"active-cnn-{run.name}").set_value("shipped checkpoint").run()  # back to the shipped one
    assert record.active(runs) == {}


def test_cancel_leaves_a_resumable_state_and_resume_continues_it(runs, tmp_path):
    # Batches of one and many epochs: the run cannot end on its own before the test cancels it.
    data = make_image_folder(tmp_path / "data", n_train=40, n_test=4)
    run = jobs.start_run(request(data, batch_size=1, epochs=50))
    run = wait_for(run, ("running", "testing", "finished", "failed"))
    assert run.state in ("running", "testing"), run.error
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()  # the sidebar shows it going...
    assert any("epoch" in bar.proto.text for bar in at.sidebar.get("progress"))
    at.button(key=f"cancel-{run.name}").click().run()  # ...and its Cancel button stops it
    run = wait_for(run, ("stopped", "failed", "finished"))
    assert run.state == "stopped", run.error
    assert run.resumable
    first = read_state(run.folder)
    assert (first["epoch"], first["step"]) > (0, 0)

    at.run()  # the sidebar offers to continue
    assert at.button(key=f"resume-{run.name}").label == "Resume"
    at.button(key=f"resume-{run.name}").click().run()
    run = wait_for(record.load_run(run.folder), ("running", "testing", "failed", "finished"))
    assert run.state in ("running", "testing"), run.error
    assert jobs.cancel(run)
    run = wait_for(run, ("stopped", "failed", "finished"))
    assert run.state == "stopped", run.error
    second = read_state(run.folder)
    assert (second["epoch"], second["step"]) > (first["epoch"], first["step"])  # it went on from there


def test_two_runs_at_once_and_a_failed_one_says_why(runs, tmp_path):
    data = make_image_folder(tmp_path / "data")
    not_data = tmp_path / "notes.txt"
    not_data.write_text("not a data set")
    started = [jobs.start_run(request(data, epochs=1)), jobs.start_run(request(data, model="resnet", epochs=1)),
               jobs.start_run(request(not_data))]
    assert len({r.folder for r in started}) == 3
    ended = [wait_for(r, ("finished", "failed")) for r in started]
    assert [r.state for r in ended] == ["finished", "finished", "failed"]
    assert "not a readable .tar, .tar.gz or .zip" in ended[2].error

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert any("not a readable" in e.value for e in at.sidebar.error)
    assert at.button(key=f"resume-{ended[2].name}").label == "Start again"


def test_check_refuses_what_cannot_start(tmp_path):
    assert "path" in check_request(request(""))
    assert "does not exist" in check_request(request(tmp_path / "missing"))
    assert "at least 1" in check_request(request(tmp_path, epochs=0))
    assert "above 0" in check_request(request(tmp_path, lr=0.0))
    assert check_request(request(tmp_path)) == ""
    assert check_request(request("./data")) == ""  # torchvision's download folder need not exist yet


def test_active_choice_survives_and_ignores_vanished_runs(runs):
    run_folder = runs / "cnn-modern-x"
    run_folder.mkdir(parents=True)
    (run_folder / "model.safetensors").write_bytes(b"")
    (run_folder / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no known network"):  # it has no job.json to say what it trained
        record.set_active(record.load_run(run_folder), runs)

    outside = runs.parent / "elsewhere"  # a checkpoint outside runs/ is never picked up through active.json
    outside.mkdir()
    (outside / "model.safetensors").write_bytes(b"")
    (runs / record.ACTIVE_FILE).write_text('{"cnn": "cnn-modern-x", "resnet": "gone", "densenet": "../elsewhere", '
                                         f'"se_resnet": "{outside}", "nonsense": 3}}')
    assert record.active(runs) == {"cnn": run_folder}
    record.clear_active("cnn", runs)
    assert record.active(runs) == {}


def test_the_job_runner_loads_neither_the_trainer_nor_torch():
    """The app's job runners only read run and race folders' files: importing them must stay cheap."""
    code = ("import sys, cifarnets.runs.record, cifarnets.runs.race, cifarnets.runs.jobs, cifarnets.runs.engine; "
            "print(sorted({'torch', 'cifarnets.training.fit'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-1000:]
    assert done.stdout.strip() == "[]"


def test_sidebar_shows_the_expected_time_before_starting(runs, tmp_path):
    data = make_image_folder(tmp_path / "data")  # 3 classes x 24 training images
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.radio(key="train_data").set_value("path").run()  # CIFAR-10 comes first; the path box then
    at.text_input(key="train_data_path").input(str(data))
    at.number_input(key="batch-cnn-fast").set_value(16).run()
    until_timed(at)  # the steps are timed in a thread: the page is drawn at once, and says so until they are
    [caption] = [c.value for c in at.sidebar.caption if c.value.startswith("Expected time here")]
    assert "5 epochs × (4 steps × " in caption and "the 72 training and 24 test images" in caption
    assert "Estimated from" in caption and "on cpu (" in caption  # what it is, and the machine it was timed on
    until_timed(at.number_input(key="batch-cnn-fast").set_value(128).run())  # another batch: timed anew
    assert any("fewer than one batch of 128" in c.value for c in at.sidebar.caption)


def test_sidebar_starts_a_race_and_draws_the_four_on_one_chart(runs, tmp_path):
    data = make_image_folder(tmp_path / "data")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.radio(key="train_data").set_value("path").run()  # CIFAR-10 comes first; the path box then
    at.text_input(key="train_data_path").input(str(data))
    at.selectbox(key="train_device").set_value("cpu")
    at.number_input(key="race-epochs-fast").set_value(2)
    at.number_input(key="race-batch-fast").set_value(16)
    at.button(key="race_start").click().run()
    assert not at.exception and not at.sidebar.error, [e.value for e in at.sidebar.error]
    [race] = races.list_races(runs)
    assert race.request.epochs == 2 and race.request.batch_size == 16 and race.request.data == str(data)
    assert at.button(key="race_start").disabled  # one race at a time, in every session

    deadline = time.monotonic() + 2 * RUN_LIMIT
    while race.state not in ("finished", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        race = races.load_race(race.folder)
    assert race.state == "finished", race.error
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()  # a new session sees the same race
    assert not at.button(key="race_start").disabled
    [chart] = at.sidebar.get("vega_lite_chart")  # test accuracy above test loss
    accuracy, loss = (panel["data"]["values"] for panel in json.loads(chart.proto.spec)["vconcat"])
    for rows, metric in ((accuracy, "accuracy"), (loss, "loss")):
        assert sorted((r["network"], r["metric"], r["epoch"]) for r in rows) == sorted(
            (n, metric, e) for n in LABELS for e in (1, 2))
    [standings] = [c.value for c in at.sidebar.caption if c.value.startswith("CNN: ")]
    assert all(f"{name}: **" in standings for name in LABELS) and standings.count("%") == 4
    for key, run in race.members().items():  # the checkpoint's own figure, as its card and Classify quote it
        assert f"{label(key)}: **{run.test_acc:.1%}**" in standings
    at.button(key=f"race-use-{race.name}").click().run()
    assert record.active(runs) == {key: run.folder for key, run in race.members().items()}


def test_the_test_pass_reads_testing_never_starting(runs, tiny_folder, tmp_path, monkeypatch):
    """While the trainer measures an epoch on the test split its status says "testing" (the card said "starting ·
    loading the data..." with a full bar, for a ResNet's minutes-long last pass), then "finished"."""
    from cifarnets.data import sources
    from cifarnets.runs.record import run_state
    from cifarnets.training import fit as fitting

    seen = []
    real = fitting.evaluate

    def watching(*args, **kwargs):
        seen.append(json.loads((tmp_path / "run" / "status.json").read_text()))
        return real(*args, **kwargs)

    monkeypatch.setattr(fitting, "evaluate", watching)
    fitting.fit("cnn", recipes.get("modern", "cnn", epochs=2, batch_size=16), sources.load(str(tiny_folder)),
                tmp_path / "run", device="cpu")
    assert [(s["state"], s["epoch"], s["step"] == s["steps"]) for s in seen] == [("testing", 1, True),
                                                                               ("testing", 2, True)]
    assert run_state(True, "testing", False) == "testing"
    assert run_state(True, "finished", False) == "testing"  # the process is writing its last files
    assert run_state(False, "finished", False) == "finished"

    # The card, for a run in its last test pass (a sleeper stands in for its trainer; the fixture ends it).
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    folder = runs / "cnn-fast-testing"
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"request": {"model": "cnn", "recipe": "fast"}, "pid": trainer.pid}))
    (folder / "status.json").write_text(json.dumps({"state": "testing", "epoch": 3, "epochs": 3, "step": 390,
                                                    "steps": 390, "pid": trainer.pid}))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    bars = [bar.proto.text for bar in at.sidebar.get("progress")]
    assert bars == ["epoch 3/3 trained · testing it on the test split, as Classify answers (a few minutes for the "
                    "larger networks on a CPU)"], bars
    assert ":violet-badge[testing]" in texts(at)
