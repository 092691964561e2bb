"""fit(): epochs over device-resident batches, evaluation after each, history, atomic checkpoints,
resume from any step, a clean stop on request, and DistributedDataParallel under torchrun.

A run folder holds the public checkpoint (model.safetensors, config.json, history.json), the
private resume state (train_state.pt: weights, optimizer, position, history; tensors and plain
data only, loaded with weights_only=True), status.json for whoever watches, and a lock.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .analysis.gradients import GradientProbe
from .checkpoints import make_config, save_checkpoint
from .data import Dataset, DeviceLoader
from .device import autocast, describe, pick
from .fileio import atomic_path, write_json
from .metrics import confusion_matrix, per_class_accuracy
from .models import build
from .models.common import eval_mode
from .predict import PRECISION, mirrored
from .recipes import Recipe
from .runfolder import CONFIG_FILE, HISTORY_FILE, LOCK_FILE, MODEL_FILE, STATE_FILE, STATUS_FILE, process_alive
from .threads import training_threads

SYNC_EVERY = 10  # steps between reading the loss back from the device (a sync on CUDA)

Progress = Callable[[dict], None]


class TrainingError(Exception):
    """A run that cannot go on, and why, in one line."""


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DeviceLoader, classes: list[str]) -> dict:
    """Loss, accuracy, per-class accuracy and confusion matrix (rows: true class) on a whole split.

    All of the network's answer as the app gives it (each image averaged with its mirror image, in
    the app's precision: predict.mirrored), with the single-view loss and accuracy beside it under
    "single_view".
    """
    c = len(classes)
    confusion = torch.zeros(c, c, dtype=torch.int64, device=loader.device)
    # loss and correct count of the mirror-averaged answer, then of the single view
    sums = torch.zeros(4, dtype=torch.float64, device=loader.device)
    with eval_mode(model):
        for xb, yb in loader.batches():
            single, averaged = mirrored(model, xb)
            confusion += confusion_matrix(yb, averaged.argmax(1), c)
            sums += torch.stack([F.nll_loss(averaged.clamp_min(1e-12).log(), yb, reduction="sum"),
                                 (averaged.argmax(1) == yb).sum(),
                                 F.nll_loss(single.clamp_min(1e-12).log(), yb, reduction="sum"),
                                 (single.argmax(1) == yb).sum()]).double()
    if loader.world > 1:
        dist.all_reduce(confusion)
        dist.all_reduce(sums)
    confusion = confusion.cpu()
    n = max(int(confusion.sum()), 1)
    loss, correct, single_loss, single_correct = sums.tolist()
    return {"test_acc": correct / n, "test_loss": loss / n,
            "per_class": dict(zip(classes, per_class_accuracy(confusion), strict=True)),
            "confusion": confusion.tolist(), "n": int(confusion.sum()), "view": "mirror-averaged",
            "precision": PRECISION,
            "single_view": {"test_acc": single_correct / n, "test_loss": single_loss / n}}


# ---------------------------------------------------------------- pieces of a run

def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    # Weight decay on conv/linear weights only: decaying BatchNorm scales and biases only hurts.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr)
    raise TrainingError(f"unknown optimizer {recipe.optimizer!r} in recipe {recipe.name!r}")


class RunLock:
    """One run per folder. A lock whose process is gone (killed run) is stale and taken over."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE

    def __enter__(self) -> RunLock:
        # The lock appears with our pid already in it (written aside, then hard-linked into place): a run
        # that reads it a moment later must never see an empty file and take it for a stale lock.
        fd, pidfile = tempfile.mkstemp(prefix=f"{LOCK_FILE}.", suffix=".pid", dir=self.path.parent)
        try:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            for _ in range(2):
                try:
                    self._place(pidfile)
                except FileExistsError:
                    pid = _read_pid(self.path)
                    if pid and pid != os.getpid() and process_alive(pid):
                        raise TrainingError(f"another run (pid {pid}) is writing to {self.path.parent}; "
                                            "wait for it, cancel it, or choose another --out") from None
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                # A killed run leaves the temporary files of the writes it was in (never the files
                # themselves: those are renamed into place whole). Only ours: others write here too.
                for name in (STATE_FILE, STATUS_FILE, MODEL_FILE, CONFIG_FILE, HISTORY_FILE):
                    for tmp in self.path.parent.glob(f".{name}.*.tmp"):
                        tmp.unlink(missing_ok=True)
                return self
        finally:
            os.unlink(pidfile)
        raise TrainingError(f"could not take the lock {self.path}")

    def _place(self, pidfile: str) -> None:
        """Create the lock holding our pid, or raise FileExistsError."""
        try:
            os.link(pidfile, self.path)
        except FileExistsError:
            raise
        except OSError:  # no hard links on this file system (FAT, some network shares): create, then write
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))

    def __exit__(self, *exc) -> None:
        if _read_pid(self.path) == os.getpid():
            self.path.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


