"""A run, read from disk: the typed records of the run layer, and what a run and a race share (race.py holds a
race's own: RaceRequest, RaceStatus, Race).

A Streamlit script reruns on every click and every browser session runs its own copy, so nothing about a job lives
in memory: its folder under runs/ is the truth. job.json says how the app started it (its request, its process
id; in public mode the visitor's owner token and its time allowance and deadline, which the child is given too
and stops itself at), a status file is written by the child (a run's status.json: store.runfolder.RunStatus; a
race's race.json: race.RaceStatus), and train.log holds its output (the place to look for an error).

The records, each defined once: TrainRequest (what starts a run: request.py), RunStatus (what the trainer writes),
and Run (a run folder read whole: a Job, the base a race shares). Starting and stopping
them is jobs.py's, queueing them engine.py's.

A network trained in a race is an ordinary run in a folder inside the race's (runs/race-.../cnn-race-.../), listed
with the others and usable alike; it is stopped and continued with its race. Which run a network uses in place of
its shipped checkpoint is kept in runs/active.json.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..models import KEYS, label
from ..paths import runs_dir
from ..store.fileio import read_json_or, write_json
from ..store.record import CheckpointRecord, written
from ..store.runfolder import MODEL_FILE, STATE_FILE, STATUS_FILE, RunStatus, read_history
from ..store.runfolder import process_alive as alive  # the run lock's own test for a live process
from .request import TrainRequest

JOB_FILE = "job.json"
LOG_FILE = "train.log"
RACE_FILE = "race.json"  # in a race's folder: the race's state, its order, the network it is on
ACTIVE_FILE = "active.json"
TIME_LIMIT = "time limit"  # job.json's stopped_by when the server's time limit stopped a job from outside
LIVE = ("starting", "running", "testing")  # the states of a job whose process is still writing its folder
QUEUED = "queued"  # waiting in the engine's queue (engine.py) for a worker
BEAT_FILE = "worker.beat"  # touched by the worker that trains a job: how a job on another machine is alive
BEAT_STALE_S = 30.0
# The machine a trainer runs on, as job.json records it: a worker started with $CIFARNETS_HOST names its machine so
# (several workers on one machine can stand in for several machines).
HOST = os.environ.get("CIFARNETS_HOST") or socket.gethostname()

# Popen objects of the children this process started (jobs.py adds each): polled so finished ones are reaped,
# not left as zombies for as long as the app runs. Jobs started by another app process are watched by pid.
children: dict[int, subprocess.Popen] = {}


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_object(path: Path) -> dict:
    """A JSON object from a file that may be missing or bad: {} then."""
    return read_json_or(path, dict)


# ---------------------------------------------------------------- a job folder, read whole

@dataclass
class Job:
    """A job folder, read from disk. `state`: one of LIVE while its process runs, else stopped | finished | failed."""

    folder: Path
    job: dict = field(default_factory=dict)  # job.json: how the app started it
    status: RunStatus = field(default_factory=RunStatus)  # what its child last wrote (a race's: race.RaceStatus)

    STATUS: ClassVar[type]  # the child's status record: RunStatus for a run, race.RaceStatus for a race
    REQUEST: ClassVar[type]  # the request record that starts one: its argv() is the child's command line

    @classmethod
    def load(cls, folder: Path) -> Job:
        folder = Path(folder)
        return cls(folder, read_object(folder / JOB_FILE), cls.STATUS.read(folder))

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def in_race(self) -> str:
        """The race that starts and stops this job, "" when it is its own."""
        return ""

    @property
    def owner(self) -> str:
        """The token of the browser session that started it (public mode), "" for everyone's."""
        owner = self.job.get("owner")
        return owner if isinstance(owner, str) else ""

    @property
    def request(self):
        """How it was started (job.json)."""
        return self.REQUEST.from_json(self.job.get("request") or {})

    @property
    def pid(self) -> int | None:
        return self.job.get("pid") or self.status.pid

    @property
    def here(self) -> bool:
        """Whether its trainer runs (or ran) on this machine; one a worker elsewhere trains is watched by the
        beat its worker keeps (the runs folder is shared)."""
        return self.job.get("host", HOST) == HOST

    @property
    def alive(self) -> bool:
        """Whether a process is still writing this folder."""
        if not self.pid:
            return False
        return alive(self.pid) if self.here else beating(self.folder)

    @property
    def queued(self) -> bool:
        """Waiting in the engine's queue: no trainer yet."""
        return bool(self.job.get("queued")) and not self.job.get("pid")  # status.json keeps the last trainer's

    @property
    def state(self) -> str:
        if self.queued:
            return QUEUED
        return run_state(self.alive, self.status.state, self.job.get("cancelled"))

    @property
    def log(self) -> Path:
        return self.folder / LOG_FILE

    @property
    def error(self) -> str:
        """Why a failed job failed, in one line: the child's own words where it left them."""
        if self.state != "failed":
            return ""
        return self.status.error or error_from_log(self.log)

    @property
    def started(self) -> float:
        return float(self.job.get("started") or self.folder.stat().st_mtime)

    @property
    def deadline(self) -> float | None:
        """When the child must stop (public mode: its start, or its resume, plus its allowance); None locally."""
        deadline = self.job.get("deadline")
        return float(deadline) if is_number(deadline) else None

    @property
    def overran(self) -> bool:
        """Whether the server's time limit stopped it: the child itself, at its deadline (it was not cancelled,
        and it last wrote its status past the deadline), or tidying from outside (expiry.py, stopped_by)."""
        if self.state != "stopped" or self.deadline is None:
            return False
        updated = self.status.updated
        return (self.job.get("stopped_by") == TIME_LIMIT
                or not self.job.get("cancelled") and updated is not None and updated >= self.deadline)

    @property
    def stopped_why(self) -> str:
        """Why a stopped job stopped, in words for its card, when it was not its visitor's Cancel; else ""."""
        return "ran past this server's time limit" if self.overran else ""

    def progress(self) -> float:
        raise NotImplementedError


