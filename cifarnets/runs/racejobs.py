"""Races started from the app: the four networks trained one after another with one recipe, by one
`python -m cifarnets race` child process, so a user sees them learn side by side.

As for a single run (jobs.py), the folder is the truth: job.json says how the app started the race,
race.json is written by the race (its state, its order, the network it is on), and each network
trains into its own run folder inside, which the trainer writes as it always does. Any session, or a
reloaded page, sees the same race. A race is a process.Job like a run: cancelled, resumed, loaded and
listed by the same code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..models import KEYS
from ..paths import runs_dir
from ..store.fileio import write_json
from . import jobs
from .jobs import Run
from .process import RACE_FILE, Job, begin, is_race, reap
from .process import resume as resume_race  # noqa: F401  (a race resumes like a run)

ORDER = KEYS  # quickest first: the CNN's curve is on the chart within minutes
PREFIX = "race-"


def member_folder(race_folder: Path, key: str) -> Path:
    """Where a race trains `key`: named after the race too, so every run's folder name is unique."""
    return Path(race_folder) / f"{key}-{Path(race_folder).name}"


@dataclass(frozen=True)
class RaceRequest:
    """A race as the sidebar asks for it: one recipe for all four; None means each network's recipe value."""

    recipe: str = "fast"
    epochs: int | None = None
    batch_size: int | None = None
    data: str | None = None
    device: str = "auto"
    seed: int = 0

    def argv(self, out: Path, resume: bool = False) -> list[str]:
        args = ["race", "--recipe", self.recipe, "--out", str(out), "--device", self.device, "--seed", str(self.seed)]
        for flag, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size), ("--data", self.data)):
            if value is not None and value != "":
                args += [flag, str(value)]
        return args + (["--resume"] if resume else [])


@dataclass
class Race(Job):
    """A race folder, read from disk. `state`: starting | running | stopped | finished | failed."""

    STATUS_FILE = RACE_FILE
    REQUEST = RaceRequest

    @property
    def order(self) -> list[str]:
        order = self.status.get("order")
        return [k for k in order if k in KEYS] if isinstance(order, list) else list(ORDER)

    def members(self) -> dict[str, Run]:
        """{network: its run}, in the race's order, for the networks the race has begun."""
        return {key: jobs.load_run(member_folder(self.folder, key)) for key in self.order
                if jobs.is_run(member_folder(self.folder, key))}

    def progress(self) -> float:
        """Fraction of the whole race done, 0..1: each network is an equal share of it."""
        if self.state == "finished":
            return 1.0
        return sum(run.progress() for run in self.members().values()) / max(len(self.order), 1)


def check_race(request: RaceRequest) -> str:
    """Why this race cannot start, in one line; "" when it can. Every network is checked, since a recipe may
    train one of them differently (the modern DenseNet distils from the ResNet)."""
    problems = (jobs.check(jobs.TrainRequest(key, request.recipe, request.epochs, None, request.batch_size,
                                             request.data, request.device)) for key in ORDER)
    return next((p for p in problems if p), "")


def start_race(request: RaceRequest, runs: Path | None = None, owner: str = "", limit_s: float | None = None) -> Race:
    """Create a race folder and start `python -m cifarnets race` into it (for at most `limit_s` seconds, when
    given: the whole race, not each network)."""
    return begin(Race, request, f"{PREFIX}{request.recipe}", runs, owner, before=announce, limit_s=limit_s)


def announce(folder: Path, request: RaceRequest) -> None:
    # race.json at once: the folder is a race to every watcher before the process has written anything
    write_json(folder / RACE_FILE, {"state": "starting", "order": list(ORDER), "request": asdict(request)})


def load_race(folder: Path) -> Race:
    return Race.load(folder)


def list_races(runs: Path | None = None) -> list[Race]:
    """Every race under runs/, newest first."""
    reap()
    runs = Path(runs or runs_dir())
    if not runs.is_dir():
        return []
    return sorted((load_race(p) for p in runs.iterdir() if is_race(p)), key=lambda r: r.started, reverse=True)
