"""The one layer under runs and races: a child process of the app (`python -m cifarnets train` or `race`)
in its own folder under runs/, watched through the files it writes there.

A Streamlit script reruns on every click and every browser session runs its own copy, so nothing about
a job lives in memory: the folder is the truth. job.json says how the app started it (its request, its
process id; in public mode the visitor's owner token and its time allowance and deadline, which the child
is given too and stops itself at), a status file is written by the child (a run's status.json, a race's
race.json), and train.log holds its output (the place to look for an error).
jobs.Run and racejobs.Race are the two kinds; everything they share is here.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar

from ..paths import DEFAULT_DATA, project_root, runs_dir
from ..store.fileio import read_json, write_json
from ..store.runfolder import process_alive as alive  # the run lock's own test for a live process

JOB_FILE = "job.json"
LOG_FILE = "train.log"
RACE_FILE = "race.json"  # in a race's folder: the race's state, its order, the network it is on
TIME_LIMIT = "time limit"  # job.json's stopped_by when the server's time limit stopped a job from outside
LIVE = ("starting", "running", "testing")  # the states of a job whose process is still writing its folder
QUEUED = "queued"  # waiting in the engine's queue (runs/engine.py) for a worker
BEAT_FILE = "worker.beat"  # touched by the worker that trains a job: how a job on another machine is alive
BEAT_STALE_S = 30.0
# The machine a trainer runs on, as job.json records it: a worker started with $CIFARNETS_HOST names its machine so
# (several workers on one machine can stand in for several machines).
HOST = os.environ.get("CIFARNETS_HOST") or socket.gethostname()

# Popen objects of the children this process started: polled so finished ones are reaped, not left
# as zombies for as long as the app runs. Jobs started by another app process are watched by pid.
_children: dict[int, subprocess.Popen] = {}


@dataclass
class Job:
    """A job folder, read from disk. `state`: one of LIVE while its process runs, else stopped | finished | failed."""

    folder: Path
    job: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)

    STATUS_FILE: ClassVar[str]  # the file the child writes: status.json for a run, race.json for a race
    REQUEST: ClassVar[type]  # the request dataclass that starts one: its argv() is the child's command line

    @classmethod
    def load(cls, folder: Path) -> Job:
        folder = Path(folder)
        return cls(folder, read_object(folder / JOB_FILE), read_object(folder / cls.STATUS_FILE))

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
        """How it was started: the app's job.json, else what the child itself wrote."""
        given = self.job.get("request") or self.status.get("request") or {}
        known = {f.name for f in fields(self.REQUEST)}
        return self.REQUEST(**{k: v for k, v in given.items() if k in known})

    @property
    def pid(self) -> int | None:
        return self.job.get("pid") or self.status.get("pid")

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
        return run_state(self.alive, self.status.get("state"), self.job.get("cancelled"))

    @property
    def log(self) -> Path:
        return self.folder / LOG_FILE

    @property
    def error(self) -> str:
        """Why a failed job failed, in one line: the child's own words where it left them."""
        if self.state != "failed":
            return ""
        return self.status.get("error") or error_from_log(self.log)

    @property
    def started(self) -> float:
        return float(self.job.get("started") or self.folder.stat().st_mtime)

    @property
    def deadline(self) -> float | None:
        """When the child must stop (public mode: its start, or its resume, plus its allowance); None locally."""
        deadline = self.job.get("deadline")
        return float(deadline) if _number(deadline) else None

    @property
    def overran(self) -> bool:
        """Whether the server's time limit stopped it: the child itself, at its deadline (it was not cancelled,
        and it last wrote its status past the deadline), or tidying from outside (runs/visitor.py, stopped_by)."""
        if self.state != "stopped" or self.deadline is None:
            return False
        updated = self.status.get("updated")
        return (self.job.get("stopped_by") == TIME_LIMIT
                or not self.job.get("cancelled") and _number(updated) and updated >= self.deadline)

    @property
    def stopped_why(self) -> str:
        """Why a stopped job stopped, in words for its card, when it was not its visitor's Cancel; else ""."""
        return "ran past this server's time limit" if self.overran else ""

    def progress(self) -> float:
        raise NotImplementedError


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


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_object(path: Path) -> dict:
    """A JSON object from a file that may be missing or bad: {} then."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------- starting and stopping

def beating(folder: Path) -> bool:
    """Whether a worker (on any machine that shares the runs folder) still watches this folder's trainer."""
    try:
        return time.time() - (Path(folder) / BEAT_FILE).stat().st_mtime < BEAT_STALE_S
    except OSError:
        return False


def child_env(deadline: float | None = None) -> dict:
    """The environment of a `python -m cifarnets` child: this copy of the package first on its path, its output
    unbuffered, and a `deadline` as $CIFARNETS_DEADLINE (cliargs.stop_on_signals), only one it is given."""
    env = dict(os.environ)
    env.pop("CIFARNETS_DEADLINE", None)
    if deadline is not None:
        env["CIFARNETS_DEADLINE"] = repr(deadline)
    root = str(Path(__file__).resolve().parents[2])  # the package's parent: `-m cifarnets` finds this copy
    env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(folder: Path, argv: list[str], deadline: float | None = None, session: bool = True) -> subprocess.Popen:
    """Start the child, with a log file for what it prints. With `session`, detached from this process: a Ctrl-C
    in the terminal that runs Streamlit, or Streamlit stopping, does not kill the job. A worker keeps its trainer
    in its own process group instead, so that a worker killed takes its trainer along."""
    with open(folder / LOG_FILE, "ab") as log:
        log.write(f"$ python -m cifarnets {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "cifarnets", *argv], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=project_root(), env=child_env(deadline),
                                start_new_session=session)
    _children[proc.pid] = proc
    return proc


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


