"""What a network costs: parameters, multiply-accumulates for one image, latency, and size on disk.

MACs count the multiply-accumulates of convolutions and linear layers, the usual convention: BatchNorm,
ReLU, pooling and bias additions are left out (together they are a few percent at most here).
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..models import count_params
from ..models.common import eval_mode
from ..store.runfolder import MODEL_FILE


def macs(model: nn.Module, image_size: int = 32) -> dict[str, int]:
    """{layer name: multiply-accumulates for one image} of each Conv2d and Linear, as PyTorch's own flop
    counter counts them (a multiply-accumulate is two of its FLOPs), on a blank image in eval mode."""
    model = copy.deepcopy(model).eval()  # private: the counter sees a model nobody else is using
    layers = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device))
    prefix = type(model).__name__ + "."  # the counter names a module "<class>.<dotted name>"
    return {name.removeprefix(prefix): sum(ops.values()) // 2 for name, ops in counter.get_flop_counts().items()
            if name.removeprefix(prefix) in layers}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def latency(model: nn.Module, batch: int, *, min_runs: int = 3, budget_s: float = 2.0) -> float:
    """Median seconds for one forward pass of `batch` images on the model's device, in float32 as the app
    classifies: `latencies` of this model alone."""
    return latencies({"model": model}, batch, min_rounds=min_runs, budget_s=budget_s)["model"]


@torch.no_grad()
def latencies(models: dict[str, nn.Module], batch: int, *, min_rounds: int = 3,
              budget_s: float = 2.0) -> dict[str, float]:
    """{name: median seconds for one forward pass of `batch` images}, the models timed together.

    Every model is warmed up first (two passes each); then, round by round, each runs once, in an order
    that reverses every round. Timed one after another instead, a network measured while the machine was
    busier (other work, a clock that has not boosted yet) looked a third faster or slower than its twin:
    interleaved, a drift in the machine's speed weighs on all of them alike. At least `min_rounds` rounds,
    more while within `budget_s` per model."""
    names = list(models)
    inputs = {n: torch.randn(batch, 3, 32, 32, device=next(models[n].parameters()).device) for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    with contextlib.ExitStack() as stack:
        for n in names:
            stack.enter_context(eval_mode(models[n]))
        for n in names:
            for _ in range(2):
                models[n](inputs[n])
            _sync(inputs[n].device)
        start = time.perf_counter()
        rounds = 0
        while rounds < min_rounds or (time.perf_counter() - start < budget_s * len(names) and rounds < 200):
            for n in (names if rounds % 2 == 0 else names[::-1]):
                tick = time.perf_counter()
                models[n](inputs[n])
                _sync(inputs[n].device)
                times[n].append(time.perf_counter() - tick)
            rounds += 1
    return {n: statistics.median(t) for n, t in times.items()}


def checkpoint_bytes(folder: str | Path) -> int | None:
    path = Path(folder) / MODEL_FILE
    return path.stat().st_size if path.is_file() else None


def static_cost(model: nn.Module) -> dict:
    """What needs neither data nor a device to time: parameters and MACs."""
    per_layer = macs(model)
    return {"params": count_params(model), "macs": sum(per_layer.values()), "macs_per_layer": per_layer}
