"""Public mode's visitors as the tests set them up: run folders whose trainer lives (a sleeping stand-in) or has
finished, the first page a visitor opens, and what its sidebar says."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from cifarnets import CIFAR10_CLASSES
from cifarnets.models import build
from cifarnets.runs import record
from cifarnets.runs.record import JOB_FILE
from cifarnets.store.checkpoints import make_config, save_checkpoint
from cifarnets.store.fileio import write_json
from helpers.app import APP

TIMEOUT = 60
RUN_LIMIT = 180  # seconds for a run of a few steps on tiny data: the queue and its worker start on a busy machine

SLEEPER = "import time; time.sleep(120)"
# A trainer stuck where SIGTERM cannot reach it: it says "ready" once it ignores the signal.
DEAF = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"


def live_job(runs: Path, sleepers: list, owner: str = "", name: str = "cnn-fast-live", script: str = SLEEPER,
             job: dict | None = None, **status) -> record.Run:
    """A run folder whose process lives: a sleeping child stands in for the trainer; `job` adds to its job.json."""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    sleepers.append(proc)
    folder = runs / name
    folder.mkdir(parents=True)
    write_json(folder / JOB_FILE, {"request": {"model": "cnn", "recipe": "fast"}, "pid": proc.pid,
                                   "started": time.time()} | ({"owner": owner} if owner else {}) | (job or {}))
    write_json(folder / record.STATUS_FILE, {"state": "running", "model": "cnn", "recipe": "fast"} | status)
    return record.load_run(folder)


def finished_run(runs: Path, name: str, acc: float, owner: str = "", key: str = "cnn") -> record.Run:
    """A finished run folder with a checkpoint that claims `acc` on the test set."""
    folder = runs / name
    model = build(key)
    config = make_config(key, model, classes=list(CIFAR10_CLASSES), recipe={"name": "fast"},
                         data={"source": "generated"}, metrics={"test_acc": acc}, device="cpu", epochs_done=1, seed=0)
    save_checkpoint(folder, model, config, [{"epoch": 1, "train_loss": 2.0, "train_acc": acc, "test_loss": 2.0,
                                             "test_acc": acc, "lr": 0.1}])
    write_json(folder / JOB_FILE, {"request": {"model": key, "recipe": "fast"}, "started": time.time()}
               | ({"owner": owner} if owner else {}))
    write_json(folder / record.STATUS_FILE, {"state": "finished", "model": key, "recipe": "fast"})
    return record.load_run(folder)


def app() -> AppTest:
    """The first page a visitor opens, drawn."""
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()


def sidebar_text(at) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "error")
                     for e in getattr(at.sidebar, kind))
