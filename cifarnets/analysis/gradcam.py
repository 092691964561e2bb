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

from ..models.common import eval_mode


@dataclass
class Cam:
    heat: np.ndarray  # (H, W) float32 >= 0, the input image's size; not normalised (0 everywhere is possible)
    grid: tuple[int, int]  # the feature map's own resolution
    score: float  # the target class's logit


def grad_cam(model: nn.Module, x: torch.Tensor, target: int) -> Cam:
    """Grad-CAM of one normalised image batch (1, 3, H, W) for class `target`, on the last stage's output.

    The network hands back its stage outputs itself (forward_intermediates), so nothing is attached to a
    model that other sessions share, and a model already in eval mode is not touched.
    """
    with eval_mode(model), torch.enable_grad():
        out = model.forward_intermediates(x.to(next(model.parameters()).device))
        acts = list(out.stages.values())[-1]
        (grads,) = torch.autograd.grad(out.logits[0, target], acts)
    weights = grads.float().mean((2, 3), keepdim=True)
    cam = F.relu((weights * acts.float()).sum(1, keepdim=True)).detach()
    heat = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    return Cam(heat[0, 0].clamp(min=0).cpu().numpy(), tuple(acts.shape[-2:]), float(out.logits[0, target].detach()))
