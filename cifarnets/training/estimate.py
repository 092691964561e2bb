"""How long a training run will take on this machine, from a few timed steps of the trainer's own step.

Before a user starts a run, the sidebar says how long it will take. A constant per network would be
wrong on every other machine (the project's CPUs differ by 20x, a GPU by 1000x), so this times the
real thing: the recipe's optimizer and objective, train_step() on batches that went through the
trainer's own loader and augmentation, on the device training would use, with the thread count
training would take (cifarnets/training/threads.py). Random uint8 images of CIFAR's size stand in for the
data: a step's time depends on the images' size, not their content. Then

    epochs x (steps per epoch x seconds per step + test images x seconds per test image)
    + the last evaluation's other views (the trainer answers the last epoch with all of the app's)

where the evaluation after each epoch is timed as the trainer does it (answering.answer, in eval mode),
plus, for a recipe with fixed distillation targets, the teachers answering the training split once.
Loading the data and writing checkpoints come on top; they are seconds once the data is cached.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..answering import MIRRORED, VIEWS, answer, split_batch
from ..data import sources
from ..data.loader import DeviceLoader, normalize
from ..data.sources import Split, _find_folder_root
from ..device import machine_name, pick
from ..errors import UsageError, UserError
from ..models import build
from ..models.common import eval_mode
from . import recipes
from .recipes import Recipe
from .step import CHANNELS_LAST, Objective, make_optimizer, place, train_step
from .threads import training_threads

WARMUP_STEPS = 1  # untimed: the allocator and oneDNN's kernel choice make the first step slower
TIMED_STEPS = 3
TIMED_BUDGET_S = 2.0  # stop timing early once this much time is measured: a slow step needs no repeats
CPU_BATCH_CAP = 512  # on the CPU, a larger batch is timed at this size and scaled per image (memory, time)
CIFAR10_TRAIN, CIFAR10_TEST = 50_000, 10_000
CLASSES = 10


class EstimateError(UserError):
    """The estimate cannot be made here (a batch that does not fit in memory), in one line."""


@dataclass(frozen=True)
class DataSize:
    train: int
    test: int
    note: str  # where the numbers come from, as a person reads it


@dataclass(frozen=True)
class StepTimes:
    """What was timed: one training step at the run's batch size, one test image's answer."""

    step_s: float
    eval_image_s: float
    batch_size: int
    timed_batch: int  # the batch the step was timed at (smaller than batch_size only on the CPU, scaled)
    steps_timed: int
    machine: str  # machine_name(): the GPU, or the CPU model, instruction set and threads
    answers_image_s: float = 0.0  # fixed distillation targets: the teachers' answer to a training image, paid once


@dataclass(frozen=True)
class Estimate:
    seconds: float
    epochs: int
    steps_per_epoch: int
    train_s_per_epoch: float
    eval_s_per_epoch: float
    times: StepTimes
    size: DataSize
    answers_s: float = 0.0  # the teachers' fixed answers to the training split, before the first epoch
    last_views_s: float = 0.0  # the last epoch's test pass answers with all the app's views, not just the pair


def data_size(source: str | None) -> DataSize:
    """The training and test split sizes of a data source, where that costs no decoding: an image-folder
    tree's files are counted and a zip's listing read; anything else is taken to be CIFAR-10
    (a torchvision folder is; a .tar.gz would have to be decompressed whole just to count its images)."""
    cifar = DataSize(CIFAR10_TRAIN, CIFAR10_TEST, "CIFAR-10's 50,000 training and 10,000 test images")
    path = Path(sources.resolve_source(source)).expanduser()
    try:
        if path.is_dir():
            root = _find_folder_root(path)
            if root is None:
                return cifar
            train, test = (sum(1 for cls in (root / split).iterdir() if cls.is_dir()
                               for f in os.scandir(cls) if f.is_file())
                           if (root / split).is_dir() else 0 for split in sources.SPLITS)
            return DataSize(train, test, f"the {train:,} training and {test:,} test images in {path.name}/")
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if not n.endswith("/")]
            train, test = (sum(1 for n in names if f"/{split}/" in f"/{n}" and n.count("/") >= 2)
                           for split in sources.SPLITS)
            return DataSize(train, test, f"the {train:,} training and {test:,} test images in {path.name}")
    except OSError:
        pass
    if path.is_file():
        return DataSize(CIFAR10_TRAIN, CIFAR10_TEST,
                        f"{path.name} taken to hold CIFAR-10's 50,000 training and 10,000 test images")
    return cifar


def time_steps(key: str, recipe: Recipe, device: str = "auto", warmup: int = WARMUP_STEPS,
               timed: int = TIMED_STEPS, budget_s: float = TIMED_BUDGET_S) -> StepTimes:
    """Time `timed` training steps (after `warmup` untimed ones) and one test batch's answer.

    A fresh network each time: the networks the app shares with its sessions are never touched.
    """
    if warmup < 0 or timed < 1:  # the recipe checked its own batch size
        raise UsageError("the timed steps must be at least 1")
    dev = pick(device)
    batch = min(recipe.batch_size, CPU_BATCH_CAP) if dev.type == "cpu" else recipe.batch_size
    out_of_memory = False
    try:
        with training_threads(dev), _cudnn_benchmark(dev):
            machine = machine_name(dev)
            seconds, eval_image_s, answers_image_s = _measure(key, recipe, dev, batch, warmup, timed, budget_s)
    except torch.OutOfMemoryError:
        out_of_memory = True  # raised below, once this frame no longer holds the failed step's tensors
    finally:
        if dev.type == "cuda":  # the app's process goes on answering on this GPU: give back what timing took
            torch.cuda.empty_cache()
    if out_of_memory:
        raise EstimateError(f"a batch of {batch} does not fit in {dev.type}'s memory; lower the batch size")
    step_s = statistics.median(seconds) * recipe.batch_size / batch
    return StepTimes(step_s, eval_image_s, recipe.batch_size, batch, len(seconds), machine, answers_image_s)


def _measure(key: str, recipe: Recipe, dev: torch.device, batch: int, warmup: int, timed: int,
             budget_s: float) -> tuple[list[float], float, float]:
    """(seconds of each timed step, seconds per test image, seconds per training image of the teachers'
    fixed answers); the networks and their batches die with this frame."""
    torch.manual_seed(0)
    model = place(build(key, num_classes=CLASSES), dev).train()
    optimizer = make_optimizer(model, recipe)
    teachers = [place(build(k, num_classes=CLASSES), dev).eval() for k in recipe.teachers]
    fixed = bool(teachers) and recipe.distill_targets == "fixed"
    objective = Objective(recipe, [] if fixed else teachers)
    split = _random_split(batch * (warmup + timed))
    soft = torch.log_softmax(torch.randn(len(split), CLASSES), 1) if fixed else None
    loader = DeviceLoader.for_recipe(recipe, split, dev, batch_size=batch, channels_last=CHANNELS_LAST, soft=soft)
    seconds = []
    for i, (xb, yb, *soft) in enumerate(loader.batches()):
        tick = time.perf_counter()
        loss, _ = train_step(model, optimizer, objective, xb, yb, recipe.lr, *soft)
        float(loss)  # waits for the device, as the trainer's read-back does
        if i >= warmup:
            seconds.append(time.perf_counter() - tick)
            if sum(seconds) >= budget_s:
                break
    return seconds, _time_answer(model, dev), sum(_time_answer(t, dev) for t in teachers) if fixed else 0.0


def total(times: StepTimes, epochs: int, size: DataSize) -> Estimate:
    """The whole run: `epochs` epochs of full batches (the trainer drops the last partial one), each
    followed by an evaluation of the test split (the image and its mirror; the last one every view)."""
    if epochs < 1:
        raise UsageError("epochs must be at least 1")
    steps = size.train // times.batch_size
    train_s, eval_s = steps * times.step_s, size.test * times.eval_image_s
    answers_s = size.train * times.answers_image_s
    last_views_s = eval_s * (VIEWS / MIRRORED - 1)
    return Estimate(answers_s + epochs * (train_s + eval_s) + last_views_s, epochs, steps, train_s, eval_s, times,
                    size, answers_s, last_views_s)


def estimate(key: str, recipe: Recipe, device: str = "auto", data_source: str | None = None) -> Estimate:
    """Time a few steps, then scale to the recipe's epochs on the data source's size."""
    return total(time_steps(key, recipe, device), recipe.epochs, data_size(data_source))


# (network, recipe name, batch size or None for the recipe's own, device) -> the step times: timed() below, or
# the sidebar's cached copy of it, so the time the sidebar shows is the time public mode's limits judge.
StepTimer = Callable[[str, str, int | None, str], StepTimes]


def timed(key: str, recipe_name: str, batch_size: int | None, device: str) -> StepTimes:
    """time_steps() for `key` with the recipe called `recipe_name`, at `batch_size` (None: the recipe's own)."""
    return time_steps(key, recipes.get(recipe_name, key, batch_size=batch_size), device)


def planned(keys: Iterable[str], recipe_name: str, epochs: int | None, batch_size: int | None, device: str,
            data_source: str | None, timer: StepTimer = timed) -> float:
    """Seconds to train `keys` one after another here (a run: one network; a race: all four), each with its
    entry of the recipe and these overrides (None: the recipe's own), each by total()."""
    size = data_size(data_source)
    return sum(total(timer(key, recipe_name, batch_size, device), recipes.get(recipe_name, key, epochs=epochs).epochs,
                     size).seconds for key in keys)


def _random_split(n: int) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                 torch.randint(0, CLASSES, (n,), generator=g))


@torch.no_grad()
def _time_answer(model: torch.nn.Module, dev: torch.device) -> float:
    """Seconds per test image of the evaluation between epochs (the image and its mirror), after one untimed
    small batch.
    Timed at fit()'s own test batch (answering.split_batch): per image, a batch costs more or less by size."""
    images = split_batch(dev)
    x = normalize(_random_split(images).x.to(dev)).contiguous(
        memory_format=torch.channels_last if CHANNELS_LAST else torch.contiguous_format)
    with eval_mode(model):
        float(answer(model, x[:16], MIRRORED)[1].sum())
        tick = time.perf_counter()
        float(answer(model, x, MIRRORED)[1].sum())
    return (time.perf_counter() - tick) / images


@contextlib.contextmanager
def _cudnn_benchmark(dev: torch.device):
    """As fit() sets it on CUDA; put back after, since the app's own answers share the flag."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = dev.type == "cuda" or before
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
