"""The training queue (runs/engine.py, RQ on Redis): every Start is accepted and waits its turn, first come first
served, with a place and an estimated start that only go down; leaving the queue; the embedded engine the app
starts by itself; and a worker started as a separate process, standing in for another machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_image_folder
from helpers.app import wait_for_state

from cifarnets.paths import PublicLimits
from cifarnets.runs import engine, record
from cifarnets.runs import race as races
from cifarnets.runs.record import HOST, JOB_FILE, QUEUED
from cifarnets.runs.request import TrainRequest
from cifarnets.runs.visitor import Refused, Visitor
from cifarnets.runs.waiting import Wait, start_in_s
from cifarnets.store.fileio import write_json

RUN_LIMIT = 240


def request(data: Path, epochs: int = 1, **kw) -> TrainRequest:
    return TrainRequest("cnn", "fast", epochs, None, kw.pop("batch_size", 16), str(data), "cpu", **kw)


@pytest.fixture
def redis_only(runs, monkeypatch):
    """An engine with no worker: what is queued stays queued."""
    url = engine.start(runs, workers=0)
    monkeypatch.setenv("CIFARNETS_ENGINE", url)
    return runs


def visitor(runs: Path, name: str, public: bool = True, **limits) -> Visitor:
    return Visitor(name * 20, {}, public, PublicLimits(**limits), runs)


def test_every_start_is_queued_in_order_and_leaving_moves_the_later_ones_up(redis_only, tmp_path, monkeypatch):
    runs = redis_only
    monkeypatch.setenv("CIFARNETS_PUBLIC", "1")
    monkeypatch.setenv("CIFARNETS_DATA", str(make_image_folder(tmp_path / "operator-data")))
    a, b, c = (visitor(runs, x) for x in "abc")
    estimates = {"a": 100.0, "b": 40.0, "c": 60.0}
    for v in (a, b, c):  # the estimate the limit judges, without timing steps
        v.estimate_s = lambda request, v=v: estimates[v.token[0]]
    first, second, third = (v.start(request(os.environ["CIFARNETS_DATA"], batch_size=32)) for v in (a, b, c))
    assert [r.state for r in (first, second, third)] == [QUEUED] * 3
    assert [a.wait(first).ahead, b.wait(second).ahead, c.wait(third).ahead] == [0, 1, 2]
    assert c.wait(third).line().startswith("3rd in line")

    with pytest.raises(Refused, match="You have a run waiting or training"):  # one per visitor, by default
        a.start(request(os.environ["CIFARNETS_DATA"], batch_size=32))
    with pytest.raises(Refused, match="not one of your runs"):
        c.cancel(second)

    assert b.cancel(second)  # B leaves the queue: the run is gone, C moves up
    assert not second.folder.exists() and [r.name for r in c.list_runs()] == [third.name]
    assert c.wait(third).ahead == 1 and c.wait(third).line().startswith("2nd in line")
    again = b.start(request(os.environ["CIFARNETS_DATA"], batch_size=32))  # B may start another, last in line
    assert again.state == QUEUED
    assert b.wait(b.list_runs()[0]).ahead == 2


def test_the_estimated_start_counts_the_runs_training_and_those_ahead(tmp_path):
    def folder(name: str, **job) -> str:
        (tmp_path / name).mkdir()
        write_json(tmp_path / name / JOB_FILE, {"request": {"model": "cnn"}, "started": 1000.0} | job)
        return str(tmp_path / name)

    training = [folder("t1", launched=1000.0, estimate_s=300.0)]  # 100 s in: 200 s left by its estimate
    ahead = [folder("q1", estimate_s=50.0), folder("q2", estimate_s=70.0)]
    assert start_in_s(training, ahead, 1, now=1100.0) == 200 + 50 + 70
    assert start_in_s(training, ahead, 2, now=1100.0) == 120  # q1 from 0 to 50, q2 from 50 to 120
    assert start_in_s([], [], 1) == 0
    assert start_in_s(training, [folder("q3")], 1, now=1100.0) is None  # a run ahead without an estimate
    assert start_in_s([], [], 0) is None
    assert Wait(0, None, 0, 0).line(queued=False).startswith("No worker takes runs")
    assert Wait(0, 0.0, 1, 0).line(queued=False) == ""  # a free worker: nothing to say before Start
    assert Wait(2, 600.0, 1, 1).line(queued=False).startswith("Queue: 2 runs waiting, 1 training")
    assert Wait(1, 600.0, 1, 1).line().startswith("2nd in line, starts in about 10m 00s (around ")
    assert Wait(0, 3.0, 1, 1).line() == "1st in line: starts any moment now."  # the estimates leave out loading


def test_the_app_starts_its_engine_itself_and_finds_it_again(runs):
    v = Visitor(runs=runs)
    assert not v.engine.running  # drawing a page starts nothing
    url = v.engine.url
    assert v.engine.running and url.startswith("redis://:") and "@127.0.0.1:" in url
    folder = runs / engine.ENGINE_DIR
    assert oct((folder / engine.URL_FILE).stat().st_mode & 0o777) == "0o600"  # the password
    pids = engine._worker_pids(folder)
    assert len(pids) == v.workers == 4
    assert Visitor(runs=runs).engine.url == url and engine._worker_pids(folder) == pids  # a restart reuses them
    engine.stop(runs)
    assert not v.engine.running


def test_a_queued_run_starts_by_itself_when_the_one_before_ends(runs, tmp_path, monkeypatch):
    """Public mode's one worker: B's run waits behind A's and starts without anyone pressing anything; a race
    queues like a run."""
    monkeypatch.setenv("CIFARNETS_PUBLIC", "1")
    data = make_image_folder(tmp_path / "operator-data", n_train=40)
    monkeypatch.setenv("CIFARNETS_DATA", str(data))
    a, b, c = (visitor(runs, x, trainers=1, min_batch=8) for x in "abc")
    for v in (a, b, c):
        v.estimate_s = lambda request: 30.0
    first = a.start(request(data, epochs=2, batch_size=8))
    second = b.start(request(data, batch_size=8))
    race = c.start(races.RaceRequest("fast", 1, 8, str(data), "cpu"))
    assert b.wait(second).ahead in (0, 1) and c.wait(race).ahead in (1, 2)  # A's may have been taken already
    first = wait_for_state(record.load_run, first.folder, ("running", "testing", "finished", "failed"), RUN_LIMIT)
    assert record.load_run(second.folder).state == QUEUED  # one worker: B waits while A trains
    second = wait_for_state(record.load_run, second.folder, ("finished", "failed"), RUN_LIMIT)
    assert second.state == "finished", second.error
    assert record.load_run(first.folder).state == "finished"
    assert second.job["launched"] >= record.load_run(first.folder).status.updated - 5  # after A, not beside it
    race = wait_for_state(races.load_race, race.folder, ("finished", "failed"), RUN_LIMIT)
    assert race.state == "finished", race.error


def test_a_worker_on_another_machine_trains_and_cancel_reaches_it(runs, tmp_path, monkeypatch):
    """The app starts no worker for an operator's engine ($CIFARNETS_ENGINE); a worker process naming another
    machine trains the run into the shared runs folder; the app sees it alive by its worker's beat, not by a
    pid it cannot see, and Cancel reaches it through job.json."""
    url = engine.start(runs, workers=0)
    monkeypatch.setenv("CIFARNETS_ENGINE", url)
    env = dict(os.environ, CIFARNETS_HOST="another-machine", CIFARNETS_DEVICE="cpu")
    worker = subprocess.Popen([sys.executable, "-m", "cifarnets", "worker", "--url", url, "--queues", "cpu"],
                              env=env, start_new_session=True)
    try:
        data = make_image_folder(tmp_path / "data", n_train=40, n_test=4)
        v = Visitor(runs=runs)
        # Many epochs, so the run is still training when Cancel arrives; a batch of 4 and a long warm-up keep
        # its loss finite meanwhile (a batch of 1 diverged on one CI machine before Cancel reached it).
        run = v.start(request(data, epochs=500, batch_size=4))
        run = wait_for_state(record.load_run, run.folder, ("running", "failed", "finished"), RUN_LIMIT)
        assert run.state == "running" and run.job["host"] == "another-machine" != HOST
        assert not run.here and run.alive  # by the beat: the pid is another machine's
        assert v.cancel(run)
        run = wait_for_state(record.load_run, run.folder, ("stopped", "failed", "finished"), RUN_LIMIT)
        assert run.state == "stopped" and run.resumable, run.error
        assert engine._worker_pids(runs / engine.ENGINE_DIR) == []  # the app started no worker of its own
    finally:
        engine._kill_group(worker.pid)
        worker.wait()


def test_tidying_never_touches_a_queued_run(redis_only):
    from cifarnets.runs.expiry import tidy

    v = Visitor(runs=redis_only)
    run = v.start(request(redis_only, epochs=1))
    old = time.time() - 10 * 3600
    os.utime(run.folder / JOB_FILE, (old, old))
    assert tidy(redis_only, PublicLimits(run_hours=1, runs_mb=0.0001)) == [] and run.folder.exists()


def test_public_workers_leave_the_first_core_to_the_pages(runs, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
        assert engine.worker_cpus(keep_first=True) == {1, 2, 3} and engine.worker_cpus(keep_first=False) is None
        m.setattr(os, "sched_getaffinity", lambda pid: {5})
        assert engine.worker_cpus(keep_first=True) is None  # one core: nothing to keep apart
        m.setenv("CIFARNETS_WORKER_CPUS", "0,2-3")
        assert engine.worker_cpus(keep_first=True) == {0, 2, 3}
        m.setenv("CIFARNETS_WORKER_CPUS", "one")
        with pytest.raises(engine.EngineError, match="CIFARNETS_WORKER_CPUS"):
            engine.worker_cpus(keep_first=True)
    monkeypatch.setenv("CIFARNETS_WORKER_CPUS", "0")  # a core every machine has
    assert engine.Engine(runs, workers=1, keep_first_core=True).url
    deadline = time.monotonic() + 30  # a worker counts once it has exec'd (its command line names it a worker)
    while not engine._worker_pids(runs / engine.ENGINE_DIR) and time.monotonic() < deadline:
        time.sleep(0.1)
    [pid] = engine._worker_pids(runs / engine.ENGINE_DIR)
    assert os.sched_getaffinity(pid) == {0}  # and the trainers it starts inherit it
