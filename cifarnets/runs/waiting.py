"""A job's place in the training queue: its id there (engine_id), the runs ahead of it and when it starts by
their estimates and those training (start_in_s, Wait: the sidebar's line), and a live job's time left.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

from ..prose import duration, plural
from . import jobs
from .record import Job, Run

SOON_S = 10.0  # a start this close is "any moment now": the estimates leave out loading the data


def remaining_s(job: Job, now: float | None = None) -> float | None:
    """Seconds until `job` should end: the trainer's own ETA for a run, else its pace so far; None this early."""
    if isinstance(job, Run) and job.status.eta_s is not None:
        return job.status.eta_s
    done = job.progress()
    if done < 0.02:
        return None
    elapsed = (now or time.time()) - float(job.job.get("launched") or job.started)
    return elapsed * (1 - done) / done


@dataclass(frozen=True)
class Wait:
    """Where a run stands in its queue: `ahead` runs before it, starting in about `start_in_s` seconds (None when
    that cannot be told: no worker takes the queue, or a run ahead has no estimate)."""

    ahead: int
    start_in_s: float | None
    workers: int
    training: int

    def line(self, queued: bool = True) -> str:
        """One line for the sidebar: a queued run's place, or what a Start now would meet."""
        if self.workers == 0:
            return (f"{ordinal(self.ahead + 1)} in line; no worker takes runs from the queue right now, so it waits "
                    "until one does." if queued else
                    "No worker takes runs from the queue right now: a run started now waits for one.")
        when = ("" if self.start_in_s is None else ": starts any moment now" if self.start_in_s < SOON_S else
                f", starts in about {duration(self.start_in_s)} (around "
                f"{time.strftime('%H:%M UTC', time.gmtime(time.time() + self.start_in_s))})")
        if queued:
            return f"{ordinal(self.ahead + 1)} in line{when}."
        if self.ahead == 0 and self.training < self.workers:
            return ""
        if self.start_in_s is None:
            return f"Queue: {plural(self.ahead, 'run')} waiting, {self.training} training: a run started now waits."
        return (f"Queue: {plural(self.ahead, 'run')} waiting, {self.training} training: a run started now would start "
                f"in about {duration(self.start_in_s)}.")


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def start_in_s(training: list[str], ahead: list[str], workers: int, now: float | None = None) -> float | None:
    """Seconds until the next run after `ahead` starts, with `workers` taking runs in order: each training run
    frees its worker when its remaining time is up, each run ahead takes the first free worker for its estimate.
    None when a time is unknown (a run without an estimate, one just started) or no worker takes the queue."""
    if workers == 0:
        return None
    free = [_left(jobs.load_job(f), now) for f in training][:workers]
    costs = [jobs.load_job(f).job.get("estimate_s") for f in ahead]
    if any(t is None for t in free) or not all(isinstance(c, (int, float)) for c in costs):
        return None
    free += [0.0] * (workers - len(free))
    heapq.heapify(free)
    for cost in costs:
        heapq.heapreplace(free, free[0] + float(cost))
    return max(0.0, free[0])


def _left(job: Job, now: float | None = None) -> float | None:
    """A training job's remaining seconds: its own pace once it has one, before that its estimate."""
    left = remaining_s(job, now)
    estimate = job.job.get("estimate_s")
    if left is None and isinstance(estimate, (int, float)):
        left = estimate - ((now or time.time()) - float(job.job.get("launched") or job.started))
    return None if left is None else max(0.0, left)


def engine_id(job: Job) -> str:
    """The job's id in the engine: its folder, and for a resumed one when it was resumed (a new job each time)."""
    resumed = job.job.get("resumed")
    return f"{job.name}-r{int(resumed * 1000)}" if isinstance(resumed, (int, float)) else job.name
