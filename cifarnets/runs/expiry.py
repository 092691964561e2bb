"""When public mode's jobs run out of time and their folders go: a run's time allowance (its deadline), a live job
long past it stopped, and finished runs deleted after a while and when the runs folder grows past its cap (tidy,
at every start and every page drawn once a minute).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..paths import PublicLimits
from . import jobs, record
from .record import TIME_LIMIT, Job, is_race

VISITORS = ".visitors"  # in the runs folder: one file of adoptions per visitor, named by its owner id
# A run or race may take limits.overrun times its estimate, and at least this: the estimate leaves out loading
# the data, and a first CIFAR-10 download and decode take minutes.
LEAST_ALLOWANCE_S = 600.0
# Past its deadline a trainer stops itself within a step or a test pass; one still going this long after it is
# asked to stop as Cancel asks, and killed if it is still going this long after that.
OVERDUE_GRACE_S = 120.0


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
        jobs.cancel(job, {"stopped_by": TIME_LIMIT, "stop_asked": now})
    elif now >= asked + OVERDUE_GRACE_S:
        jobs.kill(job)


def _ended(folder: Path) -> float:
    """When a job folder was last written (its end, for one not live)."""
    return max((p.stat().st_mtime for p in folder.iterdir()), default=folder.stat().st_mtime)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def tidy(runs: Path, limits: PublicLimits, now: float | None = None) -> list[str]:
    """Stop the live jobs long past their deadline (stop_overdue: the gate's backstop, since every start and
    every page drawn once a minute tidy). Delete the finished (or stopped, or failed) jobs older than
    limits.run_hours, then the oldest others while the folder is past limits.runs_mb. A live or queued run or
    race is never deleted. Returns the names deleted."""
    runs = Path(runs)
    if not runs.is_dir():
        return []
    now = now or time.time()
    done = []  # (ended, size, folder) of every job that is not live
    for folder in runs.iterdir():
        if not folder.is_dir():
            continue
        job = jobs.load_job(folder)
        if job.queued:
            continue  # waiting its turn: never tidied
        if job.alive:
            stop_overdue(job, now)
            continue
        if not (is_race(folder) or record.is_run(folder)):
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
