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

from ..models import count_params
from ..models.common import eval_mode
from ..store.runfolder import MODEL_FILE


def macs(model: nn.Module, image_size: int = 32) -> dict[str, int]:
    """{layer name: multiply-accumulates for one image} of each Conv2d and Linear, counted as PyTorch's flop
    counter counts them (a weight's multiplications, no bias), on a blank image in eval mode.

    Counted by hooks on a private copy, not with torch's FlopCounterMode: that names each op's layer through
    module hooks registered for every module of the process, so a network of the same kind that another thread ran
    meanwhile (the sidebar's step timing) lent its layers' names to this one's operations (the CNN came out
    larger, the SE-ResNet 38x the CNN instead of 41x)."""
    model = copy.deepcopy(model).eval()  # private: nobody else runs this copy, so its hooks see only this count
    counts: dict[str, int] = {}

    def counter(name: str):
        def hook(layer: nn.Module, _inputs, output: torch.Tensor) -> None:
            per_output = (layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
                          if isinstance(layer, nn.Conv2d) else layer.in_features)
            counts[name] = counts.get(name, 0) + output.numel() * per_output
        return hook

    handles = [m.register_forward_hook(counter(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return counts


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
