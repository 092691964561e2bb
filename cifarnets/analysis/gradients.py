"""How strongly each weight layer is pushed: the norm of the loss gradient of its weights, against depth.

The report claims gradients fade with depth in a plain network and keep flowing through shortcuts and
dense connections. The trainer records these norms (GradientProbe) at initialisation and after every
epoch, and the `analyze` command measures them again on a checkpoint.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.loader import normalize
from ..data.sources import Split
from ..models import build
from .layers import WeightLayer, weight_layers

PROBE_IMAGES = 256
PROBE_BATCH = 128


def grad_norms(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
               layers: list[WeightLayer] | None = None) -> dict[str, float]:
    """{layer name: L2 norm of d(cross-entropy)/d(weight)}, averaged over `batches`, in execution order.

    Measured in training mode (BatchNorm on batch statistics, as the optimizer sees it), with
    torch.autograd.grad so no .grad is touched, and BatchNorm's running statistics put back afterwards:
    measuring changes nothing about the run being measured.
    """
    layers = layers or weight_layers(model)
    weights = [layer.module.weight for layer in layers]
    saved = [b.clone() for b in model.buffers()]  # BatchNorm's running statistics
    was_training = model.training
    model.train()
    sums = torch.zeros(len(weights), dtype=torch.float64)
    try:
        for x, y in batches:
            loss = F.cross_entropy(model(x).float(), y)
            grads = torch.autograd.grad(loss, weights)
            sums += torch.stack([g.detach().float().norm() for g in grads]).double().cpu()
    finally:
        with torch.no_grad():
            for buf, old in zip(model.buffers(), saved, strict=True):
                buf.copy_(old)
        model.train(was_training)
    # Not rounded: a resumed run must record what an uninterrupted one does, up to float noise.
    means = sums / max(len(batches), 1)
    return {layer.name: float(v) for layer, v in zip(layers, means, strict=True)}


class GradientProbe:
    """A fixed sample of training images, kept on the device, that fit() measures gradient norms on.

    The same images every time, so epochs are comparable; drawn with a private generator (the classes
    are spread evenly even where a folder source lists them class by class), so the training run's own
    random stream is untouched. Two batches of 128: about 1% of a CIFAR-10 epoch's work.
    """

    def __init__(self, split: Split, device: torch.device | str, images: int = PROBE_IMAGES,
                 batch_size: int = PROBE_BATCH) -> None:
        # On a tiny data set (the tests'), an eighth of the split at most: the probe stays cheap next to an epoch.
        images = max(2, min(images, len(split) // 8))
        pick = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:images]
        self.x, self.y = split.x[pick].to(device), split.y[pick].to(device)
        self.chunks = max(1, math.ceil(len(pick) / batch_size))  # near-equal chunks: never a batch of one

    def __call__(self, model: nn.Module) -> dict[str, float]:
        xs, ys = torch.tensor_split(self.x, self.chunks), torch.tensor_split(self.y, self.chunks)
        return grad_norms(model, [(normalize(x), y) for x, y in zip(xs, ys, strict=True)])


@functools.lru_cache(maxsize=32)
def layer_meta(key: str, num_classes: int = 10) -> tuple[tuple[str, int, str, int], ...]:
    """(name, depth, kind, number of weights) of each weight layer of network `key`; computed once per key."""
    return tuple((w.name, w.depth, w.kind, w.module.weight.numel()) for w in weight_layers(build(key, num_classes)))


def depth_rows(key: str, norms: dict[str, float], num_classes: int = 10) -> list[dict]:
    """One row per measured layer of network `key`: name, depth, kind, gradient norm, and RMS per weight
    (norm / sqrt(number of weights)).

    The RMS makes layers of different sizes comparable: a 64x64x3x3 convolution has 16 times the
    weights of a 16x16x3x3 one, so its gradient norm is larger for that reason alone.
    """
    return [{"layer": name, "depth": depth, "kind": kind, "weights": n, "norm": norms[name],
             "rms": norms[name] / math.sqrt(n)}
            for name, depth, kind, n in layer_meta(key, num_classes) if name in norms]
