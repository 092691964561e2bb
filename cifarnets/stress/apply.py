"""`predict --corrupt NAME:SEVERITY` and `predict --attack KIND:EPS --against KEY`: one image's pixels -> the
pixels the networks are then shown."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..store.checkpoints import Entry
from . import attacks, corruptions


def attack_pixels(model: torch.nn.Module, pixels: np.ndarray, kind: str, eps: int) -> np.ndarray:
    """(32, 32, 3) uint8 -> the same perturbed by FGSM or PGD within eps/255 against the model's own answer."""
    x = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).unsqueeze(0)
    x = x.to(next(model.parameters()).device)
    target = attacks.answers(model, x).argmax(1)
    adv = (attacks.fgsm if kind == "fgsm" else attacks.pgd)(model, x, target, eps)
    return adv[0].permute(1, 2, 0).cpu().numpy()


def change(corrupt: str | None, attack: str | None, against: str | None,
           entries: dict[str, Entry]) -> Callable[[np.ndarray], np.ndarray] | None:
    """What predict does to each image before the networks see it, from its flags; a one-line ValueError for
    flags that do not fit together."""
    if corrupt and attack:
        raise ValueError("give --corrupt or --attack, not both")
    if against and not attack:
        raise ValueError("--against names the network --attack targets: give --attack too")
    if corrupt:
        name, severity = corruptions.parse(corrupt)
        return lambda p: corruptions.corrupt(p, name, severity)
    if attack:
        kind, eps = attacks.parse(attack)
        if not against:
            raise ValueError("--attack needs --against KEY: the network the perturbation is made against")
        if not entries[against].ok:
            raise ValueError(f"--against {against}: {entries[against].reason}")
        return lambda p: attack_pixels(entries[against].model, p, kind, eps)
    return None
