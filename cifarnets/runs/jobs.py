"""Training runs started from the app: each one a `python -m cifarnets train` child process in its own
run folder under runs/, watched through the files it writes there.

A Streamlit script reruns on every click and every browser session runs its own copy, so nothing
about a run lives in memory: the folder is the truth. job.json says how the run was started (and
its process id), status.json and history.json are written by the trainer, train.log holds its
output (the place to look for an error). Any session, or a reloaded page, finds the same runs.
Which run a network uses in place of its shipped checkpoint is kept in runs/active.json.

A race (`python -m cifarnets race`, started and watched by racejobs.py) trains the four networks one
after another in one process, each into its own run folder inside the race's folder:
runs/race-.../cnn-race-.../ and so on. Each is an ordinary run, listed with the others and usable alike;
it is stopped and continued with its race.
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

from ..models import KEYS, label
from ..paths import DEFAULT_DATA, project_root, runs_dir
from ..store.fileio import read_json, write_json
from ..store.runfolder import CONFIG_FILE, MODEL_FILE, STATE_FILE, STATUS_FILE, read_history
from ..store.runfolder import process_alive as alive  # the run lock's own test for a live process
from ..training import recipes

JOB_FILE = "job.json"
LOG_FILE = "train.log"
ACTIVE_FILE = "active.json"
RACE_FILE = "race.json"  # in a race's folder: the race's state, its order, the network it is on

# Popen objects of the children this process started: polled so finished ones are reaped, not left
# as zombies for as long as the app runs. Runs started by another app process are watched by pid.
_children: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class TrainRequest:
    """What the sidebar asks for; None means the recipe's own value (or the CLI's default data)."""

    model: str
    recipe: str = "fast"
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
    race: str = ""  # the race folder's name, for a network trained in a race

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
        """Whether a process is still writing this folder. A race's process goes on to the next network
        once one has finished: nothing writes a finished member any more."""
        if self.race and self.status.get("state") in ("finished", "failed"):
            return False
        return bool(self.pid) and alive(self.pid)

    @property
    def state(self) -> str:
        return run_state(self.alive, self.status.get("state"), self.job.get("cancelled"))

    @property
    def error(self) -> str:
        """Why a failed run failed, in one line: the trainer's own words where it left them."""
        if self.state != "failed":
            return ""
        return self.status.get("error") or error_from_log((self.folder.parent if self.race else self.folder) / LOG_FILE)

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


def run_state(process_alive: bool, written: str | None, cancelled: bool) -> str:
    """starting | running | stopped | finished | failed, of a run or a race, from its files and its process."""
    if process_alive:
        # A resumed run keeps the old "stopped" status until the trainer has loaded its data.
        return "running" if written == "running" else "starting"
    if written in ("finished", "failed", "stopped"):
        return written
    if cancelled:
        return "stopped"  # cancelled before the trainer could save: resuming starts it afresh
    return "failed"  # gone while "running", or before it ever wrote a status


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
    if request.recipe not in recipes.RECIPES:
        return f"unknown recipe {request.recipe!r}; choose one of {', '.join(recipes.RECIPES)}"
    return distillation_problem(request)


def distillation_problem(request: TrainRequest) -> str:
    """Why the request's recipe cannot distil from its teacher: the teacher cannot be loaded, or was trained
    on other classes than the data's, where the data's folder names tell them without decoding it (the
    trainer checks every source again); "" otherwise."""
    recipe = recipes.get(request.recipe, request.model)
    if not recipe.teacher:
        return ""
    from ..data.sources import list_classes  # here, not above: importing the job runner must not load torch
    from ..training.distill import teacher_problem

    problem = teacher_problem(recipe, list_classes(request.data))
    return f"{label(request.model)}: {problem}" if problem else ""


# ---------------------------------------------------------------- starting and stopping

