"""A CPU run computes with the idle cores, at least one; OMP_NUM_THREADS wins; the count is put back after."""

import os

import pytest
import torch

from cifarnets.training import threads


def test_the_count_is_between_one_and_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert 1 <= threads.for_training() <= torch.get_num_threads()


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


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux only")
def test_idle_cores_reads_a_fraction_of_the_machine():
    assert 0 <= threads.idle_cores(0.05) <= os.cpu_count()


def test_the_previous_count_is_restored(monkeypatch):
    monkeypatch.setattr(threads, "for_training", lambda: 1)
    before = torch.get_num_threads()
    with threads.training_threads(torch.device("cpu")) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
