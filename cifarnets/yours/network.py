"""Your network: one typed record for a network a visitor brings, whichever way it came in, and the Entry the
app's pipelines (Classify, the Stress test, predict) answer with beside the four.

Every network of ours takes images normalised with CIFAR-10's mean and std and answers in CIFAR-10's class
order. A network brought in may expect other numbers, or another order: Adapted re-normalises the input and
puts the outputs in our order, inside the module, so every view answers, and differentiates, the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import CIFAR10_CLASSES
from ..data.loader import MEAN, STD
from ..models.common import Intermediates
from ..store.checkpoints import CheckpointError, Entry

KINDS = {"onnx": "an ONNX file", "checkpoint": "a cifarnets checkpoint", "hub": "a Hugging Face Hub repository"}
MAX_NAME = 40
# Plain words for the unfamiliar-input badge: a visitor cannot run the command that calibrates a network.
NO_CALIBRATION = ("not calibrated for it: that check is measured once for each network, on the test split and "
                  "real photos, and a network brought in has not been")


class Adapted(nn.Module):
    """`inner`, fed our normalised images re-normalised to its own numbers, its outputs put in our class order."""

    def __init__(self, inner: nn.Module, mean=MEAN, std=STD, order: list[int] | None = None):
        super().__init__()
        self.inner = inner
        ours_mean, ours_std = torch.tensor(MEAN), torch.tensor(STD)
        theirs_mean, theirs_std = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        # (pixel - mean) / std, from ours: x * ours_std + ours_mean is the pixel in [0, 1]
        self.register_buffer("scale", (ours_std / theirs_std).view(1, 3, 1, 1))
        self.register_buffer("shift", ((ours_mean - theirs_mean) / theirs_std).view(1, 3, 1, 1))
        self.order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x * self.scale + self.shift)
        return logits[:, self.order] if self.order is not None else logits

    def forward_intermediates(self, x: torch.Tensor) -> Intermediates:
        """Logits only: the stages of a graph brought in are not known. Its logits stand in for the features."""
        logits = self.forward(x)
        return Intermediates(logits, {}, logits, {})


class YourEntry(Entry):
    """An Entry named by its visitor; its unfamiliar-input note is in words, never a command."""

    def __init__(self, network: YourNetwork):
        super().__init__(network.name, network.path, network.answerer, network.config)
        self.network = network
        self.no_calibration = network.no_calibration

    @property
    def label(self) -> str:
        return self.network.name


@dataclass
class YourNetwork:
    """A network brought in: what it is, what answers for it, and what it cannot show and why."""

    name: str
    kind: str  # a key of KINDS
    source: str  # where it came from, in words
    answerer: nn.Module  # what answers, in our normalisation and class order: always there
    module: nn.Module | None = None  # the torch module, None when only onnxruntime runs it (no gradients)
    architecture: str | None = None  # the key of our network it is one of (a checkpoint), else None
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    classes: list[str] = field(default_factory=lambda: list(CIFAR10_CLASSES))  # the order it answers in itself
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # view -> why not, in one plain line
    no_calibration: str = NO_CALIBRATION  # "" when a calibration came with it and still fits
    path: Path = Path("yours")  # the folder it came from, or a name standing for the bytes (a cache key)
    file_params: int | None = None  # an ONNX file's own count (its initializers): what onnxruntime runs has none
    diagrams: dict[str, str] = field(default_factory=dict)  # an ONNX graph's drawing, DOT by level (onnxdiagram.py)

    @property
    def gradients(self) -> bool:
        return self.module is not None

    @property
    def params(self) -> int:
        if self.module is None and self.file_params is not None:
            return self.file_params
        return sum(p.numel() for p in (self.module or self.answerer).parameters())

    def entry(self) -> YourEntry:
        return YourEntry(self)

    def why_not(self, view: str) -> str:
        """One line saying why `view` is not shown for this network, "" when it is."""
        why = self.unavailable.get(view)
        return f"{self.name}: no {view}, because {why}." if why else ""


def check_name(name: str, taken: list[str] | tuple[str, ...] = ()) -> str:
    """A visitor's name for their network, stripped; one line when it cannot be used."""
    name = " ".join(str(name).split())
    if not name:
        raise CheckpointError("give your network a name")
    if len(name) > MAX_NAME:
        raise CheckpointError(f"a network's name is at most {MAX_NAME} characters")
    if name.lower() in {t.lower() for t in taken}:
        raise CheckpointError(f"{name!r} is already the name of a network here: choose another")
    return name


def check_normalisation(mean, std) -> tuple[tuple[float, ...], tuple[float, ...]]:
    try:
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except (TypeError, ValueError):
        raise CheckpointError("mean and std are three numbers each, one per colour channel (R, G, B)") from None
    if len(mean) != 3 or len(std) != 3 or not all(0 < s < 100 for s in std) or not all(-100 < m < 100 for m in mean):
        raise CheckpointError("mean and std are three numbers each (R, G, B), and every std above 0")
    return mean, std


def class_order(classes: list[str] | None) -> list[int] | None:
    """For each of our classes, its index among `classes` (the order the network answers in); None when that
    is already ours. Any other set of names than CIFAR-10's ten is refused."""
    if classes is None or list(classes) == list(CIFAR10_CLASSES):
        return None
    names = [str(c).strip().lower() for c in classes]
    if sorted(names) != sorted(CIFAR10_CLASSES):
        raise CheckpointError("the class order must name CIFAR-10's ten classes, each once: "
                              + ", ".join(CIFAR10_CLASSES))
    return [names.index(c) for c in CIFAR10_CLASSES]
