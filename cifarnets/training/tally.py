"""What an epoch of training has added up so far (loss, right answers, images, seconds), read back from the
device in batches of steps, and the error a non-finite loss raises."""

from __future__ import annotations

import time

import torch
import torch.distributed as dist

from ..store.runfolder import TrainingError


class NonFiniteLoss(TrainingError):
    def __init__(self, epoch: int, step: int, steps: int, lr: float) -> None:
        self.where = f"epoch {epoch}, step {step}"
        super().__init__(f"the loss became non-finite at {self.where} of {steps}; "
                         f"lower the learning rate (it was {lr:g})")


class EpochTally:
    """Loss, right answers, images and seconds of the epoch so far, and the last step's learning rate. The per-step
    figures stay on the device until read_back (a sync on CUDA), which sums them over the ranks."""

    def __init__(self, partial: dict, dev: torch.device) -> None:
        """partial: the sums of the steps a stopped run did of this epoch (its resume state's), or {}."""
        self.sums = {"loss": partial.get("loss", 0.0), "correct": partial.get("correct", 0),
                     "seen": partial.get("seen", 0), "seconds": partial.get("seconds", 0.0)}
        self.dev = dev
        self.losses: list[torch.Tensor] = []
        self.correct = torch.zeros((), dtype=torch.int64, device=dev)
        self.seen = 0
        self.lr = 0.0
        self.tick = time.perf_counter()

    def add(self, loss: torch.Tensor, correct: torch.Tensor, seen: int, lr: float) -> None:
        self.losses.append(loss)
        self.correct += correct
        self.seen += seen
        self.lr = lr

    def read_back(self, step: int, epoch: int, steps: int) -> None:
        """Fold the pending steps (the last is `step`) into the sums; raises NonFiniteLoss on a non-finite loss."""
        losses = torch.stack(self.losses)
        if dist.is_initialized():
            counts = torch.stack([losses.sum(), self.correct.double(), torch.tensor(float(self.seen), device=self.dev)])
            dist.all_reduce(counts)
            loss, correct, seen = float(counts[0]), int(counts[1]), int(counts[2])
        else:
            loss, correct, seen = float(losses.sum()), int(self.correct), self.seen
        if not torch.isfinite(losses).all():
            bad = step - len(self.losses) + 1 + int((~torch.isfinite(losses)).nonzero()[0])
            raise NonFiniteLoss(epoch + 1, bad + 1, steps, self.lr)
        now = time.perf_counter()
        self.sums["loss"] += loss
        self.sums["correct"] += correct
        self.sums["seen"] += seen
        self.sums["seconds"] += now - self.tick
        self.tick = now
        self.losses, self.seen = [], 0
        self.correct.zero_()

    @property
    def loss(self) -> float:
        return self.sums["loss"] / max(self.sums["seen"], 1)

    @property
    def acc(self) -> float:
        return self.sums["correct"] / max(self.sums["seen"], 1)

    @property
    def images_per_s(self) -> float:
        return self.sums["seen"] / max(self.sums["seconds"], 1e-9)
