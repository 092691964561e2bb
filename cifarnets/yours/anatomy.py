"""What Architecture and Why they differ show of your network: its layer table (shapes and parameters, traced on one
image) and its multiply-accumulates, from the same tracer and counter as the four's, on a private copy; its
Grad-CAM, on the last convolution of its torch module."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..analysis.cost import macs
from ..analysis.gradcam import Cam, grad_cam
from ..diagram import architecture
from .network import YourNetwork


def layer_rows(network: YourNetwork, depth: int | None = None) -> list[dict]:
    """The layer table of its torch module ([] when only onnxruntime runs it). The tracer hooks the copy only."""
    if network.module is None:
        return []
    return architecture.layer_table(copy.deepcopy(network.module), depth)


def total_macs(network: YourNetwork) -> int | None:
    """Multiply-accumulates for one 32x32 image, in its convolutions and linear layers; None without a module."""
    if network.module is None:
        return None
    return sum(macs(network.module).values())


def printout(network: YourNetwork) -> str:
    return str(network.module) if network.module is not None else ""


def cam(network: YourNetwork, x: torch.Tensor, target: int) -> Cam | str:
    """Grad-CAM of one normalised image (1, 3, H, W) for class `target` (in our class order), or why there is none.

    One of our architectures hands back its stages, as the four do. A converted graph does not: its last Conv2d
    stands for the last stage (a hook on a private copy catches its output, since the session's own module may be
    answering in the background measurement's thread); what follows it (a ReLU, a pool) is as in the four's."""
    if network.architecture:
        return grad_cam(network.answerer, x, target)
    if network.module is None:
        return "it answers through onnxruntime, which gives no gradients"
    model = copy.deepcopy(network.answerer).eval()
    convs = [m for m in model.inner.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return "it has no convolution whose map could be weighed"
    caught = []
    hook = convs[-1].register_forward_hook(lambda _m, _i, out: caught.append(out))
    try:
        with torch.enable_grad():
            logits = model(x.detach().clone().requires_grad_(True))  # its weights are frozen: the image carries
            (grads,) = torch.autograd.grad(logits[0, target], caught[-1])
    finally:
        hook.remove()
    acts = caught[-1].detach()
    weights = grads.float().mean((2, 3), keepdim=True)
    heat = F.interpolate(F.relu((weights * acts.float()).sum(1, keepdim=True)), size=tuple(x.shape[-2:]),
                         mode="bilinear", align_corners=False)
    return Cam(heat[0, 0].clamp(min=0).cpu().numpy(), tuple(acts.shape[-2:]), float(logits[0, target].detach()))
