"""The Hugging Face Hub path, with no network: a hand-built HF cache read offline, local folders, and a fake HfApi.

The cache is laid out as https://huggingface.co/docs/hub/local-cache documents it:
models--OWNER--NAME/{blobs/<hash>, snapshots/<commit>/<file> -> ../../blobs/<hash>, refs/<branch>}.
"""

from __future__ import annotations

import hashlib
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
from helpers.pictures import png
from huggingface_hub import constants
from safetensors.torch import load_file, save_file
from streamlit.testing.v1 import AppTest

from cifarnets import CIFAR10_CLASSES, cli
from cifarnets.models import KEYS, build
from cifarnets.store import checkpoints as ckpt
from cifarnets.store import hub
from cifarnets.training import recipes
from cifarnets.ui import resources

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMIT = "a" * 40
APP_TIMEOUT = 60  # a session's first run loads four networks; generous for a busy 2-core machine


@pytest.fixture(autouse=True)
def offline_hub(tmp_path, monkeypatch) -> Path:
    """Every test: HF_HUB_OFFLINE=1 and a private, empty HF cache. huggingface_hub reads both at import,
    so the constants it already read are patched too."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv(hub.ENV_VAR, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return home / "hub"


# ---------------------------------------------------------------- helpers

def make_checkpoint(folder: Path, key: str = "cnn", classes=CIFAR10_CLASSES, seed: int = 0) -> torch.nn.Module:
    """A real, untrained checkpoint folder: config with metrics, two history rows."""
    torch.manual_seed(seed)
    model = build(key, num_classes=len(classes))
    per_class = {c: round(0.1 * (i % 10), 4) for i, c in enumerate(classes)}
    metrics = {"test_acc": 0.4567, "test_loss": 1.2345, "per_class": per_class,
               "confusion": [[0] * len(classes) for _ in classes], "n": 1000}
    config = ckpt.make_config(key, model, classes=list(classes), recipe=recipes.get("modern", key).to_dict(),
                              data={"source": "/data/tiny.tar.gz", "sha256": "f" * 64, "n_train": 50, "n_test": 10},
                              metrics=metrics, device="cpu", epochs_done=2, seed=seed)
    history = [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.2 * e, "test_loss": 1.9 / e, "test_acc": 0.21 * e,
                "lr": 0.05 / e, "seconds": 1.0, "images_per_s": 50.0} for e in (1, 2)]
    ckpt.save_checkpoint(folder, model, config, history)
    return model


def put_in_cache(cache: Path, repo_id: str, folder: Path, commit: str = COMMIT, ref: str = "main") -> Path:
    """Copy a folder's files into the HF cache as a download of `repo_id` at `commit` would leave them."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for f in folder.iterdir():
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / f.name).symlink_to(Path("..", "..", "blobs", blob.name))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snapshot


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


