"""A CPU run computes with the idle cores, at least one; OMP_NUM_THREADS wins; the count is put back after."""

import os

import pytest
import torch

from cifarnets.training import threads


@pytest.mark.parametrize("idle,cores,expected", [(None, 8, 8), (0.2, 8, 1), (1.4, 8, 1), (2.6, 8, 3), (20.0, 8, 8),
                                                  (1.6, 2, 2)])
def test_the_count_is_the_idle_cores_rounded_at_least_one_at_most_torchs(monkeypatch, idle, cores, expected):
    """None: no /proc/stat, so torch's own count."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "idle_cores", lambda window=0: idle)
    monkeypatch.setattr(threads.torch, "get_num_threads", lambda: cores)
    assert threads.for_training() == expected


def test_busy_cores_are_left_alone_and_one_thread_always_remains(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "idle_cores", lambda window=0: 0.2)
    assert threads.for_training() == 1
    monkeypatch.setattr(threads, "idle_cores", lambda window=0: float(torch.get_num_threads()))
    assert threads.for_training() == torch.get_num_threads()


def test_omp_num_threads_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(threads, "idle_cores", lambda window=0: pytest.fail("measured despite OMP_NUM_THREADS"))
    assert threads.for_training() == torch.get_num_threads()


@pytest.mark.parametrize("readings,expected", [([(100, 1000), (160, 1100)], 1.2),  # 60 of 100 jiffies idle, 2 cores
                                               ([(100, 1000), (100, 1100)], 0.0),  # every core busy
                                               ([(100, 1000), (100, 1000)], None),  # no time passed
                                               ([None], None)])  # no /proc/stat
def test_idle_cores_is_the_idle_share_of_the_window_times_the_cores(monkeypatch, readings, expected):
    given = iter(readings)
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(given))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.idle_cores(0) == expected


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux only")
def test_cpu_times_reads_idle_and_total_jiffies_of_this_machine():
    idle, total = threads._cpu_times()
    assert 0 < idle < total


def test_the_previous_count_is_restored(monkeypatch):
    monkeypatch.setattr(threads, "for_training", lambda: 1)
    before = torch.get_num_threads()
    with threads.training_threads(torch.device("cpu")) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
