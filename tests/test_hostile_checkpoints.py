"""Broken and hostile checkpoints: the network concerned is unavailable with its reason, the others keep
working (discover(), `predict`, `evaluate --all`), and nothing from a checkpoint is ever unpickled."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from helpers.hostile import CLASSES, Payload, encode, image_folder, write_all_checkpoints, write_checkpoint
from PIL import Image
from safetensors.torch import save_file

from cifarnets import cli
from cifarnets.data.loader import batch
from cifarnets.models import KEYS, build
from cifarnets.predict import prepare, probabilities
from cifarnets.store import checkpoints as ckpt
from cifarnets.store.runfolder import read_history

VICTIM = "resnet"  # the network whose files each case breaks; the other three must not notice


def truncate(folder, marker):
    raw = (folder / ckpt.MODEL_FILE).read_bytes()
    (folder / ckpt.MODEL_FILE).write_bytes(raw[: len(raw) // 2])


def empty_weights(folder, marker):
    (folder / ckpt.MODEL_FILE).write_bytes(b"")


def missing_weights(folder, marker):
    (folder / ckpt.MODEL_FILE).unlink()


def missing_config(folder, marker):
    (folder / ckpt.CONFIG_FILE).unlink()


def garbled_config(folder, marker):
    (folder / ckpt.CONFIG_FILE).write_text('{"model": "resnet", "classes": [')


def config_names_other_network(folder, marker):
    (folder / ckpt.CONFIG_FILE).write_text(json.dumps({"model": "cnn"}))


def wrong_shape(folder, marker):
    """Weights of a 100-class ResNet in a folder whose config says 10 classes."""
    save_file(build(VICTIM, num_classes=100).state_dict(), str(folder / ckpt.MODEL_FILE))


def wrong_keys(folder, marker):
    sd = {("renamed." + k if k.startswith("fc") else k): v for k, v in build(VICTIM).state_dict().items()}
    save_file(sd, str(folder / ckpt.MODEL_FILE))


def other_networks_weights(folder, marker):
    save_file(build("cnn").state_dict(), str(folder / ckpt.MODEL_FILE))


def pickle_as_safetensors(folder, marker):
    """A pickle whose loading would create `marker`, named model.safetensors."""
    (folder / ckpt.MODEL_FILE).write_bytes(pickle.dumps(Payload(marker)))


def torch_save_as_safetensors(folder, marker):
    """What a torch.save()d state dict carrying a payload looks like: a zip with a pickle inside."""
    torch.save({"fc.weight": Payload(marker)}, folder / ckpt.MODEL_FILE)


def huge_header(folder, marker):
    """safetensors starts with its header's length: claim 2**62 bytes."""
    (folder / ckpt.MODEL_FILE).write_bytes((2**62).to_bytes(8, "little") + b"{}")


def a_billion_classes(folder, marker):
    (folder / ckpt.CONFIG_FILE).write_text(json.dumps({"model": VICTIM, "classes": ["x"] * 10**6}))


def folder_is_a_file(folder, marker):
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    folder.write_text("not a folder")


def no_folder(folder, marker):
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()


BREAKAGES = {  # how -> what the reason must say
    truncate: "not a readable safetensors file",
    empty_weights: "not a readable safetensors file",
    missing_weights: "model.safetensors is missing",
    missing_config: "config.json is missing",
    garbled_config: "not valid JSON",
    config_names_other_network: "holds a 'cnn' network, not 'resnet'",
    wrong_shape: "has shape (100,), ResNet needs (10,)",
    wrong_keys: "missing 2 tensor(s), e.g. fc.bias; 2 unexpected tensor(s), e.g. renamed.fc.bias",
    other_networks_weights: "does not fit ResNet",
    pickle_as_safetensors: "not a readable safetensors file",
    torch_save_as_safetensors: "not a readable safetensors file",
    huge_header: "not a readable safetensors file",
    a_billion_classes: "names 1,000,000 classes, more than the 1,000 we build",
    folder_is_a_file: "not a checkpoint folder",
    no_folder: "no checkpoint in",
}


@pytest.fixture
def checkpoints(tmp_path):
    return write_all_checkpoints(tmp_path / "checkpoints")


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__)
def test_one_broken_network_is_unavailable_with_its_reason(checkpoints, tmp_path, breakage):
    marker = tmp_path / "unpickled"
    breakage(checkpoints / VICTIM, marker)
    entries = ckpt.discover(checkpoints)
    victim = entries[VICTIM]
    assert not victim.ok and victim.model is None
    assert BREAKAGES[breakage] in victim.reason and "\n" not in victim.reason, victim.reason
    others = {k: e for k, e in entries.items() if k != VICTIM}
    assert all(e.ok for e in others.values()), {k: e.reason for k, e in others.items()}
    x = batch([prepare(encode(Image.new("RGB", (32, 32), (200, 30, 30)), "PNG"), "red.png").pixels])
    assert set(probabilities(entries, x)) == set(others)
    assert not marker.exists(), "a checkpoint was unpickled"


