"""Helpers for the app's tests: tiny checkpoints of freshly built networks, images in several formats,
and an AppTest of the app pointed at temporary checkpoint and run folders."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cifarnets import CIFAR10_CLASSES
from cifarnets.models import KEYS, build
from cifarnets.runs import record
from cifarnets.store.checkpoints import make_config, save_checkpoint
from cifarnets.store.fileio import write_json
from cifarnets.store.runfolder import REPORT_HISTORY_FILE
from cifarnets.ui.sidebar import TIMING_NOTE

APP = Path(__file__).resolve().parents[2] / "app.py"
PAGES = {"Architecture": "app_pages/1_Architecture.py", "Training curves": "app_pages/2_Training_curves.py",
         "Classify": "app_pages/3_Classify.py", "Why they differ": "app_pages/4_Why_they_differ.py",
         "Stress test": "app_pages/5_Stress_test.py"}
LABELS = ("CNN", "ResNet", "DenseNet", "SE-ResNet")


def history(epochs: int = 3, start_acc: float = 0.3) -> list[dict]:
    return [{"epoch": e, "train_loss": 2.0 / e, "train_acc": start_acc + 0.1 * e, "test_loss": 2.1 / e,
             "test_acc": start_acc + 0.09 * e, "lr": 0.1} for e in range(1, epochs + 1)]


def make_checkpoints(folder: Path, keys=KEYS, report_history: bool = False) -> Path:
    """A checkpoint folder per network, holding a freshly built (untrained) model: loads like a real one."""
    for i, key in enumerate(keys):
        torch.manual_seed(i)
        model = build(key)
        config = make_config(key, model, classes=list(CIFAR10_CLASSES), recipe={"name": "modern"},
                             data={"source": "generated"}, metrics={"test_acc": 0.5 + 0.1 * i}, device="cpu",
                             epochs_done=3, seed=0)
        save_checkpoint(folder / key, model, config, history())
        if report_history:
            write_json(folder / key / REPORT_HISTORY_FILE, history(start_acc=0.2))
    return folder


def image_bytes(fmt: str = "PNG", size=(64, 48), seed: int = 0, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


WHY_TABS = ("Gradient flow", "Cost", "Quality", "What they look at", "What every stage sees", "Feature reuse",
             "Unfamiliar inputs")


def open_tab(at, tab: str):
    """Why they differ with `tab` open: the page draws the open tab only, so each is opened as a click would."""
    at.session_state["tab"] = tab
    return at.run()


def texts(at) -> str:
    """Everything an AppTest page wrote as text, in one string to search."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def wait_for_state(load, folder: Path, states: tuple[str, ...], timeout: float, poll: float = 0.1):
    """Load a run or race folder again (reaping finished children) until its state is one of `states`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record.reap()
        current = load(folder)
        if current.state in states:
            return current
        time.sleep(poll)
    raise AssertionError(f"{current.name} stayed {current.state}; log:\n{(folder / record.LOG_FILE).read_text()}")




def until_timed(at, timeout: float = 120):
    """The sidebar times its training steps in a thread and says so until they are timed: run the page again
    until it shows the estimate (what the estimate decides, a refusal say, shows with it)."""
    deadline = time.monotonic() + timeout
    while any(c.value == TIMING_NOTE for c in at.sidebar.caption) and time.monotonic() < deadline:
        time.sleep(0.3)
        at.run()
    return at
