"""Networks from the Hugging Face Hub, with no network: a hand-built HF cache read offline (helpers/hub.py), and
local folders, through the library, the app and the command line. Pushing is test_hub_push.py's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CLASSES, tiny_image
from helpers.app import APP, make_checkpoints
from helpers.hub import COMMIT, make_checkpoint, put_in_cache, same_weights
from helpers.pictures import png
from safetensors.torch import load_file, save_file
from streamlit.testing.v1 import AppTest

from cifarnets import cli
from cifarnets.models import KEYS
from cifarnets.store import checkpoints as ckpt
from cifarnets.store import hub
from cifarnets.ui import resources

REPO_ROOT = Path(__file__).resolve().parents[1]
APP_TIMEOUT = 60  # a session's first run loads four networks; generous for a busy 2-core machine

pytestmark = pytest.mark.usefixtures("offline_hub")


# ---------------------------------------------------------------- the spec

def test_spec_prefix_names_one_repo_per_network():
    refs = hub.parse_spec("alice/cifarnets@v1")
    assert {k: str(r) for k, r in refs.items()} == {k: f"alice/cifarnets-{k}@v1" for k in KEYS}


def test_spec_items_name_exact_repos_and_accept_hf_uris():
    refs = hub.parse_spec("resnet=alice/my-resnet, cnn=hf://bob/tiny@" + COMMIT)
    assert refs == {"resnet": hub.Ref("alice/my-resnet"), "cnn": hub.Ref("bob/tiny", COMMIT)}
    assert hub.parse_spec("  ") == {}


@pytest.mark.parametrize("spec", ["vgg=alice/x", "resnet=alice/x,cnn", "resnet=@v1"])
def test_spec_mistakes_say_what_is_expected(spec):
    with pytest.raises(ValueError, match="KEY=OWNER/NAME|names no repository"):
        hub.parse_spec(spec)


# ---------------------------------------------------------------- loading

def test_load_from_the_hf_cache_offline(tmp_path, offline_hub):
    original = make_checkpoint(tmp_path / "src", "resnet")
    snapshot = put_in_cache(offline_hub, "alice/cifarnets-resnet", tmp_path / "src")
    assert hub.download("alice/cifarnets-resnet") == snapshot
    model, config = hub.load("alice/cifarnets-resnet", expected_key="resnet")
    assert config["model"] == "resnet" and not model.training and same_weights(model, original)


def test_revision_picks_the_matching_snapshot(tmp_path, offline_hub):
    make_checkpoint(tmp_path / "v1", "cnn", seed=1)
    newer = make_checkpoint(tmp_path / "main", "cnn", seed=2)
    put_in_cache(offline_hub, "alice/cifarnets-cnn", tmp_path / "v1", commit="1" * 40, ref="v1")
    put_in_cache(offline_hub, "alice/cifarnets-cnn", tmp_path / "main", commit="2" * 40)
    older, _ = hub.load("hf://alice/cifarnets-cnn@v1")
    assert not same_weights(older, newer)
    assert same_weights(hub.load("alice/cifarnets-cnn")[0], newer)
    assert same_weights(hub.load("alice/cifarnets-cnn@" + "2" * 40)[0], newer)


def test_download_of_what_is_not_cached_says_offline():
    with pytest.raises(hub.HubError, match="not in the Hugging Face cache.*offline"):
        hub.download("alice/nothing-here")
    with pytest.raises(hub.HubError, match="neither a local folder nor a Hub repository id"):
        hub.download("not a repo!")


def test_load_from_a_local_directory(tmp_path):
    original = make_checkpoint(tmp_path / "mirror" / "cifarnets-cnn", "cnn")
    model, _ = hub.load(str(tmp_path / "mirror" / "cifarnets-cnn"))
    assert same_weights(model, original)
    # The prefix form works on a local mirror of the Hub repositories too; the rest fall back.
    overrides, notices = hub.resolve(str(tmp_path / "mirror" / "cifarnets"))
    assert overrides == {"cnn": tmp_path / "mirror" / "cifarnets-cnn"} and len(notices) == 3


@pytest.mark.parametrize("change, message", [
    (lambda t: t | {"extra.weight": torch.zeros(3)}, "1 unexpected tensor"),
    (lambda t: {k: v for k, v in t.items() if k != "fc3.bias"}, "missing 1 tensor"),
])
def test_loading_from_the_hub_is_strict(tmp_path, offline_hub, change, message):
    make_checkpoint(tmp_path / "src", "cnn")
    weights = tmp_path / "src" / ckpt.MODEL_FILE
    save_file(change(load_file(str(weights))), str(weights))
    put_in_cache(offline_hub, "alice/cifarnets-cnn", tmp_path / "src")
    with pytest.raises(ckpt.CheckpointError, match=message):
        hub.load("alice/cifarnets-cnn")
    # Through discover, as the app and predict load: the network is unavailable with that reason, not half-loaded.
    overrides, _ = hub.resolve("cnn=alice/cifarnets-cnn")
    entry = ckpt.discover(tmp_path / "shipped", overrides=overrides)["cnn"]
    assert not entry.ok and message in entry.reason


def test_hub_networks_override_shipped_ones_and_the_rest_fall_back_with_a_notice(tmp_path, offline_hub):
    shipped = {key: make_checkpoint(tmp_path / "shipped" / key, key, seed=0) for key in KEYS}
    from_hub = make_checkpoint(tmp_path / "src", "densenet", seed=7)
    snapshot = put_in_cache(offline_hub, "alice/cifarnets-densenet", tmp_path / "src")
    overrides, notices = hub.resolve("alice/cifarnets")
    assert overrides == {"densenet": snapshot}
    assert len(notices) == 3 and all("using the shipped checkpoint" in n and "offline" in n for n in notices)
    assert any(n.startswith("SE-ResNet: alice/cifarnets-se_resnet") for n in notices)
    entries = ckpt.discover(tmp_path / "shipped", overrides=overrides)
    assert all(e.ok for e in entries.values())
    assert entries["densenet"].path == snapshot and same_weights(entries["densenet"].model, from_hub)
    assert same_weights(entries["resnet"].model, shipped["resnet"])


# ---------------------------------------------------------------- the app

@pytest.fixture
def app_env(tmp_path, monkeypatch) -> Path:
    """The app on the CPU with its own shipped checkpoints (test accuracy 50, 60, 70 and 80%) and runs folder,
    and no socket to connect with: whatever CIFARNETS_HUB says, nothing may reach the network."""
    shipped = make_checkpoints(tmp_path / "shipped")
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(shipped))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")

    def refuse(*args, **kwargs):
        raise AssertionError("the app tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    resources._hub.clear()  # the app fetches a spec once per server, and this process is that server
    return shipped


def home(spec: str, monkeypatch) -> AppTest:
    monkeypatch.setenv(hub.ENV_VAR, spec)
    at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def cards(at: AppTest) -> dict[str, str]:
    """{network label: its Home card's test accuracy and caption}: what Home says about each network."""
    found = {}
    for column in at.columns:
        labels = [h.value for h in column.subheader]
        if labels:
            found[labels[0]] = " ".join([m.value for m in column.metric][1:] + [c.value for c in column.caption]
                                        + [w.value for w in column.warning])
    return found


def test_app_loads_networks_from_a_local_directory(tmp_path, app_env, monkeypatch):
    make_checkpoint(tmp_path / "mirror" / "cifarnets-cnn", "cnn")  # test accuracy 45.67%
    at = home(str(tmp_path / "mirror" / "cifarnets"), monkeypatch)
    said = cards(at)
    assert said["CNN"].startswith("45.7% From the local folder") and "mirror/cifarnets-cnn" in said["CNN"]
    for name, acc in (("ResNet", "60.0%"), ("DenseNet", "70.0%"), ("SE-ResNet", "80.0%")):
        assert said[name].startswith(f"{acc} From the shipped checkpoint, because")
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 3 and all("neither a local folder nor a Hub repository id" in w for w in warnings)
    assert warnings[0].startswith("ResNet: ") and warnings[0].endswith("; using the shipped checkpoint instead")


def test_app_loads_networks_from_the_hf_cache_offline_strictly(tmp_path, app_env, offline_hub, monkeypatch):
    make_checkpoint(tmp_path / "good", "resnet")
    put_in_cache(offline_hub, "alice/cifarnets-resnet", tmp_path / "good")
    make_checkpoint(tmp_path / "bad", "densenet")  # one tensor too many: refused, not half-loaded
    weights = tmp_path / "bad" / ckpt.MODEL_FILE
    save_file(load_file(str(weights)) | {"extra": torch.zeros(1)}, str(weights))
    put_in_cache(offline_hub, "alice/cifarnets-densenet", tmp_path / "bad")
    at = home("resnet=alice/cifarnets-resnet,densenet=hf://alice/cifarnets-densenet,"
              "se_resnet=alice/cifarnets-se_resnet@v2", monkeypatch)
    said = cards(at)
    assert said["CNN"] == "50.0% From the shipped checkpoint: modern recipe, 3 epochs on cpu."  # not named in the spec
    assert said["ResNet"].startswith("45.7% From the Hugging Face Hub repository `alice/cifarnets-resnet`")
    assert "No checkpoint loaded" in said["DenseNet"] and "1 unexpected tensor(s), e.g. extra" in said["DenseNet"]
    assert said["SE-ResNet"].startswith("80.0% From the shipped checkpoint, because `alice/cifarnets-se_resnet@v2`")
    notice, = [w.value for w in at.warning if not w.value.startswith("No checkpoint loaded")]
    assert notice == ("SE-ResNet: alice/cifarnets-se_resnet@v2 is not in the Hugging Face cache and the Hub cannot "
                      "be reached (offline); using the shipped checkpoint instead")
    # Classify says so too, and classifies with what loaded.
    at.switch_page("app_pages/3_Classify.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert notice in [w.value for w in at.warning]
    assert any("DenseNet" in i.value and "unexpected tensor" in i.value for i in at.info)


@pytest.mark.parametrize("spec", ["vgg=alice/x", "resnet=@v1"])
def test_a_bad_spec_is_a_notice_in_the_app_and_every_network_stays_shipped(app_env, monkeypatch, spec):
    at = home(spec, monkeypatch)
    notice, = [w.value for w in at.warning]
    assert notice.startswith(f"CIFARNETS_HUB={spec!r} is not a valid hub spec (")
    assert notice.endswith("; using the shipped checkpoints")
    said = cards(at)
    assert [said[name][:5] for name in ("CNN", "ResNet", "DenseNet", "SE-ResNet")] == ["50.0%", "60.0%", "70.0%",
                                                                                       "80.0%"]
    assert all("From the shipped checkpoint:" in text for text in said.values())


# ---------------------------------------------------------------- the command line

def test_cli_evaluate_one_hub_repository(tmp_path, offline_hub, tiny_folder, capsys):
    make_checkpoint(tmp_path / "src", "cnn", classes=TINY_CLASSES)
    put_in_cache(offline_hub, "alice/tiny-cnn", tmp_path / "src")
    assert cli.main(["evaluate", "--checkpoint", "hf://alice/tiny-cnn", "--data", str(tiny_folder), "--json",
                     "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["cnn"]["n"] == len(TINY_CLASSES) * 8


def test_cli_evaluate_hub_needs_all_and_offline_repo_is_an_error(tmp_path, capsys):
    assert cli.main(["evaluate", "--checkpoint", "x", "--hub", "alice/cifarnets"]) == 1
    assert "error: --hub goes with --all" in capsys.readouterr().err
    assert cli.main(["evaluate", "--checkpoint", "hf://alice/absent", "--data", str(tmp_path)]) == 1
    assert "error: alice/absent is not in the Hugging Face cache" in capsys.readouterr().err


def test_cli_predict_with_hub_in_a_fresh_process(tmp_path, offline_hub):
    """The real environment path: HF_HOME and HF_HUB_OFFLINE=1 read by a new interpreter, no patching."""
    for key in KEYS:
        make_checkpoint(tmp_path / "shipped" / key, key)
    make_checkpoint(tmp_path / "src", "resnet", seed=3)
    put_in_cache(offline_hub, "alice/cifarnets-resnet", tmp_path / "src")
    image = tmp_path / "photo.png"
    image.write_bytes(png(tiny_image(0, np.random.default_rng(0))))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "CIFARNETS_"))}
    env |= {"HF_HOME": str(offline_hub.parent), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run([sys.executable, "-m", "cifarnets", "predict", str(image), "--json", "--device", "cpu",
                          "--checkpoints", str(tmp_path / "shipped"), "--hub", "alice/cifarnets"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert set(json.loads(run.stdout)[0]["predictions"]) == set(KEYS)
    notices = [line for line in run.stderr.splitlines() if line.startswith("notice: ")]
    assert sorted(n.split(":")[1].strip() for n in notices) == ["CNN", "DenseNet", "SE-ResNet"]


def test_nothing_reaches_the_network_on_import():
    code = ("import socket\n"
            "def refuse(*a, **k): raise AssertionError('network used at import')\n"
            "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
            "import cifarnets.store.hub, cifarnets.cli\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {"PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr


def test_how_a_checkpoint_was_trained_reads_in_one_line_whatever_its_config_holds():
    config = {"recipe": {"name": "modern"}, "epochs": 100, "wall_s": 9000.0, "device": "cpu (X, AVX2, 1 thread)",
              "teacher": {"model": "resnet", "test_acc": 0.9}}
    assert ckpt.training_summary(config) == ("modern recipe, 100 epochs in 2h 30m on cpu (X, AVX2, 1 thread), "
                                             "distilled from the ResNet")
    ensemble = config | {"teacher": {"model": "resnet+se_resnet+resnet_plain", "targets": "fixed"}}
    assert ckpt.training_summary(ensemble).endswith("distilled from the ResNet, the SE-ResNet and the ResNet without "
                                                    "shortcuts (ours), their answers fixed before training")
    assert ckpt.training_summary({"recipe": {"name": "fast"}, "epochs": 5, "wall_s": 130}) == \
        "fast recipe, 5 epochs in 2m 10s"
    for hostile in ({}, {"recipe": "x", "epochs": "y", "wall_s": True, "device": 3, "teacher": ["resnet"]},
                    {"recipe": None, "wall_s": -1, "teacher": {"model": "../x"}}):
        assert ckpt.training_summary(hostile).startswith(("an unrecorded recipe, ? epochs", "an unrecorded recipe"))
