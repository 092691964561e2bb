"""Who acts on the runs: the one trusted user of a local app, or, in public mode (CIFARNETS_PUBLIC=1), one
browser among strangers'.

Locally the app trusts its user: every run is theirs, and the network each run replaces in Classify is
chosen for the whole server (runs/active.json, kept across reloads). In public mode a visitor is a browser:
a secret made on its first visit lives in a cookie (set by the page: ui/resources.remember_visitor), so a
reload or a new tab of the same browser is the same visitor, and a shared link, which carries no cookie, is
someone else. The visitor's runs carry a hash of that secret as their owner (written into job.json; the
secret itself stays in the browser and the session): only that visitor lists, cancels, resumes, downloads or
adopts them, and its adoptions are kept under the same hash (runs/.visitors/), across reloads too.

Every Start within the bounds is accepted and waits its turn in the engine's queue (runs/engine.py: first come,
first served across visitors, N workers, one in public mode by default), at most one queued or training run per
visitor in public mode (a lock makes the count and the submit one step, however many sessions press Start
together). The work is bounded: capped epochs, batch sizes between a smallest and a
largest, no run or race whose estimated time (the sidebar's own estimate) is over a limit, each one stopped
once it has run a few times its estimate (the trainer stops itself at the deadline in its job.json, and
tidy() stops one that did not), no data but the operator's, and finished runs deleted after a while and when
the runs folder grows past its cap (tidy(): expiry.py). Places in line and estimated starts are waiting.py's.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
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
from ..store.runfolder import MODEL_FILE
from . import jobs, record
from .engine import Engine, EngineError, external_url, queue_name
from .expiry import VISITORS, allowance_s, tidy
from .race import ORDER, PREFIX, Race, RaceRequest, check_race, list_races
from .record import JOB_FILE, LIVE, QUEUED, Job, Run
from .request import check
from .waiting import Wait, engine_id, start_in_s

if TYPE_CHECKING:
    from ..training.estimate import StepTimer

GATE_FILE = ".start.lock"  # held while a visitor's runs are counted and one more joins the queue
OWNER_KEY, SECRET_KEY = "_owner", "_visitor"  # where a session keeps its owner id and its browser's secret
COOKIE = "cifarnets_visitor"  # the browser's secret: token_urlsafe(16), 128 random bits
_SECRET = re.compile(r"[A-Za-z0-9_-]{22}")
LOCAL_WORKERS = 4  # locally, runs that train at once before a Start waits ($CIFARNETS_WORKERS)


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
        return [r for r in record.list_runs(self.folder, races) if self.sees(r)]

    def list_races(self) -> list[Race]:
        return [r for r in list_races(self.folder) if self.sees(r)]

    def _own(self, job: Job) -> None:
        if not self.sees(job):
            raise Refused(f"{job.name} is not one of your runs")

    # ------------------------------------------------------------ starting, within bounds

    def refusal(self, request) -> str:
        """Why this visitor may not start `request` (a TrainRequest or a RaceRequest), in one line; "" if it may.
        In public mode, once the cheaper checks pass, this times a few steps of each network it would train."""
        return self._vet(request)[0]

    def _vet(self, request) -> tuple[str, float | None]:
        """(why not, or ""; in public mode the estimated seconds, for the deadline, once it got that far)."""
        race = isinstance(request, RaceRequest)
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
        problem = check_race(request) if race else check(request)
        if problem or not self.public:
            return problem, None
        waiting = self.one_at_a_time() or self.off()  # said before timing anything; the gate counts again
        if waiting:
            return waiting, None
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

        keys = ORDER if isinstance(request, RaceRequest) else [request.model]
        return estimate.planned(keys, request.recipe, request.epochs, request.batch_size, request.device,
                                request.data, self.step_times or estimate.timed)

    def over_time(self, seconds: float, race: bool = False) -> str:
        """The refusal of a run (or race) estimated at `seconds`, in one line, when that is over the limit; else ""."""
        if not self.public or seconds <= self.limits.run_min * 60:
            return ""
        return (f"This {'race' if race else 'run'} would take about {duration(seconds)} here by this server's "
                f"estimate, over its limit of {self.limits.run_min:g} min: lower the epochs, or use a larger batch.")

    def start(self, request, estimate_s: float | None = None) -> Job:
        """Queue a training run (TrainRequest) or a race (RaceRequest) for this visitor, or raise Refused; a worker
        starts it in its turn. In public mode it is given allowance_s() of its estimate, and stops itself once
        that is spent. `estimate_s`: the seconds the page showed, kept for the queue's estimated starts."""
        problem, seconds = self._vet(request)
        if problem:
            raise Refused(problem)
        seconds = seconds if seconds is not None else estimate_s
        limit_s = allowance_s(seconds, self.limits) if self.public and seconds is not None else None
        with self._gate():
            if isinstance(request, RaceRequest):
                job = jobs.prepare(Race, request, f"{PREFIX}{request.recipe}", self.folder, self.token,
                                   jobs.announce, limit_s, seconds)
            else:
                job = jobs.prepare(Run, request, f"{request.model}-{request.recipe}", self.folder, self.token,
                                   limit_s=limit_s, estimate_s=seconds)
            self._submit(job, fresh=True)
        return job

    def resume(self, job: Job) -> Job:
        """Continue a stopped run or race: it joins the queue again like any Start, and is given its time
        allowance again when it starts (jobs.launch_queued)."""
        self._own(job)
        with self._gate():
            job = jobs.requeue(job)
            if job.queued:
                self._submit(job, fresh=False)
        return type(job).load(job.folder)

    def _submit(self, job: Job, fresh: bool) -> None:
        try:
            self.engine.submit(job.folder, job.request.device, engine_id(job))
        except EngineError as e:
            self._unqueue(job, fresh)
            raise Refused(str(e)) from e

    def cancel(self, job: Job) -> bool:
        """Stop a training run (it saves its state first), or take a waiting one out of the queue: a fresh one
        is gone, a resumed one is stopped again."""
        self._own(job)
        if not job.queued:
            return jobs.cancel(job)
        self.engine.leave(engine_id(job))
        current = type(job).load(job.folder)
        if not current.queued:
            return jobs.cancel(current)  # a worker took it meanwhile: stop it as a live one
        self._unqueue(current, fresh=not current.job.get("resume"))
        return True

    @staticmethod
    def _unqueue(job: Job, fresh: bool) -> None:
        if fresh:
            shutil.rmtree(job.folder, ignore_errors=True)
        else:
            write_json(job.folder / JOB_FILE, {k: v for k, v in job.job.items() if k not in ("queued", "resume")})

    @property
    def workers(self) -> int:
        """How many workers the app keeps for its own engine: public mode's trainers, locally $CIFARNETS_WORKERS."""
        if self.public:
            return self.limits.trainers
        text = os.environ.get("CIFARNETS_WORKERS", "").strip()
        return int(text) if text.isdigit() else LOCAL_WORKERS

    @property
    def engine(self) -> Engine:
        return Engine(self.folder, self.workers, keep_first_core=self.public)

    @contextmanager
    def _gate(self) -> Iterator[None]:
        """Locally, nothing. In public mode: the server's start lock, old runs tidied, and Refused when this visitor
        already has a run waiting or training; the caller queues its run before the lock is let go."""
        if not self.public:
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / GATE_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                tidy(self.folder, self.limits)
                line = self.one_at_a_time() or self.off()
                if line:
                    raise Refused(line)
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def pending(self) -> list[Job]:
        """This visitor's runs and races waiting in the queue or training."""
        return [j for j in [*self.list_runs(races=False), *self.list_races()] if j.state in (QUEUED, *LIVE)]

    def one_at_a_time(self) -> str:
        """Public mode: the line that says why this visitor may not queue another run now, else ""."""
        if not self.public or len(self.pending()) < self.limits.per_visitor:
            return ""
        what = "a run" if self.limits.per_visitor == 1 else f"{self.limits.per_visitor} runs"
        return (f"You have {what} waiting or training: this server takes {what} at a time per visitor. "
                "Leave the queue, or cancel it, to start another.")

    def off(self) -> str:
        if self.public and self.limits.trainers == 0 and not external_url():
            return "Training is off on this server: its operator set CIFARNETS_MAX_TRAINERS=0."
        return ""

    def wait(self, job: Job | None = None, device: str = "auto") -> Wait:
        """Where `job` (queued) stands in its queue, or where a run started now would: runs ahead, and seconds
        until it starts by the estimates of those ahead and those training."""
        if job is None and not self.engine.running:
            return Wait(0, 0.0, self.workers, 0)  # nothing has been queued since the engine last stopped
        training, waiting, workers = self.engine.line(queue_name(job.request.device if job else device))
        if job is not None and str(job.folder) not in waiting:
            return Wait(0, 0.0, workers, len(training))  # a worker took it a moment ago
        ahead = waiting[:waiting.index(str(job.folder))] if job is not None else waiting
        return Wait(len(ahead), start_in_s(training, ahead, workers), workers, len(training))

    # ------------------------------------------------------------ which run each network classifies with

    def adopted(self) -> dict[str, Path]:
        """{network: run folder} for the networks that answer from one of this visitor's runs."""
        if not self.public:
            return record.active(self.folder)
        chosen = {}
        for key, name in list(self.choices.items()):
            folder = self.folder / name
            if key in KEYS and (folder / MODEL_FILE).exists() and self.sees(record.load_run(folder)):
                chosen[key] = folder
        return chosen

    def adopt(self, run: Run) -> None:
        """Make `run` the one its network answers with: for the whole app locally, for this visitor in public."""
        self._own(run)
        if not self.public:
            return record.set_active(run, self.folder)
        if run.model not in KEYS or not run.has_checkpoint or run.alive:
            raise Refused(f"{run.name} has no finished checkpoint to use yet")
        self.choices[run.model] = f"{run.race}/{run.name}" if run.race else run.name

    def drop(self, key: str) -> None:
        """Back to the shipped network for `key`."""
        if not self.public:
            return record.clear_active(key, self.folder)
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
