"""Pushing a checkpoint to the Hugging Face Hub, with no network: a fake HfApi records what would be sent, and the
pushed files are read back through the offline cache as a download would leave them."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.hub import FakeApi, make_checkpoint, pushed_files, put_in_cache, same_weights
from safetensors.torch import load_file, save_file

from cifarnets import cli
from cifarnets.models import build
from cifarnets.store import checkpoints as ckpt
from cifarnets.store import hub

pytestmark = pytest.mark.usefixtures("offline_hub")


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
