"""One image under a corruption or an attack, and what every network then says: for `predict --corrupt NAME:SEVERITY`,
`predict --attack KIND:EPS --against KEY` and the Stress test page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UsageError
from ..predict import answers, batch
from ..store.checkpoints import Entry
from ..unfamiliar.calibration import Verdict
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
        raise UsageError("give --corrupt or --attack, not both")
    if against and not attack:
        raise UsageError("--against names the network --attack targets: give --attack too")
    if corrupt:
        name, severity = corruptions.parse(corrupt)
        return lambda p: corruptions.corrupt(p, name, severity)
    if attack:
        kind, eps = attacks.parse(attack)
        if not against:
            raise UsageError("--attack needs --against KEY: the network the perturbation is made against")
        if not entries[against].ok:
            raise UsageError(f"--against {against}: {entries[against].reason}")
        return lambda p: attack_pixels(entries[against].model, p, kind, eps)
    return None


# ---------------------------------------------------------------- one image, every network (the page)

@dataclass
class Seen:
    """One network's answer to one image: its top class, that probability, and the unfamiliar verdict."""

    label: str
    prob: float
    verdict: Verdict | None


def ladder(pixels: np.ndarray, name: str) -> np.ndarray:
    """(SEVERITIES + 1, 32, 32, 3): the image under one corruption at every severity, 0 (unchanged) first; one
    seed for all, so each severity is the same random pattern made stronger."""
    return np.stack([corruptions.corrupt(pixels, name, s) for s in range(corruptions.SEVERITIES + 1)])


def seen(entries: dict[str, Entry], images: np.ndarray) -> dict[str, list[Seen]]:
    """Every loaded network's answer and verdict for each of several (32, 32, 3) uint8 images, in one batch."""
    found = answers(entries, batch(list(images)))
    out = {}
    for key, a in found.items():
        p, i = a.probs.max(1)
        out[key] = [Seen(entries[key].classes[int(c)], float(q), a.verdicts[row] if a.verdicts else None)
                    for row, (q, c) in enumerate(zip(p, i, strict=True))]
    return out


def first_change(answers: list[Seen]) -> int | None:
    """The first severity at which the answer differs from the clean one (severity 0), or None."""
    return next((s for s, a in enumerate(answers) if a.label != answers[0].label), None)


@dataclass
class Attacked:
    """One network's attacked image at one budget: the image, the perturbation as a picture, its scale, and the
    answers before and after."""

    image: np.ndarray  # (32, 32, 3) uint8
    picture: np.ndarray  # (32, 32, 3) uint8: the perturbation amplified around grey
    scale: int
    before: str
    after: str
    prob: float


def attack_every(entries: dict[str, Entry], pixels: np.ndarray, kind: str, eps: int) -> dict[str, Attacked]:
    """For each loaded network, the image perturbed against it within eps/255, and its answers before and after."""
    x = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).unsqueeze(0)
    out = {}
    for key, e in entries.items():
        if not e.ok:
            continue
        device = next(e.model.parameters()).device
        clean = attacks.answers(e.model, x.to(device))[0]
        target = clean.argmax().view(1)
        adv = (attacks.fgsm if kind == "fgsm" else attacks.pgd)(e.model, x.to(device), target, eps)[0].cpu()
        p = attacks.answers(e.model, adv.unsqueeze(0).to(device))[0].cpu()
        picture, scale = attacks.amplified(adv, x[0])
        out[key] = Attacked(adv.cpu().permute(1, 2, 0).numpy(), picture.cpu().permute(1, 2, 0).numpy(), scale,
                            e.classes[int(target)], e.classes[int(p.argmax())], float(p.max()))
    return out


def smallest_every(entries: dict[str, Entry], pixels: np.ndarray) -> dict[str, attacks.Broken]:
    """For each loaded network, the smallest PGD-10 budget that changes its answer (attacks.smallest_eps)."""
    x = torch.from_numpy(np.array(pixels)).permute(2, 0, 1)
    return {key: attacks.smallest_eps(e.model, x.to(next(e.model.parameters()).device))
            for key, e in entries.items() if e.ok}


def which_way(before: str, after: str, truth: str | None) -> str:
    """Which way an answer went under a corruption or an attack: "holds", "now right", "now wrong", "changed, still
    wrong", or, when nobody said what the picture shows, "changed". Never "fooled": an attack can fix an answer
    (the CNN's deer on the frog example becomes frog at ε = 2/255)."""
    if after == before:
        return "holds"
    if truth is None:
        return "changed"
    return "now right" if after == truth else "now wrong" if before == truth else "changed, still wrong"