def _spawn(folder: Path, argv: list[str]) -> int:
    """Start the trainer detached from this process: its own session, so a Ctrl-C in the terminal that
    runs Streamlit, or Streamlit stopping, does not kill the run; a log file for what it prints."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the package's parent: `-m cifarnets` finds this copy
    env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
    env["PYTHONUNBUFFERED"] = "1"
    with open(folder / LOG_FILE, "ab") as log:
        log.write(f"$ python -m cifarnets {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "cifarnets", *argv], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=project_root(), env=env, start_new_session=True)
    _children[proc.pid] = proc
    return proc.pid


def new_folder(runs: Path | None, stem: str) -> Path:
    """A fresh folder under runs/ named after what it holds and when it started."""
    runs = Path(runs or runs_dir())
    runs.mkdir(parents=True, exist_ok=True)
    folder = runs / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    folder.mkdir()
    return folder


def absolute_data(data: str | None) -> str | None:
    """The child runs in the project root, not here: give it an absolute path."""
    return str(Path(data).expanduser().resolve()) if data and data != DEFAULT_DATA else data


def launch(folder: Path, job: dict, argv: list[str]) -> None:
    write_json(folder / JOB_FILE, job)  # before the process: a watcher must never see a folder it cannot read
    job["pid"] = _spawn(folder, argv)
    write_json(folder / JOB_FILE, job)


def start(request: TrainRequest, runs: Path | None = None) -> Run:
    """Create a fresh run folder and start training into it."""
    if request.model not in KEYS:
        raise ValueError(f"unknown network {request.model!r}")
    request = replace(request, data=absolute_data(request.data))
    folder = new_folder(runs, f"{request.model}-{request.recipe}")
    launch(folder, {"request": asdict(request), "started": time.time()}, request.argv(folder))
    return load_run(folder)


def resume(run: Run) -> Run:
    """Continue a stopped (or failed) run in its own folder, where its resumable state is."""
    if run.race:
        raise ValueError(f"{run.name} trains in the race {run.race}: continue the race")
    if run.alive:
        return run
    request = TrainRequest(**run.job["request"])
    launch(run.folder, dict(run.job, cancelled=False, resumed=time.time()),
            request.argv(run.folder, resume=True))
    return load_run(run.folder)


def cancel(run) -> bool:
    """Ask the trainer to stop: SIGTERM makes it finish the current step, save its state and exit 0.
    A race (racejobs.Race) stops the network it is training the same way, and starts no further one."""
    if getattr(run, "race", ""):
        raise ValueError(f"{run.name} trains in the race {run.race}: stop the race")
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

def read_object(path: Path) -> dict:
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_run(folder: Path) -> Run:
    folder = Path(folder)
    race = folder.parent.name if _is_race(folder.parent) else ""
    return Run(folder, read_object(folder / JOB_FILE), read_object(folder / STATUS_FILE), race)


def is_run(folder: Path) -> bool:
    return folder.is_dir() and any((folder / f).exists() for f in (JOB_FILE, STATUS_FILE, CONFIG_FILE))


def _is_race(folder: Path) -> bool:
    return (folder / RACE_FILE).exists()


def list_runs(runs: Path | None = None, races: bool = True) -> list[Run]:
    """Every run folder (started here or by the CLI into runs/), newest first; with `races`, the
    networks trained in races too."""
    reap()
    runs = Path(runs or runs_dir())
    if not runs.is_dir():
        return []
    found = []
    for p in runs.iterdir():
        if _is_race(p):
            found += [load_run(m) for m in p.iterdir() if races and is_run(m)]
        elif is_run(p):
            found.append(load_run(p))
    found = [r for r in found if r.model in KEYS]
    return sorted(found, key=lambda r: r.started, reverse=True)


# ---------------------------------------------------------------- the active checkpoint of each network

def active(runs: Path | None = None) -> dict[str, Path]:
    """{network key: run folder} for networks that use one of the user's runs instead of the shipped
    checkpoint; entries whose folder lost its checkpoint are ignored."""
    runs = Path(runs or runs_dir())
    chosen = read_object(runs / ACTIVE_FILE)
    # A name is a folder under runs/ (race/network for a race's network), never a way out of it.
    return {key: runs / name for key, name in chosen.items()
            if key in KEYS and isinstance(name, str) and name and not Path(name).is_absolute()
            and ".." not in Path(name).parts and (runs / name / MODEL_FILE).exists()}


def set_active(run: Run, runs: Path | None = None) -> None:
    """Make a run's checkpoint the one its network classifies with, for every session, across reloads."""
    if run.model not in KEYS:
        raise ValueError(f"{run.name} names no known network")
    if not run.has_checkpoint or run.alive:
        raise ValueError(f"{run.name} has no finished checkpoint to use yet")
    runs = Path(runs or runs_dir())
    chosen = read_object(runs / ACTIVE_FILE)
    chosen[run.model] = f"{run.race}/{run.name}" if run.race else run.name
    write_json(runs / ACTIVE_FILE, chosen)


def clear_active(key: str, runs: Path | None = None) -> None:
    """Go back to the shipped checkpoint for `key`."""
    runs = Path(runs or runs_dir())
    chosen = read_object(runs / ACTIVE_FILE)
    if chosen.pop(key, None) is not None:
        write_json(runs / ACTIVE_FILE, chosen)

