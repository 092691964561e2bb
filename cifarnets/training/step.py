"""One training step and what it needs: the optimizer's parameter groups, the loss (distillation
included), the step itself, and a running average of the weights. fit() and `cifarnets bench` share it.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from ..device import autocast
from ..store.runfolder import TrainingError
from .recipes import Recipe

CHANNELS_LAST = True  # faster for these convolutions on CUDA and on the CPU alike (cifarnets bench)


def place(model: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    """The model on `dev` in the memory format the trainer computes in."""
    return model.to(dev, memory_format=torch.channels_last if CHANNELS_LAST else torch.contiguous_format)


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    # Weight decay on conv/linear weights only: decaying BatchNorm scales and biases only hurts. Those
    # may also step faster (bias_lr_scale): they are few, and a larger step settles them early.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay, "lr_scale": 1.0},
              {"params": no_decay, "weight_decay": 0.0, "lr_scale": recipe.bias_lr_scale}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr)
    raise TrainingError(f"unknown optimizer {recipe.optimizer!r} in recipe {recipe.name!r}")


class Objective:
    """The loss a step minimises: cross-entropy (label-smoothed as the recipe says), and where the recipe
    names teachers, a share of KL divergence to their answer softened at a temperature. That answer is
    the batch's fixed targets when given (`soft`: log-probabilities), else the teachers compute it live."""

    def __init__(self, recipe: Recipe, teachers: list[torch.nn.Module] | tuple = ()) -> None:
        self.smoothing = recipe.label_smoothing
        self.teachers, self.weight, self.temperature = list(teachers), recipe.distill_weight, recipe.distill_temperature

    def __call__(self, logits: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor,
                 soft: torch.Tensor | None = None) -> torch.Tensor:
        loss = F.cross_entropy(logits, yb, label_smoothing=self.smoothing)
        if not self.weight or (soft is None and not self.teachers):
            return loss
        if soft is None:
            with torch.no_grad():
                soft = mean_answer([teacher(xb) for teacher in self.teachers])
        target = F.log_softmax(soft.float() / self.temperature, dim=1)
        # T^2 keeps the soft targets' gradients on the scale of the hard ones' (Hinton et al. 2015)
        soft_loss = F.kl_div(F.log_softmax(logits / self.temperature, dim=1), target, log_target=True,
                             reduction="batchmean") * self.temperature ** 2
        return (1 - self.weight) * loss + self.weight * soft_loss


def mean_answer(logits: list[torch.Tensor]) -> torch.Tensor:
    """The log of the softmaxes averaged (over teachers, views or both), as the app averages views. Taken
    in log space, so a class no one gives any chance stays a finite log-probability, never log 0. For
    one network it is its log_softmax: softened at T, the same target as its logits at T."""
    stacked = torch.stack([F.log_softmax(z.float(), dim=1) for z in logits])
    return torch.logsumexp(stacked, 0) - math.log(len(logits))


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, objective: Objective, xb: torch.Tensor,
               yb: torch.Tensor, lr: float, soft: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step at `lr`; returns (summed plain cross-entropy, correct count) as device tensors,
    so the caller decides when to pay for reading them back."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    with autocast(xb.device):
        logits = net(xb)
        loss = objective(logits.float(), xb, yb, soft)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():  # plain cross-entropy, comparable with the test loss
        return F.cross_entropy(logits.float(), yb, reduction="sum"), (logits.argmax(1) == yb).sum()


class WeightAverage:
    """An exponential moving average of a network's weights and BatchNorm statistics, updated after each
    step: what the run evaluates and saves when its recipe asks for one. Early on the decay is lower
    (Tensorflow's num_updates rule), so the first, random weights fade out of the average quickly."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay, self.updates = decay, 0
        self._pair(model)

    def _pair(self, model: torch.nn.Module) -> None:
        ours, theirs = self.model.state_dict().values(), model.state_dict().values()
        pairs = list(zip(ours, theirs, strict=True))
        self.floats = [(a, b) for a, b in pairs if a.dtype.is_floating_point]
        self.counts = [(a, b) for a, b in pairs if not a.dtype.is_floating_point]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        averaged, live = zip(*self.floats, strict=True)
        torch._foreach_lerp_(list(averaged), list(live), 1 - decay)
        for a, b in self.counts:
            a.copy_(b)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
