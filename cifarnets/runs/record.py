"""A run and a race, read from disk: the typed records of the run layer.

A Streamlit script reruns on every click and every browser session runs its own copy, so nothing about a job lives
in memory: its folder under runs/ is the truth. job.json says how the app started it (its request, its process
id; in public mode the visitor's owner token and its time allowance and deadline, which the child is given too
and stops itself at), a status file is written by the child (a run's status.json: store.runfolder.RunStatus; a
race's race.json: RaceStatus), and train.log holds its output (the place to look for an error).

The records, each defined once: TrainRequest and RaceRequest (what starts a run or a race, as job.json keeps it
and as the child's command line says it), RunStatus and RaceStatus (what the child writes), and Run and Race (a
folder read whole: a Job). Starting, queueing and stopping them is engine.py's.

A race (`python -m cifarnets race`: race.py) trains the four networks one after another in one process, each
into its own run folder inside the race's folder: runs/race-.../cnn-race-.../ and so on. Each is an ordinary
run, listed with the others and usable alike; it is stopped and continued with its race. Which run a network
uses in place of its shipped checkpoint is kept in runs/active.json.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

from ..models import KEYS, label
from ..paths import DEFAULT_DATA, runs_dir
from ..store.fileio import read_json_or, write_json
from ..store.runfolder import CONFIG_FILE, MODEL_FILE, STATE_FILE, STATUS_FILE, RunStatus, read_history
from ..store.runfolder import process_alive as alive  # the run lock's own test for a live process
from ..training import recipes

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
ORDER = KEYS  # a race's order, quickest first: the CNN's curve is on the chart within minutes
PREFIX = "race-"

# Popen objects of the children this process started (engine.py adds each): polled so finished ones are reaped,
# not left as zombies for as long as the app runs. Jobs started by another app process are watched by pid.
children: dict[int, subprocess.Popen] = {}


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_object(path: Path) -> dict:
    """A JSON object from a file that may be missing or bad: {} then."""
    return read_json_or(path, dict)


def _given(data, kind: type) -> dict:
    """The fields of the request dataclass `kind` in a JSON object (job.json's "request", race.json's)."""
    known = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in known} if isinstance(data, dict) else {}


def absolute_data(data: str | None) -> str | None:
    """The child runs in the project root, not here: give it an absolute path."""
    return str(Path(data).expanduser().resolve()) if data and data != DEFAULT_DATA else data


def _optional(value, kind: type):
    """A form's value as a request holds it: None for "the recipe's own" (an empty box's None or "")."""
    return None if value is None or value == "" else kind(value)


# ---------------------------------------------------------------- the requests

@dataclass(frozen=True)
class TrainRequest:
    """How a run is started; None means the recipe's own value (or the CLI's default data)."""

    model: str
    recipe: str = "fast"
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    data: str | None = None
    device: str = "auto"
    seed: int = 0

    @classmethod
    def of(cls, model: str, recipe: str = "fast", *, epochs=None, lr=None, batch_size=None, data: str | None = None,
           device: str = "auto", seed: int = 0) -> TrainRequest:
        """The one way a request is built from what a form or a race gives (numbers as widgets hand them back)."""
        return cls(model, recipe, _optional(epochs, int), _optional(lr, float), _optional(batch_size, int), data,
                   device, int(seed))

    @classmethod
    def from_json(cls, data) -> TrainRequest:
        """As job.json keeps it (asdict); a key it does not know, from another version, is left out."""
        return cls(**_given(data, cls))

    def argv(self, out: Path, resume: bool = False) -> list[str]:
        args = ["train", "--model", self.model, "--recipe", self.recipe, "--out", str(out),
                "--device", self.device, "--seed", str(self.seed)]
        for flag, value in (("--epochs", self.epochs), ("--lr", self.lr), ("--batch-size", self.batch_size),
                            ("--data", self.data)):
            if value is not None and value != "":
                args += [flag, str(value)]
        return args + (["--resume"] if resume else [])

    def planned(self) -> recipes.Recipe:
        """The recipe as this run trains it: the named one for its network, with the request's values."""
        return recipes.get(self.recipe, self.model, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size)


@dataclass(frozen=True)
class RaceRequest:
    """How a race is started: one recipe for all four; None means each network's recipe value."""

    recipe: str = "fast"
    epochs: int | None = None
    batch_size: int | None = None
    data: str | None = None
    device: str = "auto"
    seed: int = 0

    @classmethod
    def of(cls, recipe: str = "fast", *, epochs=None, batch_size=None, data: str | None = None,
           device: str = "auto", seed: int = 0) -> RaceRequest:
        return cls(recipe, _optional(epochs, int), _optional(batch_size, int), data, device, int(seed))

    @classmethod
    def from_json(cls, data) -> RaceRequest:
        return cls(**_given(data, cls))

    def member(self, key: str) -> TrainRequest:
        """The run the race trains `key` with."""
        return TrainRequest.of(key, self.recipe, epochs=self.epochs, batch_size=self.batch_size, data=self.data,
                               device=self.device, seed=self.seed)

    def argv(self, out: Path, resume: bool = False) -> list[str]:
        args = ["race", "--recipe", self.recipe, "--out", str(out), "--device", self.device, "--seed", str(self.seed)]
        for flag, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size), ("--data", self.data)):
            if value is not None and value != "":
                args += [flag, str(value)]
        return args + (["--resume"] if resume else [])


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