class Status:
    """status.json in the run folder: what a watcher (the app) polls. Throttled to one write a second."""

    def __init__(self, folder: Path, enabled: bool) -> None:
        self.path, self.enabled, self.last, self.data = folder / STATUS_FILE, enabled, 0.0, {}

    def update(self, force: bool = False, **fields) -> None:
        self.data.update(fields, updated=time.time(), pid=os.getpid())
        if self.enabled and (force or time.monotonic() - self.last >= 1.0):
            write_json(self.path, self.data)
            self.last = time.monotonic()


def read_state(folder: Path) -> dict | None:
    path = folder / STATE_FILE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign: say so rather than train over it
        raise TrainingError(f"{path} is unreadable ({type(e).__name__}); delete it to start over") from None
    fields = {"model_key": str, "recipe": dict, "seed": int, "epoch": int, "step": int, "partial": dict,
              "history": list, "model": dict, "optimizer": dict}
    if not isinstance(state, dict) or any(not isinstance(state.get(k), t) for k, t in fields.items()):
        raise TrainingError(f"{path} is not a resume state this version wrote; delete it to start over")
    return state


def _write_state(folder: Path, state: dict) -> None:
    with atomic_path(folder / STATE_FILE) as tmp:
        torch.save(state, tmp)


def _distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, this rank's device); starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


def _shared_state(out: Path, rank: int, world: int) -> dict | None:
    """Rank 0's resume state, on every rank, so all ranks resume alike even without a shared file system."""
    if world == 1:
        return read_state(out)
    box: list = [None]
    if rank == 0:
        try:
            box = [read_state(out)]
        except TrainingError as e:  # every rank fails alike rather than waiting for rank 0 forever
            box = [e]
    dist.broadcast_object_list(box, src=0)
    if isinstance(box[0], TrainingError):
        raise box[0]
    return box[0]


# ---------------------------------------------------------------- one step (fit and `cifarnets bench` share it)

CHANNELS_LAST = True  # faster for these convolutions on CUDA and on the CPU alike (cifarnets bench)