def test_odd_but_loadable_metadata_cannot_break_a_page(checkpoints):
    """config.json and history.json are only JSON: whatever they hold, what the app reads is well-typed."""
    config = json.loads((checkpoints / "cnn" / ckpt.CONFIG_FILE).read_text())
    for metrics, expected in [([], None), ({"test_acc": "high"}, None), ({"test_acc": True}, None),
                              ({"test_acc": 0.71}, 0.71), ({"test_acc": 1}, 1.0), ("71%", None)]:
        (checkpoints / "cnn" / ckpt.CONFIG_FILE).write_text(json.dumps(config | {"metrics": metrics}))
        assert ckpt.discover(checkpoints)["cnn"].test_acc == expected
    (checkpoints / "cnn" / ckpt.HISTORY_FILE).write_text(json.dumps([{"epoch": 1}, 3, "two", None, [4]]))
    assert read_history(checkpoints / "cnn") == [{"epoch": 1}]


def test_cli_predict_uses_the_networks_that_load(checkpoints, tmp_path, capsys):
    marker = tmp_path / "unpickled"
    pickle_as_safetensors(checkpoints / "cnn", marker)
    wrong_shape(checkpoints / VICTIM, marker)
    photo = tmp_path / "photo.png"
    photo.write_bytes(encode(Image.new("RGB", (40, 30), (20, 90, 200)), "PNG"))
    assert cli.main(["predict", str(photo), "--checkpoints", str(checkpoints), "--device", "cpu", "--json"]) == 0
    out, err = capsys.readouterr()
    assert set(json.loads(out)[0]["predictions"]) == {"densenet", "se_resnet"}
    assert "CNN unavailable" in err and "ResNet unavailable" in err and "has shape (100,)" in err
    assert not marker.exists()


def test_cli_predict_with_no_loadable_network_says_why_for_each(checkpoints, tmp_path, capsys):
    for key in KEYS:
        truncate(checkpoints / key, None)
    photo = tmp_path / "photo.png"
    photo.write_bytes(encode(Image.new("RGB", (8, 8)), "PNG"))
    assert cli.main(["predict", str(photo), "--checkpoints", str(checkpoints), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no network could be loaded")
    assert err.count("not a readable safetensors file") == len(KEYS)


def test_cli_evaluate_all_evaluates_the_networks_that_load(tmp_path, capsys):
    data = image_folder(tmp_path / "data", n_train=4, n_test=6)
    checkpoints = tmp_path / "checkpoints"
    for i, key in enumerate(KEYS):
        write_checkpoint(checkpoints / key, key, CLASSES, seed=i)
    marker = tmp_path / "unpickled"
    torch_save_as_safetensors(checkpoints / "densenet", marker)
    missing_config(checkpoints / "se_resnet", marker)
    code = cli.main(["evaluate", "--all", "--checkpoints", str(checkpoints), "--data", str(data), "--device", "cpu",
                     "--json"])
    assert code == 1  # some network is unavailable: say so in the exit status too
    out = json.loads(capsys.readouterr().out)
    assert out["cnn"]["n"] == 12 and out["resnet"]["n"] == 12
    assert "not a readable safetensors file" in out["densenet"]["error"]
    assert "config.json is missing" in out["se_resnet"]["error"]
    assert not marker.exists()




@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch.load's remark on the plain pickle
@pytest.mark.parametrize("disguise", ["pickle", "torch.save", "wrong structure", "truncated"])
def test_a_hostile_resume_state_is_refused_without_running(tmp_path, capsys, restore_signals, disguise):
    data = image_folder(tmp_path / "data", n_train=4, n_test=2)
    out = tmp_path / "run"
    out.mkdir()
    marker = tmp_path / "unpickled"
    state = out / "train_state.pt"
    if disguise == "pickle":
        state.write_bytes(pickle.dumps({"epoch": 1, "model": Payload(marker)}))
    elif disguise == "torch.save":  # the right keys, and a payload where the weights should be
        torch.save({"version": 1, "model_key": "cnn", "epoch": 1, "step": 0, "model": Payload(marker)}, state)
    elif disguise == "wrong structure":  # loads safely, but is not ours
        torch.save({"epoch": "three", "recipe": [1, 2]}, state)
    else:
        torch.save({"version": 1, "model": build("cnn").state_dict()}, state)
        state.write_bytes(state.read_bytes()[:3000])
    code = cli.main(["train", "--model", "cnn", "--epochs", "1", "--batch-size", "4", "--data", str(data),
                     "--out", str(out), "--resume", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: " in err and "train_state.pt" in err and "Traceback" not in err, err
    assert not marker.exists(), "the resume state was unpickled"
    assert not (out / ckpt.MODEL_FILE).exists()  # and nothing was trained over it
