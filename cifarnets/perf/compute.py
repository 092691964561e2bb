"""Arithmetic per image, the machine's peak, and CPU time: how close training comes to the hardware.

On a shared CPU, wall-clock speed says as much about the other processes as about ours. CPU time
does not: images per CPU-second (counting every process a pipeline runs, DataLoader workers
included) is the cost of a pipeline, and GFLOP per CPU-second against one big matrix product's,
measured the same way, is how much of a core's arithmetic a network turns into training.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from ..models import build


def cpu_seconds() -> float:
    """CPU time of this process and of its live children (DataLoader workers); on Linux the children
    come from /proc, elsewhere this process alone is counted."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in _children():
        try:  # utime and stime are fields 14 and 15; the name in field 2 may hold spaces, so split after ')'
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):  # a child that just ended
            pass
    return total


def _children() -> list[int]:
    try:
        return [int(pid) for task in Path("/proc/self/task").iterdir()
                for pid in (task / "children").read_text().split()]
    except OSError:
        return []


def gflop_per_image(key: str, num_classes: int) -> tuple[float, float]:
    """(forward, forward+backward) GFLOP per image, counted by PyTorch over the convolutions and
    matrix products (normalisation, activations and pooling add memory traffic, not FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build(key, num_classes=num_classes).train()
    x = torch.randn(2, 3, 32, 32)
    with FlopCounterMode(display=False) as forward:
        out = model(x)
    with FlopCounterMode(display=False) as backward:
        out.sum().backward()
    f, b = forward.get_total_flops() / 2, backward.get_total_flops() / 2
    return f / 1e9, (f + b) / 1e9


def peak_gflop_s(dev: torch.device, precisions=("fp32", "bf16"), n: int = 2048) -> dict[str, float]:
    """GFLOP/s of one big matrix product in each precision, the best of four: the most these networks'
    convolutions could hope for. On the CPU per CPU-second (a core's peak, whatever else runs)."""
    clock = cpu_seconds if dev.type == "cpu" else time.perf_counter
    out = {}
    for name in precisions:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[name]
        a, b = torch.randn(n, n, device=dev).to(dtype), torch.randn(n, n, device=dev).to(dtype)
        best = float("inf")
        for _ in range(4):
            tick = clock()
            (a @ b).sum().item()
            best = min(best, max(clock() - tick, 1e-9))
        out[name] = round(2 * n ** 3 / best / 1e9, 1)
    return out
