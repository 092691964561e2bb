"""Shared fixtures: tiny generated image-folder data sets, a private data cache per test, a private runs folder
(public mode's too, and stand-ins for its trainers), an offline Hugging Face cache, and the app served for a
browser."""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY_CLASSES = ("circle", "square", "stripes")
# The tests that draw random cases (the image fuzzer, the SIGKILL moments) draw the same ones on every run,
# so a red run is repeatable; FRESH_SEEDS=1 draws new ones, for a longer hunt (docs/testing.md).
FRESH_SEEDS = os.environ.get("FRESH_SEEDS") == "1"


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A private runs folder (and no shipped checkpoints); any run a test leaves going is ended after it, and the
    training queue (Redis and its workers) the app started for it."""
    from cifarnets.runs import engine, record

    folder = tmp_path / "runs"
    monkeypatch.setenv("CIFARNETS_RUNS", str(folder))
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(tmp_path / "no-checkpoints"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")
    yield folder
    engine.stop(folder)
    for run in record.list_runs(folder):
        if run.alive:
            os.kill(run.pid, signal.SIGKILL)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Every test decodes into its own cache and never downloads: nothing reaches the network."""
    monkeypatch.setenv("CIFARNETS_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("CIFARNETS_DATA", raising=False)


def tiny_image(cls: int, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """A learnable picture: each class has its own colour and shape, plus noise."""
    a = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    a[..., cls % 3] += 150
    if cls % 2:
        a[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 240
    return Image.fromarray(a)


def make_image_folder(root: Path, classes=TINY_CLASSES, n_train: int = 24, n_test: int = 8, size: int = 32,
                      seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for i, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                tiny_image(i, rng, size).save(d / f"{j:03d}.png")
    return root


def make_tar(folder: Path, out: Path, top: str | None = None) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for f in sorted(folder.rglob("*")):
            rel = f.relative_to(folder).as_posix()
            tar.add(f, arcname=f"{top}/{rel}" if top else rel, recursive=False)
    return out


def make_zip(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as z:
        for f in sorted(folder.rglob("*")):
            z.write(f, f.relative_to(folder).as_posix())
    return out


@pytest.fixture
def sleepers():
    """Stand-ins for trainers (helpers.visitors.live_job), killed after the test."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture
def public(runs, monkeypatch, tmp_path):
    """Public mode, training on a tiny data set the operator configured; the runs folder."""
    monkeypatch.setenv("CIFARNETS_PUBLIC", "1")
    monkeypatch.setenv("CIFARNETS_DATA", str(make_image_folder(tmp_path / "operator-data")))
    return runs


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """HF_HUB_OFFLINE=1 and a private, empty HF cache (the Hub tests use it for every test). huggingface_hub
    reads both at import, so the constants it already read are patched too."""
    from huggingface_hub import constants

    from cifarnets.store import hub

    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv(hub.ENV_VAR, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return home / "hub"


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "tiny")


@pytest.fixture
def fixed_threads(monkeypatch):
    """For fits compared with each other: all compute with this process's thread count. Otherwise each run
    takes the cores idle when it starts (threads.py), and sums split across another count round differently,
    so the comparison would depend on what else the machine is doing."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))


@pytest.fixture(scope="module")
def one_thread():
    """One compute thread for a module: on a machine shared with training runs, two threads wait on each other
    (threads.py)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def restore_signals():
    """cli train installs its own SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


@pytest.fixture
def app_url(tmp_path):
    """`streamlit run app.py` on a free localhost port, with tiny checkpoints for all four networks: its URL."""
    from helpers.app import make_checkpoints

    from cifarnets.perf.loadtest import serve

    env = dict(os.environ, CIFARNETS_CHECKPOINTS=str(make_checkpoints(tmp_path / "checkpoints")),
               CIFARNETS_RUNS=str(tmp_path / "runs"), CIFARNETS_DEVICE="cpu")
    with serve(env=env, log=tmp_path / "streamlit.log") as url:
        yield url