def launch(folder: Path, job: dict, argv: list[str], session: bool = True) -> subprocess.Popen:
    # job.json before the process (a watcher must never see a folder it cannot read), still "queued" until it
    # names the process: between the two, no watcher may take the job for one that died
    write_json(folder / JOB_FILE, job | {"queued": True})
    proc = _spawn(folder, argv, job.get("deadline"), session)
    job["pid"] = proc.pid
    job.pop("queued", None)
    write_json(folder / JOB_FILE, job)
    return proc


def prepare(kind: type[Job], request, stem: str, runs: Path | None = None, owner: str = "", before=None,
            limit_s: float | None = None, estimate_s: float | None = None) -> Job:
    """Create a fresh folder for `request`, its job.json saying it waits in the queue (runs/engine.py starts it);
    `before(folder, request)` prepares the folder first (a race writes its race.json, so every watcher knows it
    for a race at once). With `limit_s` (public mode) the child stops itself that many seconds after it starts."""
    request = replace(request, data=absolute_data(request.data))
    folder = new_folder(runs, stem)
    if before is not None:
        before(folder, request)
    job = ({"request": asdict(request), "started": time.time(), "queued": True} | ({"owner": owner} if owner else {})
           | ({"limit_s": limit_s} if limit_s is not None else {})
           | ({"estimate_s": estimate_s} if estimate_s is not None else {}))
    write_json(folder / JOB_FILE, job)
    return kind.load(folder)


def begin(kind: type[Job], request, stem: str, runs: Path | None = None, owner: str = "", before=None,
          limit_s: float | None = None) -> Job:
    """Create a fresh folder for `request` and start its child into it at once, here (the CLI and the tests; the
    app queues every Start: prepare, then the engine)."""
    job = prepare(kind, request, stem, runs, owner, before, limit_s)
    launch_queued(job)
    return kind.load(job.folder)


def launch_queued(job: Job, session: bool = True) -> subprocess.Popen:
    """Start a queued job's child now, on this machine (a worker's horse passes session=False): its deadline runs
    from now, and a resumed job continues from its saved state."""
    now = time.time()
    record = {k: v for k, v in job.job.items() if k not in ("queued", "pid")} | {"launched": now, "host": HOST}
    if _number(job.job.get("limit_s")):
        record["deadline"] = now + job.job["limit_s"]
    resume = bool(record.pop("resume", False))
    return launch(job.folder, record, job.request.argv(job.folder, resume=resume), session)


def requeue(job: Job) -> Job:
    """Mark a stopped (or failed) run or race to continue in its own folder once the engine starts it again."""
    if job.in_race:
        raise ValueError(f"{job.name} trains in the race {job.in_race}: continue the race")
    if job.alive or job.queued:
        return job
    again = {k: v for k, v in job.job.items() if k not in ("stopped_by", "stop_asked", "pid", "deadline")}
    write_json(job.folder / JOB_FILE, again | {"cancelled": False, "queued": True, "resume": True,
                                                "resumed": time.time()})
    (job.folder / BEAT_FILE).unlink(missing_ok=True)
    return type(job).load(job.folder)


def resume(job: Job) -> Job:
    """Continue a stopped (or failed) run or race in its own folder, where its resumable state is, at once, here;
    one with a time allowance is given it again, from now."""
    job = requeue(job)
    if job.queued:
        launch_queued(job)
    return type(job).load(job.folder)


def cancel(job: Job, note: dict | None = None) -> bool:
    """Ask the child to stop: SIGTERM makes the trainer finish the current step, save its state and exit 0;
    a race stops the network it is training the same way, and starts no further one. `note` goes into
    job.json with it (why, when the server's time limit asks)."""
    if job.in_race:
        raise ValueError(f"{job.name} trains in the race {job.in_race}: stop the race")
    if not job.alive:
        return False
    write_json(job.folder / JOB_FILE, dict(job.job, cancelled=True) | (note or {}))
    if not job.here:
        return True  # its worker reads "cancelled" within seconds and stops it (runs/engine.py)
    try:
        os.kill(job.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def kill(job: Job) -> None:
    """End the child at once (SIGKILL), for one that did not stop when asked: it resumes from its last epoch."""
    if job.alive and job.here:
        try:
            os.kill(job.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait(job: Job, timeout: float) -> Job:
    """Block until the job's process has ended (or `timeout` seconds passed); the job as it is then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap()
        current = type(job).load(job.folder)
        if not current.alive:
            return current
        time.sleep(0.2)
    return type(job).load(job.folder)


def reap() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


def is_race(folder: Path) -> bool:
    return (Path(folder) / RACE_FILE).exists()