class FakeApi:
    """Records what push would send to the Hub."""

    def __init__(self):
        self.repos, self.commits = [], []

    def create_repo(self, repo_id, **kwargs):
        self.repos.append((repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def create_commit(self, repo_id, operations, **kwargs):
        files = {op.path_in_repo: op.path_or_fileobj for op in operations}
        self.commits.append((repo_id, files, kwargs))


def pushed_files(api: FakeApi) -> dict[str, bytes]:
    (_, files, _), = api.commits
    return files


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


# ---------------------------------------------------------------- pushing

def test_push_uploads_exactly_the_checkpoint_files_and_a_card(tmp_path):
    folder = tmp_path / "run"
    make_checkpoint(folder, "resnet")
    (folder / ckpt.REPORT_HISTORY_FILE).write_text(json.dumps([{"epoch": 1, "test_acc": 0.61},
                                                               {"epoch": 2, "test_acc": 0.7012}]))
    (folder / ckpt.UNFAMILIAR_FILE).write_bytes(b"statistics")  # travels with the weights it was fitted to
    for junk in ("train_state.pt", "status.json", ".lock", "notes.txt"):  # a run folder's other files
        (folder / junk).write_bytes(b"x")
    (folder / "sub").mkdir()
    api = FakeApi()
    url = hub.push(folder, "alice/cifarnets-resnet", private=True, api=api)
    assert url == "https://huggingface.co/alice/cifarnets-resnet"
    assert api.repos == [("alice/cifarnets-resnet", {"token": None, "private": True, "repo_type": "model",
                                                      "exist_ok": True})]
    files = pushed_files(api)
    assert set(files) == {"model.safetensors", "config.json", "history.json", "report_history.json",
                          "unfamiliar.safetensors", "README.md"}
    for name in ("model.safetensors", "config.json", "history.json", "report_history.json", "unfamiliar.safetensors"):
        assert files[name] == (folder / name).read_bytes()

    card = files["README.md"].decode()
    front, body = card.split("---\n")[1:3]
    assert "library_name: pytorch" in front and "- cifar10" in front and "- accuracy" in front
    assert "- image-classification" in front
    assert "# ResNet for CIFAR-10" in body and "`ResNet`, 175,258 parameters" in body
    assert "```text\n" + str(build("resnet")) + "\n```" in body
    assert "## Recipe: modern" in body and "| optimizer | sgd |" in body and "`tiny.tar.gz`" in body
    assert "trained with the modern recipe, 2 epochs on cpu." in body
    assert "Test accuracy **45.67%** on 1,000 test images" in body
    assert "| airplane | 0.0% |" in body and "| truck | 90.0% |" in body
    assert "| 2 | 1.0000 | 40.00% | 0.9500 | 42.00% | 0.025 |" in body
    assert "the report's own recipe reached 70.12% test accuracy after 2 epochs" in body
    assert "evaluate --checkpoint hf://alice/cifarnets-resnet" in body


def test_push_without_report_history_leaves_it_out(tmp_path):
    make_checkpoint(tmp_path / "run", "cnn")
    api = FakeApi()
    hub.push(tmp_path / "run", "alice/cifarnets-cnn", api=api)
    assert set(pushed_files(api)) == {"model.safetensors", "config.json", "history.json", "README.md"}
    assert api.repos[0][1]["private"] is False


def test_push_refuses_a_broken_checkpoint_before_touching_the_hub(tmp_path):
    folder = tmp_path / "run"
    make_checkpoint(folder, "cnn")
    weights = folder / ckpt.MODEL_FILE
    save_file(load_file(str(weights)) | {"extra": torch.zeros(1)}, str(weights))
    api = FakeApi()
    with pytest.raises(ckpt.CheckpointError, match="unexpected tensor"):
        hub.push(folder, "alice/cifarnets-cnn", api=api)
    (folder / ckpt.HISTORY_FILE).unlink()
    with pytest.raises(ckpt.CheckpointError, match="history.json missing"):
        hub.push(folder, "alice/cifarnets-cnn", api=api)
    with pytest.raises(hub.HubError, match="needs an owner"):
        hub.push(folder, "cifarnets-cnn", api=api)
    assert api.repos == [] and api.commits == []


def test_push_failure_is_one_line(tmp_path):
    make_checkpoint(tmp_path / "run", "cnn")

    class Refusing(FakeApi):
        def create_repo(self, repo_id, **kwargs):
            raise PermissionError("401 Unauthorized\ndetails")

    with pytest.raises(hub.HubError, match=r"^push to alice/x failed \(PermissionError: 401 Unauthorized\)$"):
        hub.push(tmp_path / "run", "alice/x", api=Refusing())


def test_what_push_uploads_is_what_hub_loading_reads(tmp_path, offline_hub):
    original = make_checkpoint(tmp_path / "run", "se_resnet")
    api = FakeApi()
    hub.push(tmp_path / "run", "alice/cifarnets-se_resnet", api=api)
    uploaded = tmp_path / "uploaded"
    uploaded.mkdir()
    for name, data in pushed_files(api).items():
        (uploaded / name).write_bytes(data)
    put_in_cache(offline_hub, "alice/cifarnets-se_resnet", uploaded)
    overrides, notices = hub.resolve("alice/cifarnets")
    assert set(overrides) == {"se_resnet"} and len(notices) == 3
    assert same_weights(ckpt.load_checkpoint(overrides["se_resnet"], expected_key="se_resnet")[0], original)


def test_download_asks_only_for_the_checkpoint_files(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(hub, "snapshot_download", lambda repo_id, **kw: calls.append((repo_id, kw)) or str(tmp_path))
    assert hub.download("alice/cifarnets-cnn", revision="v2") == tmp_path
    assert calls == [("alice/cifarnets-cnn", {"revision": "v2", "allow_patterns": [
        "model.safetensors", "config.json", "history.json", "report_history.json", "unfamiliar.safetensors"]})]


# ---------------------------------------------------------------- the command line

def test_cli_push_dry_run_prints_files_and_card_and_uploads_nothing(tmp_path, capsys, monkeypatch):
    make_checkpoint(tmp_path / "run", "cnn")
    (tmp_path / "run" / "train_state.pt").write_bytes(b"x")
    monkeypatch.setattr(hub, "HfApi", lambda *a, **k: pytest.fail("a dry run must not reach the Hub"))
    assert cli.main(["push", "--checkpoint", str(tmp_path / "run"), "--repo-id", "alice/cifarnets-cnn",
                     "--dry-run"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.split("\n\n")[0].splitlines()[1:]]
    assert listed == ["model.safetensors", "config.json", "history.json", "README.md"]
    assert "would upload to alice/cifarnets-cnn (public model repository)" in out
    assert "----- README.md -----\n---\n" in out and "# CNN for CIFAR-10" in out


def test_cli_push_uploads_with_the_default_api(tmp_path, capsys, monkeypatch):
    make_checkpoint(tmp_path / "run", "cnn")
    api = FakeApi()
    monkeypatch.setattr(hub, "HfApi", lambda: api)
    assert cli.main(["push", "--checkpoint", str(tmp_path / "run"), "--repo-id", "alice/cifarnets-cnn"]) == 0
    assert "pushed" in capsys.readouterr().out and len(pushed_files(api)) == 4


def test_cli_push_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["push", "--checkpoint", str(tmp_path / "none"), "--repo-id", "alice/x", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "not a complete checkpoint folder" in err


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
