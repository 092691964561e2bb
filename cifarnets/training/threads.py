"""How many threads to compute with on the CPU: one per core that other processes leave idle.

PyTorch starts one OpenMP thread per core and every operator ends at a barrier where the team
waits for its slowest thread. When another process keeps a core busy (a second training run, the
app, a test suite), one of our threads is often descheduled and the whole team waits for it: on
the 2-core machine this project measures on, with one other training run going, a training step
of the CNN took 5-25x longer with 2 threads than with 1 (runs back to back, OMP_NUM_THREADS=1 and 2).
So a run takes only the cores that are idle when it starts, and always at least one.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

WINDOW_S = 0.3  # long enough to see a busy core, short enough not to delay a start


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all cores together, or None where /proc/stat does not exist."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user..steal


def idle_cores(window: float = WINDOW_S) -> float | None:
    """How many cores' worth of time went unused over the next `window` seconds (Linux only)."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(window)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def for_training() -> int:
    """The thread count a CPU run should use; OMP_NUM_THREADS (torchrun sets it per rank) wins."""
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    idle = idle_cores()
    if idle is None:
        return torch.get_num_threads()
    return max(1, min(torch.get_num_threads(), round(idle)))


@contextlib.contextmanager
def training_threads(device: torch.device) -> Iterator[int]:
    """Compute with for_training() threads inside the block (CPU only), then restore the count."""
    before = torch.get_num_threads()
    n = for_training() if device.type == "cpu" else before
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