@dataclass
class Run(Job):
    """One run folder, read from disk. `state`: starting | running | testing | stopped | finished | failed."""

    status: RunStatus = field(default_factory=RunStatus)
    race: str = ""  # the race folder's name, for a network trained in a race

    STATUS = RunStatus
    REQUEST = TrainRequest

    @classmethod
    def load(cls, folder: Path) -> Run:
        folder = Path(folder)
        race = folder.parent.name if is_race(folder.parent) else ""
        return cls(folder, read_object(folder / JOB_FILE), RunStatus.read(folder), race)

    @property
    def in_race(self) -> str:
        return self.race

    @property
    def owner(self) -> str:
        """A race's network belongs to whoever started the race."""
        return read_object(self.folder.parent / JOB_FILE).get("owner", "") if self.race else super().owner

    @property
    def model(self) -> str:
        return self.job.get("request", {}).get("model") or self.status.model

    @property
    def label(self) -> str:
        return label(self.model) if self.model in KEYS else self.model

    @property
    def recipe(self) -> str:
        return self.job.get("request", {}).get("recipe") or self.status.recipe

    @property
    def request(self) -> TrainRequest:
        """How it was started: job.json, else (a run the CLI started) the network and recipe its trainer wrote."""
        return TrainRequest.from_json(self.job.get("request") or {"model": self.model, "recipe": self.recipe or "fast"})

    @property
    def alive(self) -> bool:
        """A race's process goes on to the next network once one has finished: nothing writes a finished
        member any more."""
        if self.race and self.status.state in ("finished", "failed"):
            return False
        return super().alive

    @property
    def log(self) -> Path:
        return (self.folder.parent if self.race else self.folder) / LOG_FILE

    @property
    def has_checkpoint(self) -> bool:
        return (self.folder / MODEL_FILE).exists() and written(self.folder)

    @property
    def test_acc(self) -> float | None:
        """The finished checkpoint's test accuracy (config.json), as Classify's networks state theirs."""
        return CheckpointRecord.read_or_empty(self.folder).test_acc

    @property
    def resumable(self) -> bool:
        return self.state in ("stopped", "failed") and (self.folder / STATE_FILE).exists()

    def history(self) -> list[dict]:
        return read_history(self.folder)

    def progress(self) -> float:
        """Fraction of the whole run done, 0..1, from the last status."""
        s = self.status
        epochs, steps = s.epochs or 0, s.steps or 0
        if self.state == "finished":
            return 1.0
        if not epochs or not steps:
            return 0.0
        # status "epoch" counts epochs begun (1-based) while running, epochs done once stopped
        done = (s.epoch - (1 if s.state in ("running", "testing") and s.step else 0)) * steps
        return max(0.0, min(1.0, (done + s.step) / (epochs * steps)))


def run_state(process_alive: bool, written: str | None, cancelled: bool) -> str:
    """starting | running | testing | stopped | finished | failed, of a run or a race, from its files and its
    process. "testing": the trainer is measuring an epoch on the test split (the last one as the app answers,
    minutes for a ResNet on a CPU), or writing its last files."""
    if process_alive:
        if written in ("running", "testing"):
            return written
        # A resumed run keeps the old "stopped" status until the trainer has loaded its data; a finished one
        # is still writing its last files.
        return "testing" if written == "finished" else "starting"
    if written in ("finished", "failed", "stopped"):
        return written
    if cancelled:
        return "stopped"  # cancelled before the trainer could save: resuming starts it afresh
    return "failed"  # gone while "running", or before it ever wrote a status


def error_from_log(path: Path, limit: int = 600) -> str:
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


def beating(folder: Path) -> bool:
    """Whether a worker (on any machine that shares the runs folder) still watches this folder's trainer."""
    try:
        return time.time() - (Path(folder) / BEAT_FILE).stat().st_mtime < BEAT_STALE_S
    except OSError:
        return False


def reap() -> None:
    for pid, proc in list(children.items()):
        if proc.poll() is not None:
            del children[pid]


# ---------------------------------------------------------------- finding runs

def is_race(folder: Path) -> bool:
    return (Path(folder) / RACE_FILE).exists()


def is_run(folder: Path) -> bool:
    return folder.is_dir() and (any((folder / f).exists() for f in (JOB_FILE, STATUS_FILE)) or written(folder))


def load_run(folder: Path) -> Run:
    return Run.load(folder)


def list_runs(runs: Path | None = None, races: bool = True) -> list[Run]:
    """Every run folder (started here or by the CLI into runs/), newest first; with `races`, the
    networks trained in races too."""
    reap()
    runs = Path(runs or runs_dir())
    if not runs.is_dir():
        return []
    found = []
    for p in runs.iterdir():
        if is_race(p):
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
