"""Training runs started from the app: each one a `python -m cifarnets train` child process in its own
run folder under runs/, watched through the files it writes there (process.py: the layer runs and races
share). status.json and history.json are written by the trainer. Which run a network uses in place of its
shipped checkpoint is kept in runs/active.json.

A race (`python -m cifarnets race`, started and watched by racejobs.py) trains the four networks one
after another in one process, each into its own run folder inside the race's folder:
runs/race-.../cnn-race-.../ and so on. Each is an ordinary run, listed with the others and usable alike;
it is stopped and continued with its race.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..models import KEYS, label
from ..paths import DEFAULT_DATA, runs_dir
from ..store.fileio import write_json
from ..store.runfolder import CONFIG_FILE, MODEL_FILE, STATE_FILE, STATUS_FILE, read_history
from ..training import recipes
from . import process
from .process import (  # noqa: F401  (re-exported: the names callers know)
    JOB_FILE,
    LOG_FILE,
    RACE_FILE,
    Job,
    absolute_data,
    alive,
    begin,
    error_from_log,
    is_race,
    launch,
    new_folder,
    read_object,
    reap,
    run_state,
)

ACTIVE_FILE = "active.json"


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
class Run(Job):
    """One run folder, read from disk. `state`: starting | running | testing | stopped | finished | failed."""

    race: str = ""  # the race folder's name, for a network trained in a race

    STATUS_FILE = STATUS_FILE
    REQUEST = TrainRequest

    @classmethod
    def load(cls, folder: Path) -> Run:
        folder = Path(folder)
        race = folder.parent.name if is_race(folder.parent) else ""
        return cls(folder, read_object(folder / JOB_FILE), read_object(folder / STATUS_FILE), race)

    @property
    def in_race(self) -> str:
        return self.race

    @property
    def owner(self) -> str:
        """A race's network belongs to whoever started the race."""
        return read_object(self.folder.parent / JOB_FILE).get("owner", "") if self.race else super().owner

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
    def request(self) -> TrainRequest:
        given = self.job.get("request") or {"model": self.model, "recipe": self.recipe or "fast"}
        return TrainRequest(**{k: v for k, v in given.items() if k in TrainRequest.__dataclass_fields__})

    @property
    def alive(self) -> bool:
        """A race's process goes on to the next network once one has finished: nothing writes a finished
        member any more."""
        if self.race and self.status.get("state") in ("finished", "failed"):
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
        return float(acc) if isinstance(acc, (int, float)) and not isinstance(acc, bool) else None

    @property
    def resumable(self) -> bool:
        return self.state in ("stopped", "failed") and (self.folder / STATE_FILE).exists()

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
        done = (s.get("epoch", 0) - (1 if s.get("state") in ("running", "testing") and s.get("step") else 0)) * steps
        return max(0.0, min(1.0, (done + (s.get("step") or 0)) / (epochs * steps)))


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


# ---------------------------------------------------------------- starting and reading runs

# A run is stopped, continued and waited for as every job is (a race's network refuses: its race does that).
cancel, resume, wait = process.cancel, process.resume, process.wait


def start(request: TrainRequest, runs: Path | None = None, owner: str = "", limit_s: float | None = None) -> Run:
    """Create a fresh run folder and start training into it (for at most `limit_s` seconds, when given)."""
    if request.model not in KEYS:
        raise ValueError(f"unknown network {request.model!r}")
    return begin(Run, request, f"{request.model}-{request.recipe}", runs, owner, limit_s=limit_s)


def load_run(folder: Path) -> Run:
    return Run.load(folder)


def is_run(folder: Path) -> bool:
    return folder.is_dir() and any((folder / f).exists() for f in (JOB_FILE, STATUS_FILE, CONFIG_FILE))


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

