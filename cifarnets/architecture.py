"""What each network is made of: its printout, a layer table traced from one 32x32 image, and a description."""

from __future__ import annotations

import torch
from torch import nn

from .models import KEYS, build, count_params, label

# In our own words: what each network does with an image, and what the report found about it.
DESCRIPTIONS = {
    "cnn": (
        "The baseline: two 5x5 convolutions, each followed by ReLU and 2x2 max pooling, then three fully "
        "connected layers (400 -> 120 -> 84 -> 10), in the style of LeNet-5 and PyTorch's CIFAR-10 tutorial. "
        "No normalisation and no shortcuts, and most of its parameters sit in the first fully connected "
        "layer. The report trained it with Adam for 10 epochs to about 64% test accuracy, close to what "
        "such a shallow network can reach."),
    "resnet": (
        "A small ResNet: a 3x3 stem with 16 channels, then three stages of two residual blocks (16, 32 and "
        "64 channels). Each block adds its input back to the output of two 3x3 convolutions, so gradients "
        "have a direct path to early layers; where a stage halves the resolution, a strided 1x1 convolution "
        "reshapes the shortcut. Global average pooling feeds a single 64 -> 10 layer. The report reached "
        "above 80% in 20 epochs with no sign of overfitting yet."),
    "densenet": (
        "A small DenseNet: a 7x7 stride-2 stem and 3x3 max pooling shrink the image to 8x8 early, then three "
        "dense blocks of three layers each. Every layer (BatchNorm, ReLU, 3x3 convolution) adds 12 new "
        "channels and sees all earlier ones, so features are reused rather than relearned; transition "
        "layers (1x1 convolution, 2x2 average pooling) compress between blocks. The report measured above "
        "75% with the test loss rising late in training: it overfits."),
    "se_resnet": (
        "The same ResNet with a squeeze-and-excitation block in every residual branch: it averages each "
        "channel over the image, passes the result through a small bottleneck (C -> C/16 -> C) and a "
        "sigmoid, and rescales the channels by those weights before the shortcut is added. It is "
        "channel attention for about 1% more parameters. Trained with SGD and a step learning-rate "
        "schedule, the report found it converged above 80%, about level with the plain ResNet."),
}


def summary(key: str) -> dict:
    """Label, class name, parameter count and the exact `print(model)` text of one network."""
    model = build(key)
    return {"key": key, "label": label(key), "class": type(model).__name__, "params": count_params(model),
            "printout": str(model)}


def param_counts() -> list[dict]:
    """One row per network, in the registry's order: what the parameter chart draws."""
    return [{"network": label(k), "params": count_params(build(k))} for k in KEYS]


def _type_name(module: nn.Module) -> str:
    # The identity shortcut of a ResNet block is an empty Sequential: say what it does.
    if isinstance(module, nn.Sequential) and len(module) == 0:
        return "Identity (empty Sequential)"
    return type(module).__name__


def _shape(output) -> str:
    """'16x32x32' for one image's (C, H, W) output; the batch dimension is left out."""
    if isinstance(output, torch.Tensor):
        return "x".join(str(d) for d in output.shape[1:])
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return _shape(output[0])
    return "?"


def _selected(name: str, module: nn.Module, depth: int | None) -> bool:
    """Leaves always; with a depth, also the containers at exactly that depth (their insides are hidden)."""
    level = name.count(".") + 1
    is_leaf = not any(True for _ in module.children())
    if depth is None:
        return is_leaf
    return level == depth or (is_leaf and level < depth)


def layer_table(model: nn.Module, depth: int | None = None, size: int = 32) -> list[dict]:
    """The modules an image passes through, in the order it meets them, traced on one size x size image.

    Rows: layer (dotted name), type, output (C x H x W), params (the module's own, counted once: a
    module called twice, like the CNN's shared max pool, gets a second row with 0). With `depth`, the
    table stops at that nesting level (1: the top-level blocks). Operations written as functions in
    forward() (F.relu, additions, concatenation) are not modules and have no row.
    """
    rows: list[dict] = []
    open_rows: list[dict] = []
    calls: dict[str, int] = {}
    handles = []

    def before(name: str, module: nn.Module):
        def hook(_module, _inputs):
            calls[name] = calls.get(name, 0) + 1
            first = calls[name] == 1
            row = {"layer": name if first else f"{name} (call {calls[name]})", "type": _type_name(module),
                   "output": "?", "params": count_params(module) if first else 0}
            rows.append(row)
            open_rows.append(row)
        return hook

    def after(_module, _inputs, output):
        open_rows.pop()["output"] = _shape(output)

    for name, module in model.named_modules():
        if name and _selected(name, module, depth):
            handles.append(module.register_forward_pre_hook(before(name, module)))
            handles.append(module.register_forward_hook(after))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows
