"""Training runs started from the app: each one a `python -m cifarnets train` child process in its own
run folder under runs/, watched through the files it writes there.

A Streamlit script reruns on every click and every browser session runs its own copy, so nothing
about a run lives in memory: the folder is the truth. job.json says how the run was started (and
its process id), status.json and history.json are written by the trainer, train.log holds its
output (the place to look for an error). Any session, or a reloaded page, finds the same runs.
Which run a network uses in place of its shipped checkpoint is kept in runs/active.json.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .fileio import read_json, write_json
from .models import KEYS, label
from .paths import DEFAULT_DATA, project_root, runs_dir
from .runfolder import CONFIG_FILE, MODEL_FILE, STATE_FILE, STATUS_FILE, read_history
from .runfolder import process_alive as alive  # the run lock's own test for a live process

JOB_FILE = "job.json"
LOG_FILE = "train.log"
ACTIVE_FILE = "active.json"

# Popen objects of the children this process started: polled so finished ones are reaped, not left
# as zombies for as long as the app runs. Runs started by another app process are watched by pid.
_children: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class TrainRequest:
    """What the sidebar asks for; None means the recipe's own value (or the CLI's default data)."""

    model: str
    recipe: str = "modern"
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    data: str | None = None
    device: str = "auto"
    seed: int = 0

    def argv(self, out: Path, resume: bool = False) -> list[str]:
        args = ["train", "--model", self.model, "--recipe", self.recipe, "--out", str(out),
                "--device", self.device, "--seed", str(self.seed)]
        for flag, value in (("--epochs", self.epochs), ("--lr", self.lr), ("--batch-size", self.batch_size),
                            ("--data", self.data)):
            if value is not None and value != "":
                args += [flag, str(value)]
        return args + (["--resume"] if resume else [])


@dataclass
class Run:
    """One run folder, read from disk. `state`: starting | running | stopped | finished | failed."""

    folder: Path
    job: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def model(self) -> str:
        return self.job.get("request", {}).get("model") or self.status.get("model") or ""

    @property
    def label(self) -> str:
        return label(self.model) if self.model in KEYS else self.model

    @property
    def recipe(self) -> str:
        return self.job.get("request", {}).get("recipe") or self.status.get("recipe") or ""

    @property
    def pid(self) -> int | None:
        return self.job.get("pid") or self.status.get("pid")

    @property
    def alive(self) -> bool:
        return bool(self.pid) and alive(self.pid)

    @property
    def state(self) -> str:
        written = self.status.get("state")
        if self.alive:
            # A resumed run keeps the old "stopped" status until the trainer has loaded its data.
            return "running" if written == "running" else "starting"
        if written in ("finished", "failed", "stopped"):
            return written
        if self.job.get("cancelled"):
            return "stopped"  # cancelled before the trainer could save: resuming starts it afresh
        return "failed"  # gone while "running", or before it ever wrote a status

    @property
    def error(self) -> str:
        """Why a failed run failed, in one line: the trainer's own words where it left them."""
        if self.state != "failed":
            return ""
        return self.status.get("error") or error_from_log(self.folder / LOG_FILE)

    @property
    def has_checkpoint(self) -> bool:
        return (self.folder / MODEL_FILE).exists() and (self.folder / CONFIG_FILE).exists()

    @property
    def resumable(self) -> bool:
        return self.state in ("stopped", "failed") and (self.folder / STATE_FILE).exists()

    @property
    def started(self) -> float:
        return float(self.job.get("started") or self.folder.stat().st_mtime)

    def history(self) -> list[dict]:
        return read_history(self.folder)

    def progress(self) -> float:
        """Fraction of the whole run done, 0..1, from the last status."""
        s = self.status
        epochs, steps = s.get("epochs") or 0, s.get("steps") or 0
        if self.state == "finished":
            return 1.0
        if not epochs or not steps:
            return 0.0
        # status "epoch" counts epochs begun (1-based) while running, epochs done once stopped
        done = (s.get("epoch", 0) - (1 if s.get("state") == "running" and s.get("step") else 0)) * steps
        return max(0.0, min(1.0, (done + (s.get("step") or 0)) / (epochs * steps)))


