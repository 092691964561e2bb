"""Grad-CAM (Selvaraju et al., 2017): which parts of an image raise a network's score for one class.

The last feature map before the classifier is weighted, channel by channel, by how much the class score
rises with it (its gradient, averaged over the map), summed, and kept where positive. Its resolution is
the network's: 10x10 for the CNN, 8x8 for the ResNets, only 2x2 for the DenseNet, which shrinks early.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.cnn import Net
from ..models.densenet import DenseBlock, SimpleDenseNet
from ..models.resnet import ResNet


def target_layer(model: nn.Module) -> nn.Module:
    """The module whose output is the last spatial feature map."""
    if isinstance(model, Net):
        return model.conv2
    if isinstance(model, ResNet):  # also the SE-ResNet and the plain ResNet
        return model.layer3
    if isinstance(model, SimpleDenseNet):
        return [m for m in model.features if isinstance(m, DenseBlock)][-1]
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]


@dataclass
class Cam:
    heat: np.ndarray  # (H, W) float32 >= 0, the input image's size; not normalised (0 everywhere is possible)
    grid: tuple[int, int]  # the feature map's own resolution
    score: float  # the target class's logit


def grad_cam(model: nn.Module, x: torch.Tensor, target: int) -> Cam:
    """Grad-CAM of one normalised image batch (1, 3, H, W) for class `target`, in eval mode."""
    layer = target_layer(model)
    store: dict[str, torch.Tensor] = {}
    hook = layer.register_forward_hook(lambda m, i, out: store.__setitem__("a", out))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x.to(next(model.parameters()).device))
            acts = store["a"]
            (grads,) = torch.autograd.grad(logits[0, target], acts)
    finally:
        hook.remove()
        model.train(was_training)
    weights = grads.float().mean((2, 3), keepdim=True)
    cam = F.relu((weights * acts.float()).sum(1, keepdim=True)).detach()
    heat = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    return Cam(heat[0, 0].clamp(min=0).cpu().numpy(), tuple(acts.shape[-2:]), float(logits[0, target].detach()))
