"""The textbook training pipeline, the yardstick `cifarnets bench` measures ours against.

What PyTorch's tutorials and most CIFAR-10 repositories write: a torchvision-style Dataset that
hands out one PIL image at a time, per-image transforms (RandomCrop(32, padding=4),
RandomHorizontalFlip, ToTensor, Normalize) in DataLoader worker processes (one per core), and a
model in fp32 and NCHW. It trains the same network with the same optimizer and batch size as ours.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from ..data.loader import MEAN, STD
from ..data.sources import Split
from ..models import build
from ..training.recipes import Recipe
from ..training.step import make_optimizer


class PILDataset(torch.utils.data.Dataset):
    """Like torchvision.datasets.CIFAR10: HWC uint8 arrays in memory, one PIL image per item."""

    def __init__(self, split: Split, transform) -> None:
        self.images = np.ascontiguousarray(split.x.cpu().permute(0, 2, 3, 1).numpy())
        self.targets = split.y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), self.targets[i]


class RoundSampler(torch.utils.data.Sampler):
    """Random indices for exactly `steps` batches. Each bench round is one such short epoch, so the
    workers end it idle: no batch of this pipeline is prepared while the other pipeline is timed."""

    def __init__(self, n: int, batch_size: int) -> None:
        self.n, self.batch_size, self.steps = n, batch_size, 1
        self.generator = torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return self.steps * self.batch_size

    def __iter__(self):
        # With replacement once a round needs more than the split holds (a tiny data set, many steps).
        if len(self) <= self.n:
            return iter(torch.randperm(self.n, generator=self.generator)[:len(self)].tolist())
        return iter(torch.randint(self.n, (len(self),), generator=self.generator).tolist())


def workers() -> int:
    """One DataLoader worker per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Textbook:
    def __init__(self, key: str, split: Split, num_classes: int, recipe: Recipe, dev: torch.device) -> None:
        from torchvision import transforms

        transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                        transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
        self.sampler = RoundSampler(len(split), recipe.batch_size)
        # persistent_workers: the workers start once, not once per round, as in a long real run.
        self.loader = torch.utils.data.DataLoader(
            PILDataset(split, transform), batch_size=recipe.batch_size, sampler=self.sampler, drop_last=True,
            num_workers=workers(), persistent_workers=True, pin_memory=dev.type == "cuda")
        torch.manual_seed(0)
        self.model = build(key, num_classes=num_classes).to(dev).train()
        self.optimizer = make_optimizer(self.model, recipe)
        self.loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        self.dev = dev

    def run(self, steps: int) -> None:
        """`steps` optimizer steps, the tutorial's loop, loss read back every step as it does."""
        self.sampler.steps = steps
        running = 0.0
        for xb, yb in self.loader:
            xb, yb = xb.to(self.dev, non_blocking=True), yb.to(self.dev, non_blocking=True)
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(xb), yb)
            loss.backward()
            self.optimizer.step()
            running += loss.item()

    def close(self) -> None:
        """Stop the worker processes now: dropping the last reference to the loader shuts them down."""
        self.loader = None