def error_from_log(path: Path, limit: int = 300) -> str:
    """The CLI's `error: ...` line, else a traceback's last line, else the log's last line."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "the training process ended without writing a log"
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if errors:
        return errors[-1].removeprefix("error:").strip()[:limit]
    if lines:
        return f"the training process ended unexpectedly: {lines[-1][:limit]}"
    return "the training process ended before writing anything (see its train.log)"


def device_choices() -> list[str]:
    """What the trainer can be asked to run on here."""
    import torch

    return (["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
            + (["mps"] if torch.backends.mps.is_available() else []))


def check(request: TrainRequest) -> str:
    """Why this request cannot start, in one line; "" when it can. The trainer checks the rest itself."""
    if request.model not in KEYS:
        return f"unknown network {request.model!r}"
    if request.epochs is not None and request.epochs < 1 or request.batch_size is not None and request.batch_size < 1:
        return "epochs and batch size must be at least 1"
    if request.lr is not None and not request.lr > 0:
        return "the learning rate must be above 0"
    if request.data is not None and request.data != DEFAULT_DATA:
        if not request.data.strip():
            return "enter the path of the training data (an image-folder tree, or an archive of one)"
        if not Path(request.data).expanduser().exists():
            return f"{request.data} does not exist on this machine"
    return ""


# ---------------------------------------------------------------- starting and stopping

def _spawn(folder: Path, argv: list[str]) -> int:
    """Start the trainer detached from this process: its own session, so a Ctrl-C in the terminal that
    runs Streamlit, or Streamlit stopping, does not kill the run; a log file for what it prints."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])  # the package's parent: `-m cifarnets` finds this copy
    env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
    env["PYTHONUNBUFFERED"] = "1"
    with open(folder / LOG_FILE, "ab") as log:
        log.write(f"$ python -m cifarnets {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "cifarnets", *argv], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=project_root(), env=env, start_new_session=True)
    _children[proc.pid] = proc
    return proc.pid


def start(request: TrainRequest, runs: Path | None = None) -> Run:
    """Create a fresh run folder and start training into it."""
    if request.model not in KEYS:
        raise ValueError(f"unknown network {request.model!r}")
    if request.data and request.data != DEFAULT_DATA:  # the child runs elsewhere: give it an absolute path
        request = replace(request, data=str(Path(request.data).expanduser().resolve()))
    runs = Path(runs or runs_dir())
    runs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = runs / f"{request.model}-{request.recipe}-{stamp}-{secrets.token_hex(2)}"
    folder.mkdir()
    job = {"request": asdict(request), "started": time.time()}
    write_json(folder / JOB_FILE, job)
    job["pid"] = _spawn(folder, request.argv(folder))
    write_json(folder / JOB_FILE, job)
    return load_run(folder)


def resume(run: Run) -> Run:
    """Continue a stopped (or failed) run in its own folder, where its resumable state is."""
    if run.alive:
        return run
    request = TrainRequest(**run.job["request"])
    job = dict(run.job, cancelled=False, resumed=time.time())
    job["pid"] = _spawn(run.folder, request.argv(run.folder, resume=True))
    write_json(run.folder / JOB_FILE, job)
    return load_run(run.folder)


def cancel(run: Run) -> bool:
    """Ask the trainer to stop: SIGTERM makes it finish the current step, save its state and exit 0."""
    if not run.alive:
        return False
    write_json(run.folder / JOB_FILE, dict(run.job, cancelled=True))
    try:
        os.kill(run.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def wait(run: Run, timeout: float) -> Run:
    """Block until the run's process has ended (or `timeout` seconds passed); the run as it is then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap()
        current = load_run(run.folder)
        if not current.alive:
            return current
        time.sleep(0.2)
    return load_run(run.folder)


def reap() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


# ---------------------------------------------------------------- reading runs

def _read(path: Path) -> dict:
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_run(folder: Path) -> Run:
    return Run(Path(folder), _read(Path(folder) / JOB_FILE), _read(Path(folder) / STATUS_FILE))


def list_runs(runs: Path | None = None) -> list[Run]:
    """Every run folder (started here or by the CLI into runs/), newest first."""
    reap()
    runs = Path(runs or runs_dir())
    if not runs.is_dir():
        return []
    found = [load_run(p) for p in runs.iterdir()
             if p.is_dir() and any((p / f).exists() for f in (JOB_FILE, STATUS_FILE, CONFIG_FILE))]
    found = [r for r in found if r.model in KEYS]
    return sorted(found, key=lambda r: r.started, reverse=True)


# ---------------------------------------------------------------- the active checkpoint of each network

def active(runs: Path | None = None) -> dict[str, Path]:
    """{network key: run folder} for networks that use one of the user's runs instead of the shipped
    checkpoint; entries whose folder lost its checkpoint are ignored."""
    runs = Path(runs or runs_dir())
    chosen = _read(runs / ACTIVE_FILE)
    return {key: runs / name for key, name in chosen.items()
            if key in KEYS and isinstance(name, str) and (runs / name / MODEL_FILE).exists()}


def set_active(run: Run, runs: Path | None = None) -> None:
    """Make a run's checkpoint the one its network classifies with, for every session, across reloads."""
    if run.model not in KEYS:
        raise ValueError(f"{run.name} names no known network")
    if not run.has_checkpoint or run.alive:
        raise ValueError(f"{run.name} has no finished checkpoint to use yet")
    runs = Path(runs or runs_dir())
    chosen = _read(runs / ACTIVE_FILE)
    chosen[run.model] = run.name
    write_json(runs / ACTIVE_FILE, chosen)


def clear_active(key: str, runs: Path | None = None) -> None:
    """Go back to the shipped checkpoint for `key`."""
    runs = Path(runs or runs_dir())
    chosen = _read(runs / ACTIVE_FILE)
    if chosen.pop(key, None) is not None:
        write_json(runs / ACTIVE_FILE, chosen)
