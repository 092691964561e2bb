"""What every network hands back besides its logits, so that no view needs hooks on a shared model."""

from __future__ import annotations

from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import nn


class Intermediates(NamedTuple):
    logits: torch.Tensor  # (N, classes)
    stages: dict[str, torch.Tensor]  # each stage's output (N, C, H, W), in the order the image meets them
    features: torch.Tensor  # (N, D): the vector the classifier reads
    gates: dict[str, torch.Tensor]  # SE blocks' channel weights (N, C) by block name; empty without SE


@contextmanager
def eval_mode(model: nn.Module):
    """Eval mode inside the block, training mode again after if the model was training.

    A model already in eval mode, as every network the app shares between sessions is, is never
    written to: a view running in one session cannot change what another session's forward pass does.
    """
    if not model.training:
        yield model
        return
    model.eval()
    try:
        yield model
    finally:
        model.train()
