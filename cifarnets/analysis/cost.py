"""What a network costs: parameters, multiply-accumulates for one image, latency, and size on disk.

MACs count the multiplications of convolutions and linear layers, the usual convention: BatchNorm,
ReLU, pooling and bias additions are left out (together they are a few percent at most here).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch import nn

from ..checkpoints import MODEL_FILE
from ..models import count_params


def macs(model: nn.Module, image_size: int = 32) -> dict[str, int]:
    """{layer name: multiply-accumulates for one image}, counted with forward hooks on each Conv2d and Linear."""
    names = {m: n for n, m in model.named_modules()}
    counts: dict[str, int] = {}

    def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
        per_output = (module.in_features if isinstance(module, nn.Linear)
                      else module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1])
        counts[names[module]] = counts.get(names[module], 0) + output[0].numel() * per_output

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return counts


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@torch.no_grad()
def latency(model: nn.Module, batch: int, *, min_runs: int = 3, budget_s: float = 2.0) -> float:
    """Median seconds for one forward pass of `batch` images on the model's device, in float32 as the app
    classifies. Two warm-up passes first; then at least `min_runs` timed passes, more while within budget."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = torch.randn(batch, 3, 32, 32, device=device)
    times: list[float] = []
    try:
        for _ in range(2):
            model(x)
        _sync(device)
        start = time.perf_counter()
        while len(times) < min_runs or (time.perf_counter() - start < budget_s and len(times) < 200):
            tick = time.perf_counter()
            model(x)
            _sync(device)
            times.append(time.perf_counter() - tick)
    finally:
        model.train(was_training)
    return statistics.median(times)


def checkpoint_bytes(folder: str | Path) -> int | None:
    path = Path(folder) / MODEL_FILE
    return path.stat().st_size if path.is_file() else None


def static_cost(model: nn.Module) -> dict:
    """What needs neither data nor a device to time: parameters and MACs."""
    per_layer = macs(model)
    return {"params": count_params(model), "macs": sum(per_layer.values()), "macs_per_layer": per_layer}
