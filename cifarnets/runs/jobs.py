"""The processes of runs and races: a fresh folder for a request (prepare), its child started now on this machine
(launch_queued: a worker's horse, or begin for the CLI and the tests), a stopped job queued again (requeue,
resume), and Cancel (cancel, kill). Which job starts when is the queue's (engine.py); what the folders hold is
record.py's.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from ..models import KEYS
from ..paths import project_root, runs_dir
from ..store.fileio import write_json
from . import record
from .race import PREFIX, Race, RaceRequest, RaceStatus
from .record import BEAT_FILE, HOST, JOB_FILE, LOG_FILE, RACE_FILE, Job, Run
from .request import TrainRequest, absolute_data


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
    record.children[proc.pid] = proc
    return proc


def new_folder(runs: Path | None, stem: str) -> Path:
    """A fresh folder under runs/ named after what it holds and when it started."""
    runs = Path(runs or runs_dir())
    runs.mkdir(parents=True, exist_ok=True)
    folder = runs / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    folder.mkdir()
    return folder


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
    """Create a fresh folder for `request`, its job.json saying it waits in the queue (the engine starts it);
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
    written = {k: v for k, v in job.job.items() if k not in ("queued", "pid")} | {"launched": now, "host": HOST}
    if record.is_number(job.job.get("limit_s")):
        written["deadline"] = now + job.job["limit_s"]
    resume = bool(written.pop("resume", False))
    return launch(job.folder, written, job.request.argv(job.folder, resume=resume), session)


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
        return True  # its worker reads "cancelled" within seconds and stops it (engine.work())
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


def load_job(folder: str | Path) -> Job:
    """A run or a race, as its folder says."""
    return Race.load(Path(folder)) if record.is_race(Path(folder)) else Run.load(Path(folder))


def start_run(request: TrainRequest, runs: Path | None = None, owner: str = "", limit_s: float | None = None) -> Run:
    """Create a fresh run folder and start training into it at once, here (for at most `limit_s` seconds, when
    given)."""
    if request.model not in KEYS:
        raise ValueError(f"unknown network {request.model!r}")
    return begin(Run, request, f"{request.model}-{request.recipe}", runs, owner, limit_s=limit_s)


def start_race(request: RaceRequest, runs: Path | None = None, owner: str = "", limit_s: float | None = None) -> Race:
    """Create a race folder and start `python -m cifarnets race` into it at once, here (for at most `limit_s`
    seconds, when given: the whole race, not each network)."""
    return begin(Race, request, f"{PREFIX}{request.recipe}", runs, owner, before=announce, limit_s=limit_s)


def announce(folder: Path, request: RaceRequest) -> None:
    # race.json at once: the folder is a race to every watcher before the process has written anything
    write_json(folder / RACE_FILE, RaceStatus.announced(request))
