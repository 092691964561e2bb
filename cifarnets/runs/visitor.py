"""Who acts on the runs: the one trusted user of a local app, or, in public mode (CIFARNETS_PUBLIC=1), one
browser among strangers'.

Locally the app trusts its user: every run is theirs, and the network each run replaces in Classify is
chosen for the whole server (runs/active.json, kept across reloads). In public mode a visitor is a browser:
a secret made on its first visit lives in a cookie (set by the page: ui/resources.remember_visitor), so a
reload or a new tab of the same browser is the same visitor, and a shared link, which carries no cookie, is
someone else. The visitor's runs carry a hash of that secret as their owner (written into job.json; the
secret itself stays in the browser and the session): only that visitor lists, cancels, resumes, downloads or
adopts them, and its adoptions are kept under the same hash (runs/.visitors/), across reloads too.

The work is bounded: at most N training processes at once on the server (a lock makes the count and the start
one step, however many sessions press Start together), capped epochs, batch sizes between a smallest and a
largest, no run or race whose estimated time (the sidebar's own estimate) is over a limit, each one stopped
once it has run a few times its estimate (the trainer stops itself at the deadline in its job.json, and tidy()
stops one that did not), no data but the operator's, and finished runs deleted after a while and when the runs
folder grows past its cap (tidy()).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import secrets
import shutil
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ..models import KEYS
from ..paths import DEFAULT_DATA, PublicLimits, data_env, public, public_limits, runs_dir
from ..prose import duration
from ..store.fileio import write_json
from . import jobs, process, racejobs
from .jobs import Run
from .process import TIME_LIMIT, Job, is_race

if TYPE_CHECKING:
    from ..training.estimate import StepTimer

GATE_FILE = ".start.lock"  # held while the live trainers are counted and one more starts
OWNER_KEY, SECRET_KEY = "_owner", "_visitor"  # where a session keeps its owner id and its browser's secret
COOKIE = "cifarnets_visitor"  # the browser's secret: token_urlsafe(16), 128 random bits
_SECRET = re.compile(r"[A-Za-z0-9_-]{22}")
VISITORS = ".visitors"  # in the runs folder: one file of adoptions per visitor, named by its owner id
# A run or race may take limits.overrun times its estimate, and at least this: the estimate leaves out loading
# the data, and a first CIFAR-10 download and decode take minutes.
LEAST_ALLOWANCE_S = 600.0
# Past its deadline a trainer stops itself within a step or a test pass; one still going this long after it is
# asked to stop as Cancel asks, and killed if it is still going this long after that.
OVERDUE_GRACE_S = 120.0


NO_DATA = "Training is off here for now: this server has no training data yet."


class Refused(ValueError):
    """A start, resume or adoption this visitor may not make; the message is one line for the page."""


@dataclass
class Visitor:
    """One browser session (public mode) or the local user; `runs` None is the configured runs folder."""

    token: str = ""  # public mode: the owner id, a hash of the browser's secret
    choices: MutableMapping | None = None  # public mode: this visitor's {network: run folder name}
    public: bool = False
    limits: PublicLimits = field(default_factory=PublicLimits)
    runs: Path | None = None
    # Times a few training steps for the estimate (training/estimate.py's timed()); the sidebar passes its
    # cached copy, so the time it shows is the time the limit judges, and a Start times nothing again.
    step_times: StepTimer | None = None

    @classmethod
    def of_session(cls, session: MutableMapping, runs: Path | None = None, cookie: str | None = None) -> Visitor:
        """The visitor a session is, under the settings. In public mode its browser's: the secret in `cookie`
        (the browser's COOKIE) when it is one, else a new one, kept in the session for the page to set."""
        if not public():
            return cls(runs=runs)
        if SECRET_KEY not in session:
            known = isinstance(cookie, str) and _SECRET.fullmatch(cookie)  # AppTest hands a mock: no cookie
            session[SECRET_KEY] = cookie if known else secrets.token_urlsafe(16)
        token = session[OWNER_KEY] = owner_id(session[SECRET_KEY])
        folder = Path(runs or runs_dir())
        return cls(token, Adoptions(folder / VISITORS / f"{token}.json"), True, public_limits(), runs)

    @property
    def folder(self) -> Path:
        return Path(self.runs or runs_dir())

    # ------------------------------------------------------------ what this visitor sees and may touch

    def sees(self, job: Job) -> bool:
        return not self.public or bool(self.token) and job.owner == self.token

    def list_runs(self, races: bool = True) -> list[Run]:
        return [r for r in jobs.list_runs(self.folder, races) if self.sees(r)]

    def list_races(self) -> list[racejobs.Race]:
        return [r for r in racejobs.list_races(self.folder) if self.sees(r)]

    def _own(self, job: Job) -> None:
        if not self.sees(job):
            raise Refused(f"{job.name} is not one of your runs")

    def cancel(self, job: Job) -> bool:
        self._own(job)
        return jobs.cancel(job)

    def resume(self, job: Job) -> Job:
        """Continue a stopped run or race: in public mode a trainer like any other, so it waits its turn, and it
        is given its time allowance again (process.resume)."""
        self._own(job)
        with self._gate():
            return jobs.resume(job)

    # ------------------------------------------------------------ starting, within bounds

    def refusal(self, request) -> str:
        """Why this visitor may not start `request` (a TrainRequest or a RaceRequest), in one line; "" if it may.
        In public mode, once the cheaper checks pass, this times a few steps of each network it would train."""
        return self._vet(request)[0]

    def _vet(self, request) -> tuple[str, float | None]:
        """(why not, or ""; in public mode the estimated seconds, for the deadline, once it got that far)."""
        race = isinstance(request, racejobs.RaceRequest)
        if self.public:
            if request.data not in (None, DEFAULT_DATA, data_env()):
                # The same words for any path, there or not: nothing here tells a visitor what the server holds.
                return "public mode trains only on the data this server provides: no paths", None
            if request.epochs is not None and request.epochs > self.limits.epochs:
                return f"public mode allows at most {self.limits.epochs} epochs", None
            if request.batch_size is not None and request.batch_size > self.limits.batch_size:
                return f"public mode allows batches of at most {self.limits.batch_size}", None
            if request.batch_size is not None and request.batch_size < self.limits.min_batch:
                return f"public mode allows batches of at least {self.limits.min_batch}", None
            if not self.has_data():
                return NO_DATA, None
        problem = racejobs.check_race(request) if race else jobs.check(request)
        if problem or not self.public:
            return problem, None
        busy = self.busy()  # said before timing anything; the gate counts again as it starts
        if busy:
            return busy, None
        try:
            seconds = self.estimate_s(request)
        except (UserError, ValueError, RuntimeError) as e:  # a batch that does not fit, say: nothing to bound it by
            return f"no time estimate, so no start on this server: {str(e).splitlines()[0][:200]}", None
        return self.over_time(seconds, race), seconds

    def has_data(self) -> bool:
        """Public mode: whether the operator's data is here (a visitor's Start never downloads anything)."""
        from ..data import sources  # here, not above: importing the job runner must not load torch

        return sources.present(data_env() or DEFAULT_DATA)

    def estimate_s(self, request) -> float:
        """Seconds `request` would take here by the sidebar's own estimate; a race's four networks one after
        another."""
        from ..training import estimate  # here, not above: importing the job runner must not load torch

        keys = racejobs.ORDER if isinstance(request, racejobs.RaceRequest) else [request.model]
        return estimate.planned(keys, request.recipe, request.epochs, request.batch_size, request.device,
                                request.data, self.step_times or estimate.timed)

    def over_time(self, seconds: float, race: bool = False) -> str:
        """The refusal of a run (or race) estimated at `seconds`, in one line, when that is over the limit; else ""."""
        if not self.public or seconds <= self.limits.run_min * 60:
            return ""
        return (f"This {'race' if race else 'run'} would take about {duration(seconds)} here by this server's "
                f"estimate, over its limit of {self.limits.run_min:g} min: lower the epochs, or use a larger batch.")

    def start(self, request) -> Job:
        """Start a training run (TrainRequest) or a race (RaceRequest) for this visitor, or raise Refused. In
        public mode it is given allowance_s() of its estimate, and stops itself once that is spent."""
        problem, seconds = self._vet(request)
        if problem:
            raise Refused(problem)
        limit_s = allowance_s(seconds, self.limits) if seconds is not None else None
        with self._gate():
            if isinstance(request, racejobs.RaceRequest):
                return racejobs.start_race(request, self.folder, self.token, limit_s)
            return jobs.start(request, self.folder, self.token, limit_s)

    @contextmanager
    def _gate(self) -> Iterator[None]:
        """Locally, nothing. In public mode: the server's start lock, old runs tidied, and Refused with the busy
        line when N trainers already run; the caller starts its child before the lock is let go."""
        if not self.public:
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / GATE_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                tidy(self.folder, self.limits)
                line = busy_line(live_trainers(self.folder), self.limits.trainers)
                if line:
                    raise Refused(line)
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def busy(self) -> str:
        """The busy line when no trainer is free for this visitor now, else ""."""
        return busy_line(live_trainers(self.folder), self.limits.trainers) if self.public else ""

    # ------------------------------------------------------------ which run each network classifies with

    def adopted(self) -> dict[str, Path]:
        """{network: run folder} for the networks that answer from one of this visitor's runs."""
        if not self.public:
            return jobs.active(self.folder)
        chosen = {}
        for key, name in list(self.choices.items()):
            folder = self.folder / name
            if key in KEYS and (folder / jobs.MODEL_FILE).exists() and self.sees(jobs.load_run(folder)):
                chosen[key] = folder
        return chosen

    def adopt(self, run: Run) -> None:
        """Make `run` the one its network answers with: for the whole app locally, for this visitor in public."""
        self._own(run)
        if not self.public:
            return jobs.set_active(run, self.folder)
        if run.model not in KEYS or not run.has_checkpoint or run.alive:
            raise Refused(f"{run.name} has no finished checkpoint to use yet")
        self.choices[run.model] = f"{run.race}/{run.name}" if run.race else run.name

    def drop(self, key: str) -> None:
        """Back to the shipped network for `key`."""
        if not self.public:
            return jobs.clear_active(key, self.folder)
        self.choices.pop(key, None)


def owner_id(secret: str) -> str:
    """What the server keeps of a browser's secret: enough to match it, nothing to act as it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


class Adoptions(MutableMapping):
    """A public visitor's {network: run folder name}, in a file of its own (written whole), so a reload or a new
    tab of the same browser finds them; any file that is not such an object counts as none."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}

    def _write(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, data)

    def __getitem__(self, key):
        return self._read()[key]

    def __setitem__(self, key, value) -> None:
        self._write(self._read() | {key: value})

    def __delitem__(self, key) -> None:
        data = self._read()
        del data[key]
        self._write(data)

    def __iter__(self):
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


# ---------------------------------------------------------------- the trainer's capacity and time

def allowance_s(estimate_s: float, limits: PublicLimits) -> float:
    """How long a run or race estimated at `estimate_s` seconds may go on before it is stopped."""
    return max(limits.overrun * estimate_s, LEAST_ALLOWANCE_S)


def stop_overdue(job: Job, now: float) -> None:
    """A live job OVERDUE_GRACE_S past its deadline, which its trainer should have stopped at: asked to stop as
    Cancel asks (job.json notes why), then killed if it is still going OVERDUE_GRACE_S later."""
    if job.deadline is None or now < job.deadline + OVERDUE_GRACE_S:
        return
    asked = job.job.get("stop_asked")
    if not isinstance(asked, (int, float)):
        process.cancel(job, {"stopped_by": TIME_LIMIT, "stop_asked": now})
    elif now >= asked + OVERDUE_GRACE_S:
        process.kill(job)


def live_trainers(runs: Path) -> list[Job]:
    """The training processes going now, server-wide: each live run and each live race is one."""
    return ([r for r in jobs.list_runs(runs, races=False) if r.alive]
            + [r for r in racejobs.list_races(runs) if r.alive])


def remaining_s(job: Job, now: float | None = None) -> float | None:
    """Seconds until `job` should end: the trainer's own ETA for a run, else its pace so far; None this early."""
    eta = job.status.get("eta_s")
    if isinstance(job, Run) and isinstance(eta, (int, float)):
        return float(eta)
    done = job.progress()
    if done < 0.02:
        return None
    elapsed = (now or time.time()) - job.started
    return elapsed * (1 - done) / done


def busy_line(live: list[Job], capacity: int, now: float | None = None) -> str:
    """"" while fewer than `capacity` trainers run, else one line: busy, and roughly until when."""
    if len(live) < capacity:
        return ""
    if capacity == 0:
        return "Training is off on this server: its operator set CIFARNETS_MAX_TRAINERS=0."
    now = now or time.time()
    known = [s for s in (remaining_s(j, now) for j in live) if s is not None]
    what = "the trainer is" if capacity == 1 else f"all {capacity} trainers are"
    if not known:
        return f"Busy: {what} in use by another visitor and just started; try again in a few minutes."
    free = min(known)
    at = time.strftime("%H:%M UTC", time.gmtime(now + free))
    return f"Busy: {what} in use by another visitor, free in about {max(1, round(free / 60))} min (around {at})."


# ---------------------------------------------------------------- tidying the runs folder

def _ended(folder: Path) -> float:
    """When a job folder was last written (its end, for one not live)."""
    return max((p.stat().st_mtime for p in folder.iterdir()), default=folder.stat().st_mtime)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def tidy(runs: Path, limits: PublicLimits, now: float | None = None) -> list[str]:
    """Stop the live jobs long past their deadline (stop_overdue: the gate's backstop, since every start and
    every page drawn once a minute tidy). Delete the finished (or stopped, or failed) jobs older than
    limits.run_hours, then the oldest others while the folder is past limits.runs_mb. A live run or race is
    never deleted. Returns the names deleted."""
    runs = Path(runs)
    if not runs.is_dir():
        return []
    now = now or time.time()
    done = []  # (ended, size, folder) of every job that is not live
    for folder in runs.iterdir():
        if not folder.is_dir():
            continue
        job = racejobs.load_race(folder) if is_race(folder) else jobs.load_run(folder)
        if job.alive:
            stop_overdue(job, now)
            continue
        if not (is_race(folder) or jobs.is_run(folder)):
            continue
        done.append((_ended(folder), _size(folder), folder))
    deleted, total = [], sum(_size(p) for p in runs.iterdir() if p.is_dir())
    for ended, size, folder in sorted(done):  # oldest first
        if now - ended > limits.run_hours * 3600 or total > limits.runs_mb * 2**20:
            shutil.rmtree(folder, ignore_errors=True)
            deleted.append(folder.name)
            total -= size
    # A visitor's adoptions name runs kept at most run_hours after they ended: a file untouched longer names none.
    for adoptions in (runs / VISITORS).glob("*.json"):
        if now - adoptions.stat().st_mtime > limits.run_hours * 3600:
            adoptions.unlink(missing_ok=True)
    return deleted
