"""The race: the four networks trained in turn by `python -m cifarnets race`, and the app's way of
starting, watching, stopping and continuing one (runs/record.py and runs/jobs.py), on tiny generated data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import make_image_folder
from helpers.app import wait_for_state

from cifarnets.cli import main
from cifarnets.models import KEYS
from cifarnets.runs import engine, jobs, record
from cifarnets.runs import race as races
from cifarnets.store.checkpoints import load_checkpoint
from cifarnets.training.fit import read_state

RACE_LIMIT = 300  # seconds for four tiny runs on a busy 2-core machine, torch's start-up included


def cli(*args):
    return subprocess.run([sys.executable, "-m", "cifarnets", *args], capture_output=True, text=True,
                          timeout=RACE_LIMIT)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    monkeypatch.setenv("CIFARNETS_RUNS", str(folder))
    yield folder
    engine.stop(folder)
    for race in races.list_races(folder):
        if race.alive:
            os.kill(race.pid, signal.SIGKILL)


def wait_for(race: races.Race, states: tuple[str, ...], timeout: float = RACE_LIMIT) -> races.Race:
    return wait_for_state(races.load_race, race.folder, states, timeout, poll=0.2)


def wait_for_the_cnn_to_train(race: races.Race) -> races.Race:
    deadline = time.monotonic() + RACE_LIMIT
    while "cnn" not in race.members() or race.members()["cnn"].state != "running":
        assert time.monotonic() < deadline and race.state in ("starting", "running"), race.error
        time.sleep(0.2)
        race = races.load_race(race.folder)
    return race


def test_race_cli_trains_all_four_into_loadable_runs(tiny_folder, tmp_path):
    out = tmp_path / "race"
    args = ["race", "--epochs", "1", "--batch-size", "16", "--data", str(tiny_folder), "--out", str(out),
            "--device", "cpu"]
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    status = json.loads((out / record.RACE_FILE).read_text())
    assert status["state"] == "finished" and status["order"] == list(KEYS)
    assert [status["results"][k]["state"] for k in KEYS] == ["finished"] * 4
    for key in KEYS:
        folder = races.member_folder(out, key)
        model, config = load_checkpoint(folder, "cpu", expected_key=key)
        assert config["recipe"]["name"] == "fast" and config["recipe"]["batch_size"] == 16 and config["epochs"] == 1
        assert [row["epoch"] for row in record.load_run(folder).history()] == [1]
    assert "SE-ResNet  finished" in done.stdout and "== DenseNet (3/4)" in done.stderr

    again = cli(*args)  # the folder holds a race: say so rather than train over it
    assert again.returncode == 1 and "pass --resume" in again.stderr and "Traceback" not in again.stderr
    resumed = cli(*args, "--resume")  # every network has finished: nothing to do
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch   1/1" not in resumed.stderr


def test_race_mistakes_are_one_line_errors(tmp_path, capsys):
    assert main(["race", "--epochs", "0", "--out", str(tmp_path / "r")]) == 1
    assert "--epochs" in capsys.readouterr().err
    assert main(["race", "--resume"]) == 1
    assert "--resume needs --out" in capsys.readouterr().err
    assert main(["race", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: data source") and "does not exist" in err and err.count("\n") == 1


def test_a_network_that_cannot_train_is_reported_and_the_race_goes_on(tiny_folder, tmp_path):
    out = tmp_path / "race"
    done = cli("race", "--epochs", "1", "--batch-size", "500", "--data", str(tiny_folder), "--out", str(out),
               "--device", "cpu")
    assert done.returncode == 1  # no network has a batch to train on
    race = races.load_race(out)
    assert race.state == "failed" and "fewer than one batch" in race.error and "SE-ResNet" in race.error
    members = race.members()
    assert list(members) == list(KEYS)
    assert all(run.state == "failed" and "fewer than one batch" in run.error for run in members.values())


def test_the_app_starts_a_race_whose_networks_are_ordinary_runs(runs, tiny_folder):
    race = jobs.start_race(races.RaceRequest("fast", epochs=1, batch_size=16, data=str(tiny_folder),
                                                    device="cpu"), runs)
    assert races.list_races(runs)[0].folder == race.folder
    race = wait_for(race, ("finished", "failed", "stopped"))
    assert race.state == "finished", race.error
    assert race.progress() == 1.0
    members = race.members()
    assert list(members) == list(KEYS) and all(run.state == "finished" for run in members.values())

    listed = {run.name: run for run in record.list_runs(runs)}
    assert set(listed) == {run.name for run in members.values()}
    assert record.list_runs(runs, races=False) == []
    cnn = listed[members["cnn"].name]
    assert cnn.race == race.name and cnn.has_checkpoint and not cnn.alive
    record.set_active(cnn, runs)  # a race's network classifies like any run's
    assert record.active(runs) == {"cnn": cnn.folder}
    with pytest.raises(ValueError, match="race"):
        jobs.cancel(cnn)  # it is stopped with its race, not alone
    with pytest.raises(ValueError, match="race"):
        jobs.resume(cnn)


def test_cancel_stops_the_race_resumably_and_resume_continues_it(runs, tmp_path):
    # Batches of one and many epochs: the CNN cannot finish before the test cancels the race.
    data = make_image_folder(tmp_path / "data", n_train=40, n_test=4)
    race = jobs.start_race(races.RaceRequest("fast", epochs=50, batch_size=1, data=str(data), device="cpu"),
                               runs)
    race = wait_for_the_cnn_to_train(race)
    assert jobs.cancel(race)
    race = wait_for(race, ("stopped", "failed", "finished"))
    assert race.state == "stopped", race.error
    cnn = race.members()["cnn"]
    assert cnn.state == "stopped" and cnn.resumable and list(race.members()) == ["cnn"]  # no further network began
    first = read_state(cnn.folder)

    race = wait_for_the_cnn_to_train(jobs.resume(race))
    assert jobs.cancel(race)
    race = wait_for(race, ("stopped", "failed", "finished"))
    assert race.state == "stopped", race.error
    second = read_state(cnn.folder)
    assert (second["epoch"], second["step"]) > (first["epoch"], first["step"])  # it went on from there
