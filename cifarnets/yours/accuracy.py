"""Your network's test-split accuracy, measured as Classify answers (answering.VIEWS views of each image, in fp32),
in a background thread whose progress a page can poll: the page never waits on it.

The thread only reads the network (eval mode, no gradients), as every session's forward passes do, and stops
between batches when asked (the network removed) or when its session's state is dropped with it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import torch

from ..answering import answer, split_batch
from ..data import loader, sources
from ..errors import UserError


@dataclass
class Measurement:
    """Where one measurement stands: images done of all, then the accuracy, or why it stopped."""

    done: int = 0
    total: int = 0
    accuracy: float | None = None
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def running(self) -> bool:
        return self.accuracy is None and not self.error


def data_present() -> bool:
    """Whether CIFAR-10 is here ($CIFARNETS_DATA, else ./data) without a download."""
    return sources.present()


def measure(model: torch.nn.Module, classes: list[str], progress: Measurement, data=None) -> Measurement:
    """Fill `progress` as the test split is answered; returns it. Any failure ends as one line in .error."""
    try:
        dataset = sources.load(data, download=False)
        if list(dataset.classes) != list(classes):
            raise UserError(f"the data's classes ({', '.join(dataset.classes)}) are not the network's")
        device = torch.device("cpu")
        test = loader.DeviceLoader(dataset.test, split_batch(device), device, train=False)
        progress.total = len(dataset.test.y)
        correct = 0
        with torch.no_grad():
            for xb, yb in test.batches():
                if progress.stop.is_set():
                    progress.error = "stopped"
                    return progress
                correct += int((answer(model, xb)[1].argmax(1) == yb).sum())
                progress.done += len(xb)
        progress.accuracy = correct / max(progress.done, 1)
        progress.seconds = time.monotonic() - progress.started
    except UserError as e:
        progress.error = str(e)
    except Exception as e:  # noqa: BLE001 -- a thread's failure must reach the page as a line, not vanish
        progress.error = f"the measurement failed ({type(e).__name__}: {str(e)[:120]})"
    return progress


def start(model: torch.nn.Module, classes: list[str], data=None) -> Measurement:
    """measure() in a daemon thread; poll the Measurement it returns."""
    progress = Measurement()
    threading.Thread(target=measure, args=(model, classes, progress, data), daemon=True,
                     name="cifarnets-yours-accuracy").start()
    return progress
