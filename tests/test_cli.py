import json
import shutil
import subprocess
import sys
import urllib.error

import pytest
from conftest import tiny_image
from helpers.pictures import png

from cifarnets.cli import main, make_parser
from cifarnets.models import KEYS


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cifarnets", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_summary_json(capsys):
    assert main(["summary", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert list(info) == list(KEYS)
    assert info["cnn"]["label"] == "CNN" and info["cnn"]["class"] == "Net" and info["cnn"]["params"] == 62006
    assert info["se_resnet"]["printout"].startswith("ResNetSE(")


def test_train_evaluate_predict_end_to_end(tiny_folder, tmp_path):
    run = tmp_path / "checkpoints" / "cnn"
    r = cli("train", "--model", "cnn", "--recipe", "report", "--epochs", "2", "--batch-size", "16",
            "--set", "cutout=4", "--set", "epochs=5", "--data", str(tiny_folder), "--out", str(run), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "epoch   2/2" in r.stderr and "finished: test accuracy" in r.stderr
    recipe = json.loads((run / "config.json").read_text())["recipe"]  # --epochs wins over --set epochs=
    assert (recipe["name"], recipe["cutout"], recipe["epochs"], recipe["optimizer"]) == ("report", 4, 2, "adam")
    bad = cli("train", "--model", "cnn", "--set", "cutout=big", "--data", str(tiny_folder),
              "--out", str(tmp_path / "x"))
    assert bad.returncode == 1 and "cutout takes a whole number" in bad.stderr and not (tmp_path / "x").exists()

    r = cli("evaluate", "--checkpoint", str(run), "--data", str(tiny_folder), "--json")
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)["cnn"]
    assert metrics["n"] == 24 and set(metrics["per_class"]) == {"circle", "square", "stripes"}
    assert 0 <= metrics["test_acc"] <= 1 and len(metrics["confusion"]) == 3
    assert metrics["test_acc"] == json.loads((run / "config.json").read_text())["metrics"]["test_acc"]
    config = json.loads((run / "config.json").read_text())
    config["metrics"] = {"test_acc": 0.0}  # as if measured some other way: --write replaces it
    (run / "config.json").write_text(json.dumps(config))
    assert cli("evaluate", "--checkpoint", str(run), "--data", str(tiny_folder), "--write").returncode == 0
    written = json.loads((run / "config.json").read_text())["metrics"]
    assert written.pop("measured_on")["n_test"] == 24 and written == metrics

    good = tmp_path / "good.png"
    good.write_bytes(png(tiny_image(1, __import__("numpy").random.default_rng(0), size=64)))
    bad = tmp_path / "bad.jpg"
    bad.write_text("this is not a picture")
    r = cli("predict", str(good), str(bad), str(tmp_path / "missing.png"), "--json",
            "--checkpoints", str(tmp_path / "checkpoints"))
    assert r.returncode == 1  # some files failed; the others were still classified
    results = json.loads(r.stdout)
    assert [x["file"] for x in results] == [str(good), str(bad), str(tmp_path / "missing.png")]
    cnn = results[0]["predictions"]["cnn"]
    assert cnn["label"] in {"circle", "square", "stripes"} and len(cnn["top5"]) == 3  # the data set's classes
    assert set(results[0]["predictions"]) == {"cnn"}  # the other three have no checkpoint here
    assert "not an image" in results[1]["error"] and "does not exist" in results[2]["error"]

    r = cli("predict", str(good), "--checkpoints", str(tmp_path / "checkpoints"))
    assert r.returncode == 0 and "CNN" in r.stdout and "good.png" in r.stdout
    assert "ResNet unavailable: no checkpoint" in r.stderr

    shutil.rmtree(run)
    r = cli("evaluate", "--all", "--checkpoints", str(tmp_path / "checkpoints"), "--data", str(tiny_folder))
    assert r.returncode == 1 and "unavailable" in r.stdout and "Traceback" not in r.stderr


def test_offline_without_data_is_one_clear_error(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.datasets.CIFAR10", offline)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--model", "cnn", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no CIFAR-10 data in ./data") and "CIFARNETS_DATA" in err and err.count("\n") == 1


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "--model", "cnn", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--model", "cnn", "--epochs", "0", "--out", str(tmp_path / "r")]) == 1
    assert "epochs and batch size must be at least 1" in capsys.readouterr().err


def test_every_command_writes_and_reads_where_the_variables_say(tiny_folder, tmp_path, monkeypatch, capsys):
    """$CIFARNETS_RUNS and $CIFARNETS_CHECKPOINTS (paths.py) move every command's default folders, wherever it
    is started from: the app and the shell find the same runs and networks."""
    runs, checkpoints, elsewhere = tmp_path / "my-runs", tmp_path / "my-checkpoints", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("CIFARNETS_RUNS", str(runs))
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(checkpoints))
    monkeypatch.chdir(elsewhere)
    tiny = ["--data", str(tiny_folder), "--device", "cpu", "--epochs", "1", "--batch-size", "16"]

    r = cli("train", "--model", "cnn", *tiny, cwd=elsewhere)  # no --out
    assert r.returncode == 0, r.stderr
    (run,) = runs.iterdir()
    assert run.name.startswith("cnn-fast-") and (run / "config.json").exists()
    shutil.copytree(run, checkpoints / "cnn")
    # a distilling run finds its teacher there too
    r = cli("train", "--model", "resnet_plain", "--set", "teacher=cnn", "--set", "distill_weight=0.5", *tiny,
            cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert json.loads(next(runs.glob("resnet_plain-*/config.json")).read_text())["teacher"]["model"] == "cnn"
    r = cli("race", *tiny, cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert len(list(runs.glob("race-fast-*"))) == 1
    assert list(elsewhere.iterdir()) == []  # nothing written where the commands were started

    assert main(["evaluate", "--all", "--data", str(tiny_folder), "--json"]) == 1  # three networks unavailable
    assert "test_acc" in json.loads(capsys.readouterr().out)["cnn"]
    picture = tmp_path / "picture.png"
    picture.write_bytes(png(tiny_image(1, __import__("numpy").random.default_rng(0), size=64)))
    assert main(["predict", str(picture), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)[0]["predictions"]) == {"cnn"}
    # and every other command that reads networks
    commands = make_parser()._subparsers._group_actions[0].choices
    reading = {name for name, p in commands.items() if any("--checkpoints" in a.option_strings for a in p._actions)}
    assert reading >= {"evaluate", "predict", "bench", "photos", "analyze", "calibrate"}
    assert {commands[name].get_default("checkpoints") for name in reading} == {str(checkpoints)}


def test_a_user_mistake_is_one_line_and_a_bug_shows_its_traceback(tiny_folder, tmp_path, monkeypatch, capsys):
    tiny = ["--data", str(tiny_folder), "--device", "cpu", "--epochs", "1", "--batch-size", "16"]
    # typed values that only a layer below the CLI can judge: still the user's, still one line
    for setting, said in (("flip=sideways", "unknown flip 'sideways'"), ("schedule=wavy", "unknown schedule 'wavy'"),
                          ("teacher=lenet", "unknown network 'lenet'")):
        assert main(["train", "--model", "cnn", "--set", setting, *tiny, "--out", str(tmp_path / "r")]) == 1
        err = capsys.readouterr().err  # refused before any data is loaded or folder made
        assert err.startswith(f"error: {said}") and err.count("\n") == 1 and not (tmp_path / "r").exists(), err
    assert main(["predict", str(tmp_path / "x.png"), "--hub", "lenet=alice/net"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: hub spec item") and err.count("\n") == 1
    # a KeyError or ValueError from inside is a bug, not the user's: it is not dressed up as their mistake
    for bug in (KeyError("lr"), ValueError("an internal invariant")):
        def broken(*args, bug=bug, **kwargs):
            raise bug
        monkeypatch.setattr("cifarnets.data.sources.load", broken)
        with pytest.raises(type(bug)):
            main(["train", "--model", "cnn", *tiny, "--out", str(tmp_path / "r")])
    r = subprocess.run([sys.executable, "-c", "import sys; from cifarnets import cli; from cifarnets.store import "
                        "checkpoints; checkpoints.discover = lambda *a, **k: {}['cnn']; "
                        "sys.exit(cli.main(['predict', 'x.png']))"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" in r.stderr and "KeyError" in r.stderr