def check_race(request: RaceRequest) -> str:
    """Why this race cannot start, in one line; "" when it can. Every network is checked, since a recipe may
    train one of them differently (the modern DenseNet distils from the ResNet)."""
    return next((p for p in (check(request.member(key)) for key in ORDER) if p), "")


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


# ---------------------------------------------------------------- what a race writes

@dataclass(frozen=True)
class RaceStatus:
    """race.json, typed: what the race (race.py) last said, and the app's first word before it (engine.announce).
    As RunStatus, a field missing or of the wrong type reads as its default."""

    state: str = ""  # starting | running | stopped | finished | failed
    order: tuple[str, ...] | None = None  # the networks in the order the race trains them
    request: dict = field(default_factory=dict)  # the RaceRequest, as the race was started
    results: dict = field(default_factory=dict)  # {network: {"state", "epochs", "test_acc", ...}} of those done
    current: str | None = None  # the network in training
    error: str = ""
    pid: int | None = None
    updated: float | None = None
    written: bool = False

    @classmethod
    def from_json(cls, data) -> RaceStatus:
        if not isinstance(data, dict) or not data:
            return cls()
        order, text = data.get("order"), lambda k: data.get(k) if isinstance(data.get(k), str) else ""
        return cls(text("state"), tuple(k for k in order if isinstance(k, str)) if isinstance(order, list) else None,
                   data.get("request") if isinstance(data.get("request"), dict) else {},
                   data.get("results") if isinstance(data.get("results"), dict) else {},
                   data.get("current") if isinstance(data.get("current"), str) else None, text("error"),
                   int(data["pid"]) if is_number(data.get("pid")) else None,
                   float(data["updated"]) if is_number(data.get("updated")) else None, True)

    @classmethod
    def read(cls, folder: Path) -> RaceStatus:
        return cls.from_json(read_object(Path(folder) / RACE_FILE))

    @staticmethod
    def announced(request: RaceRequest) -> dict:
        """race.json as the app writes it before the race has begun."""
        return {"state": "starting", "order": list(ORDER), "request": asdict(request)}


RACE_FIELDS = frozenset(f.name for f in fields(RaceStatus)) - {"written"}  # what race.py may write


# ---------------------------------------------------------------- a job folder, read whole

@dataclass
class Job:
    """A job folder, read from disk. `state`: one of LIVE while its process runs, else stopped | finished | failed."""

    folder: Path
    job: dict = field(default_factory=dict)  # job.json: how the app started it
    status: RunStatus | RaceStatus = field(default_factory=RunStatus)  # what its child last wrote

    STATUS: ClassVar[type]  # the child's status record: RunStatus for a run, RaceStatus for a race
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
        and it last wrote its status past the deadline), or tidying from outside (visitor.py, stopped_by)."""
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
        return (self.folder / MODEL_FILE).exists() and (self.folder / CONFIG_FILE).exists()

    @property
    def test_acc(self) -> float | None:
        """The finished checkpoint's test accuracy (config.json), as Classify's networks state theirs."""
        metrics = read_object(self.folder / CONFIG_FILE).get("metrics")
        acc = metrics.get("test_acc") if isinstance(metrics, dict) else None
        return float(acc) if is_number(acc) else None

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


@dataclass
class Race(Job):
    """A race folder, read from disk. `state`: starting | running | stopped | finished | failed."""

    status: RaceStatus = field(default_factory=RaceStatus)

    STATUS = RaceStatus
    REQUEST = RaceRequest

    @property
    def request(self) -> RaceRequest:
        """How it was started: the app's job.json, else what the race itself wrote."""
        return RaceRequest.from_json(self.job.get("request") or self.status.request)

    @property
    def order(self) -> list[str]:
        order = self.status.order
        return [k for k in order if k in KEYS] if order is not None else list(ORDER)

    def members(self) -> dict[str, Run]:
        """{network: its run}, in the race's order, for the networks the race has begun."""
        return {key: load_run(member_folder(self.folder, key)) for key in self.order
                if is_run(member_folder(self.folder, key))}

    def progress(self) -> float:
        """Fraction of the whole race done, 0..1: each network is an equal share of it."""
        if self.state == "finished":
            return 1.0
        return sum(run.progress() for run in self.members().values()) / max(len(self.order), 1)


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


# ---------------------------------------------------------------- finding runs and races

def is_race(folder: Path) -> bool:
    return (Path(folder) / RACE_FILE).exists()


def is_run(folder: Path) -> bool:
    return folder.is_dir() and any((folder / f).exists() for f in (JOB_FILE, STATUS_FILE, CONFIG_FILE))


def member_folder(race_folder: Path, key: str) -> Path:
    """Where a race trains `key`: named after the race too, so every run's folder name is unique."""
    return Path(race_folder) / f"{key}-{Path(race_folder).name}"


def load_run(folder: Path) -> Run:
    return Run.load(folder)


def load_race(folder: Path) -> Race:
    return Race.load(folder)


def load_job(folder: str | Path) -> Job:
    return load_race(Path(folder)) if is_race(Path(folder)) else load_run(Path(folder))


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


def list_races(runs: Path | None = None) -> list[Race]:
    """Every race under runs/, newest first."""
    reap()
    runs = Path(runs or runs_dir())
    if not runs.is_dir():
        return []
    return sorted((load_race(p) for p in runs.iterdir() if is_race(p)), key=lambda r: r.started, reverse=True)


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
