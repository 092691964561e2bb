"""Checkpoints as the Hub tests make them: a real untrained folder, the Hugging Face cache a download of it would
leave (laid out as https://huggingface.co/docs/hub/local-cache documents it:
models--OWNER--NAME/{blobs/<hash>, snapshots/<commit>/<file> -> ../../blobs/<hash>, refs/<branch>}), and a fake
HfApi that records what a push would send."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from cifarnets import CIFAR10_CLASSES
from cifarnets.models import build
from cifarnets.store import checkpoints as ckpt
from cifarnets.training import recipes

COMMIT = "a" * 40


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