def place(model: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    """The model on `dev` in the memory format the trainer computes in."""
    return model.to(dev, memory_format=torch.channels_last if CHANNELS_LAST else torch.contiguous_format)


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, xb: torch.Tensor,
               yb: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step at `lr`; returns (summed plain cross-entropy, correct count) as device tensors,
    so the caller decides when to pay for reading them back."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(xb.device):
        logits = net(xb)
        loss = loss_fn(logits.float(), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():  # plain cross-entropy, comparable with the test loss
        return F.cross_entropy(logits.float(), yb, reduction="sum"), (logits.argmax(1) == yb).sum()


# ---------------------------------------------------------------- the loop

def fit(key: str, recipe: Recipe, dataset: Dataset, out: str | Path, *, device: str = "auto", seed: int = 0,
        resume: bool = False, progress: Progress | None = None, should_stop: Callable[[], bool] = lambda: False,
        ) -> dict:
    """Train `key` with `recipe` on `dataset`, writing the run into `out`.

    Returns {"state": "finished" | "stopped", "epoch": epochs done, "step": steps into the next epoch,
    "history": rows}. Raises TrainingError on anything the user must fix.
    """
    rank, world, dev = _distributed(pick(device))
    main = rank == 0
    out = Path(out)
    try:
        if main:  # the other ranks never touch the run folder: it need only exist where rank 0 runs
            out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainingError(f"cannot create the run folder {out}: {e.strerror}") from None
    if main and not os.access(out, os.W_OK):
        raise TrainingError(f"the run folder {out} is not writable")
    try:
        with RunLock(out) if main else contextlib.nullcontext(), training_threads(dev):
            result = _fit(key, recipe, dataset, out, dev, seed, resume, progress, should_stop, rank, world)
    except OSError as e:  # a full or read-only disk: every file is written whole or not at all
        raise TrainingError(f"cannot write to the run folder {out}: {e.strerror or e}; "
                            "its last complete checkpoint is intact") from None
    if world > 1:
        # Ranks leave together and take the group down: a rank still inside gloo when its peer
        # exits aborts ("terminate called without an active exception"), failing a clean run.
        dist.barrier()
        dist.destroy_process_group()
    return result


def _fit(key, recipe, dataset, out, dev, seed, resume, progress, should_stop, rank, world) -> dict:
    main = rank == 0
    state = _shared_state(out, rank, world)
    if state is not None and not resume:
        raise TrainingError(f"{out} already holds a run ({state['epoch']}/{state['recipe']['epochs']} epochs); "
                            "pass --resume to continue it, or choose another --out")
    if state is not None:
        if state["model_key"] != key:
            raise TrainingError(f"{out} holds a {state['model_key']!r} run, not {key!r}")
        recipe = Recipe(**state["recipe"])  # a run keeps the recipe it started with
        seed = state["seed"]
    if state is not None and state["epoch"] >= recipe.epochs:
        return {"state": "finished", "epoch": state["epoch"], "step": 0, "history": state["history"]}

    torch.manual_seed(seed)
    model = build(key, num_classes=len(dataset.classes))
    channels_last = CHANNELS_LAST
    model = place(model, dev)
    optimizer = make_optimizer(model, recipe)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise TrainingError(f"{out / STATE_FILE} does not fit a {key!r} network ({str(e).splitlines()[0][:100]});"
                                " delete it to start over") from None
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    train = DeviceLoader(dataset.train, recipe.batch_size, dev, train=True, augment=recipe.augment,
                         rank=rank, world=world, channels_last=channels_last)
    test = DeviceLoader(dataset.test, 1000, dev, train=False, rank=rank, world=world, channels_last=channels_last)
    steps = len(train)
    if steps == 0:
        raise TrainingError(f"the training split has {len(dataset.train)} images, fewer than one batch of "
                            f"{recipe.batch_size}; lower --batch-size")

    first_epoch = state["epoch"] if state else 0
    start = state["step"] if state else 0
    history = list(state["history"]) if state else []
    partial = dict(state["partial"]) if state else {}
    global_step = first_epoch * steps + start
    status = Status(out, main)
    status.update(True, state="running", model=key, recipe=recipe.name, epoch=first_epoch, epochs=recipe.epochs,
                  step=start, steps=steps, device=describe(dev))
    emit = progress if (progress and main) else (lambda event: None)
    # Weight-gradient norm per layer on a few fixed images, at initialisation and after each epoch: the
    # Why they differ page plots them against depth. Kept in the resume state until epoch 1's row has it.
    probe = GradientProbe(dataset.train, dev) if main else None
    init_norms = state.get("grad_norms_init") if state else probe(model) if probe else None

    def snapshot(epoch_: int, step_: int, partial_: dict) -> None:
        if main:
            _write_state(out, {"version": 1, "model_key": key, "recipe": recipe.to_dict(), "seed": seed,
                               "classes": dataset.classes, "data": dataset.describe() | {"classes": None},
                               "epoch": epoch_, "step": step_, "partial": partial_, "history": history,
                               "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "grad_norms_init": init_norms})

    smoothing = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    for epoch in range(first_epoch, recipe.epochs):
        net.train()
        sums = {"loss": partial.get("loss", 0.0), "correct": partial.get("correct", 0),
                "seen": partial.get("seen", 0), "seconds": partial.get("seconds", 0.0)}
        partial = {}
        pending_loss: list[torch.Tensor] = []
        pending_correct = torch.zeros((), dtype=torch.int64, device=dev)
        pending_seen = 0
        tick = time.perf_counter()
        step = start
        for step, (xb, yb) in enumerate(train.batches(epoch, seed, start), start=start):
            lr = recipe.lr_at(global_step, steps)
            batch_loss, batch_correct = train_step(net, optimizer, smoothing, xb, yb, lr)
            global_step += 1
            pending_loss.append(batch_loss)
            pending_correct += batch_correct
            pending_seen += len(yb)
            stop = _agree(should_stop(), world, dev)
            last = step + 1 == steps
            if (step + 1) % SYNC_EVERY == 0 or last or stop:
                losses = torch.stack(pending_loss)
                if world > 1:
                    counts = torch.stack([losses.sum(), pending_correct.double(),
                                          torch.tensor(float(pending_seen), device=dev)])
                    dist.all_reduce(counts)
                    batch_loss, correct, seen = float(counts[0]), int(counts[1]), int(counts[2])
                else:
                    batch_loss, correct, seen = float(losses.sum()), int(pending_correct), pending_seen
                if not torch.isfinite(losses).all():
                    bad = step - len(pending_loss) + 1 + int((~torch.isfinite(losses)).nonzero()[0])
                    status.update(True, state="failed",
                                  error=f"loss is not finite at epoch {epoch + 1}, step {bad + 1}")
                    raise TrainingError(f"the loss became non-finite at epoch {epoch + 1}, step {bad + 1} of {steps}; "
                                        f"lower the learning rate (it was {lr:g})")
                sums["loss"] += batch_loss
                sums["correct"] += correct
                sums["seen"] += seen
                now = time.perf_counter()
                sums["seconds"] += now - tick
                tick = now
                pending_loss, pending_seen = [], 0
                pending_correct.zero_()
                rate = sums["seen"] / max(sums["seconds"], 1e-9)
                done = (step + 1) + (epoch * steps)
                eta = ((recipe.epochs * steps - done) * sums["seconds"] / max(step + 1 - start, 1)
                       if step + 1 > start else None)
                event = {"kind": "step", "epoch": epoch + 1, "epochs": recipe.epochs, "step": step + 1, "steps": steps,
                         "loss": sums["loss"] / max(sums["seen"], 1), "acc": sums["correct"] / max(sums["seen"], 1),
                         "images_per_s": rate, "lr": lr, "eta_s": eta}
                emit(event)
                status.update(state="running", epoch=epoch + 1, step=step + 1, loss=event["loss"], acc=event["acc"],
                              images_per_s=rate, eta_s=eta)
            if stop and not last:
                snapshot(epoch, step + 1, sums)
                status.update(True, state="stopped", epoch=epoch, step=step + 1)
                return {"state": "stopped", "epoch": epoch, "step": step + 1, "history": history}
        start = 0
        if world > 1:  # BatchNorm statistics differ per rank: keep rank 0's, so every rank ends identical
            for buf in model.buffers():
                dist.broadcast(buf, 0)
        eval_tick = time.perf_counter()
        metrics = evaluate(model, test, dataset.classes)
        # The curves stay single-view, comparable with the report's and with runs from before mirroring.
        row = {"epoch": epoch + 1, "train_loss": sums["loss"] / max(sums["seen"], 1),
               "train_acc": sums["correct"] / max(sums["seen"], 1), "test_loss": metrics["single_view"]["test_loss"],
               "test_acc": metrics["single_view"]["test_acc"], "test_acc_mirrored": metrics["test_acc"], "lr": lr,
               "seconds": sums["seconds"] + time.perf_counter() - eval_tick,
               "images_per_s": sums["seen"] / max(sums["seconds"], 1e-9)}
        if probe:
            row["grad_norms"] = probe(model)
            if epoch == 0 and init_norms:
                row["grad_norms_init"] = init_norms
        history.append(row)
        if main:
            config = make_config(key, model, classes=dataset.classes, recipe=recipe.to_dict(),
                                 data=dataset.describe() | {"classes": None}, metrics=metrics,
                                 device=describe(dev) + (f" x{world}" if world > 1 else ""),
                                 epochs_done=epoch + 1, seed=seed)
            config["data"].pop("classes")
            # The public checkpoint first, the resume state last: a kill between the two then repeats
            # this epoch on --resume. The other way round, a run killed there after its last epoch
            # would resume as "finished" and leave its checkpoint one epoch short.
            save_checkpoint(out, model, config, history)
            snapshot(epoch + 1, 0, {})
        emit({"kind": "epoch", "row": row, "epochs": recipe.epochs})
        status.update(True, state="running", epoch=epoch + 1, step=0, test_acc=row["test_acc"])
        if _agree(should_stop(), world, dev) and epoch + 1 < recipe.epochs:
            status.update(True, state="stopped", epoch=epoch + 1, step=0)
            return {"state": "stopped", "epoch": epoch + 1, "step": 0, "history": history}
    status.update(True, state="finished", epoch=recipe.epochs, step=0)
    return {"state": "finished", "epoch": recipe.epochs, "step": 0, "history": history}


def _agree(flag: bool, world: int, dev: torch.device) -> bool:
    """Under DDP a stop signal may reach one rank first: stop when any rank wants to."""
    if world == 1:
        return flag
    t = torch.tensor(int(flag), device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t)
