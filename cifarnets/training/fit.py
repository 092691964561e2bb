"""fit(): epochs over device-resident batches, evaluation after each, history, atomic checkpoints,
resume from any step, a clean stop on request, and DistributedDataParallel under torchrun.

A run folder holds the public checkpoint (model.safetensors, config.json, history.json), the
private resume state (train_state.pt: weights, optimizer, position, history; tensors and plain
data only, loaded with weights_only=True), status.json for whoever watches, and a lock.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from ..answering import MIRRORED, VIEWS, split_batch
from ..data.loader import DeviceLoader
from ..data.sources import Dataset, Split
from ..device import exact_fp32, machine_name, pick
from ..models import build
from ..paths import checkpoints_dir
from ..store.checkpoints import CheckpointError, load_weights, make_config, save_checkpoint
from ..store.fileio import atomic_path
from ..store.runfolder import MODEL_FILE, STATE_FILE, RunLock, Status, TrainingError
from .distill import fixed_answers, load_teachers
from .evaluation import evaluate
from .recipes import Recipe
from .step import CHANNELS_LAST, Objective, WeightAverage, make_optimizer, place, train_step
from .threads import training_threads

SYNC_EVERY = 10  # steps between reading the loss back from the device (a sync on CUDA)

Progress = Callable[[dict], None]


# ---------------------------------------------------------------- pieces of a run

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
    """(rank, world size, this rank's device); starts the process group under torchrun, also for a world
    of one: `torchrun --nproc_per_node=1` on a one-GPU machine then runs DDP over NCCL as N GPUs would,
    rather than quietly training as a lone process (tests/test_cuda.py)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not all(v in os.environ for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):  # no torchrun
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


def _shared_state(out: Path, rank: int) -> dict | None:
    """Rank 0's resume state, on every rank, so all ranks resume alike even without a shared file system."""
    if not dist.is_initialized():
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


# ---------------------------------------------------------------- the loop

# Given the training split and the device, returns what measures a model after each epoch (and at
# initialisation): its result goes in the history row as "grad_norms". The CLI passes the analysis's
# GradientProbe; the trainer itself knows nothing of what is measured.
ProbeFactory = Callable[[Split, torch.device], Callable[[torch.nn.Module], dict]]


def fit(key: str, recipe: Recipe, dataset: Dataset, out: str | Path, *, device: str = "auto", seed: int = 0,
        resume: bool = False, progress: Progress | None = None, should_stop: Callable[[], bool] = lambda: False,
        probe: ProbeFactory | None = None) -> dict:
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
            result = _TrainingLoop(key, recipe, dataset, out, dev, seed, resume, rank, world, probe).train(
                progress if (progress and main) else (lambda event: None), should_stop)
    except OSError as e:  # a full or read-only disk: every file is written whole or not at all
        raise TrainingError(f"cannot write to the run folder {out}: {e.strerror or e}; "
                            "its last complete checkpoint is intact") from None
    if dist.is_initialized():
        # Ranks leave together and take the group down: a rank still inside gloo when its peer
        # exits aborts ("terminate called without an active exception"), failing a clean run.
        # The run's DistributedDataParallel wrapper holds the group too, and outlives fit(): the frames
        # of imports made lazily inside the run (torch's on an optimizer's first use, make_config's
        # torchvision) keep it in a reference cycle. Collected here, it goes while the group is up
        # rather than at exit (the likely cause of the one abort seen since the barrier was added).
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    return result


class NonFiniteLoss(TrainingError):
    def __init__(self, epoch: int, step: int, steps: int, lr: float) -> None:
        self.where = f"epoch {epoch}, step {step}"
        super().__init__(f"the loss became non-finite at {self.where} of {steps}; "
                         f"lower the learning rate (it was {lr:g})")


class _Tally:
    """Loss, right answers, images and seconds of the epoch so far. The per-step figures stay on the
    device and are read back every SYNC_EVERY steps (a sync on CUDA), summed over the ranks."""

    def __init__(self, partial: dict, dev: torch.device) -> None:
        self.sums = {"loss": partial.get("loss", 0.0), "correct": partial.get("correct", 0),
                     "seen": partial.get("seen", 0), "seconds": partial.get("seconds", 0.0)}
        self.dev = dev
        self.losses: list[torch.Tensor] = []
        self.correct = torch.zeros((), dtype=torch.int64, device=dev)
        self.seen = 0
        self.tick = time.perf_counter()

    def add(self, loss: torch.Tensor, correct: torch.Tensor, seen: int) -> None:
        self.losses.append(loss)
        self.correct += correct
        self.seen += seen

    def read_back(self, step: int, epoch: int, steps: int, lr: float) -> None:
        """Fold the pending steps (the last is `step`) into the sums; raises TrainingError on a non-finite loss."""
        losses = torch.stack(self.losses)
        if dist.is_initialized():
            counts = torch.stack([losses.sum(), self.correct.double(), torch.tensor(float(self.seen), device=self.dev)])
            dist.all_reduce(counts)
            loss, correct, seen = float(counts[0]), int(counts[1]), int(counts[2])
        else:
            loss, correct, seen = float(losses.sum()), int(self.correct), self.seen
        if not torch.isfinite(losses).all():
            bad = step - len(self.losses) + 1 + int((~torch.isfinite(losses)).nonzero()[0])
            raise NonFiniteLoss(epoch + 1, bad + 1, steps, lr)
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


class _TrainingLoop:
    """One call of fit(): the network, its optimizer and data, restored from the run folder where resuming."""

    def __init__(self, key, recipe, dataset, out, dev, seed, resume, rank, world, probe) -> None:
        self.key, self.dataset, self.out, self.dev, self.rank, self.world = key, dataset, out, dev, rank, world
        self.main = rank == 0
        self.state = state = _shared_state(out, rank)
        if state is not None and not resume:
            raise TrainingError(f"{out} already holds a run ({state['epoch']}/{state['recipe']['epochs']} epochs); "
                                "pass --resume to continue it, or choose another --out")
        if state is not None:
            if state["model_key"] != key:
                raise TrainingError(f"{out} holds a {state['model_key']!r} run, not {key!r}")
            recipe = Recipe(**state["recipe"])  # a run keeps the recipe it started with
            seed = state["seed"]
        self.recipe, self.seed = recipe, seed
        self.history = list(state["history"]) if state else []
        self.first_epoch = state["epoch"] if state else 0
        self.start = state["step"] if state else 0
        self.partial = dict(state["partial"]) if state else {}
        self.probe = probe  # a factory until the network is built

    def _build(self) -> None:
        state, dev = self.state, self.dev
        torch.manual_seed(self.seed)
        self.model = place(build(self.key, num_classes=len(self.dataset.classes)), dev)
        self.optimizer = make_optimizer(self.model, self.recipe)
        # With a weight average, the average is what is evaluated, saved and answers: the live weights train.
        self.average = WeightAverage(self.model, self.recipe.ema) if self.recipe.ema else None
        if state is not None:
            try:
                self.model.load_state_dict(state["model"])
                self.optimizer.load_state_dict(state["optimizer"])
                if self.average:
                    self.average.load_state_dict(state["average"])
            except (RuntimeError, ValueError, KeyError, TypeError) as e:
                raise TrainingError(f"{self.out / STATE_FILE} does not fit a {self.key!r} network "
                                    f"({str(e).splitlines()[0][:100]}); delete it to start over") from None
        elif self.recipe.init:
            self._init_from(self.recipe.init)
        self.answering = self.average.model if self.average else self.model
        self._teachers(state)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
            exact_fp32()  # what bf16 autocast leaves in fp32 stays fp32, as between epochs and in the app
        self.net = torch.nn.parallel.DistributedDataParallel(self.model) if dist.is_initialized() else self.model
        loader = dict(rank=self.rank, world=self.world, channels_last=CHANNELS_LAST)
        self.train_loader = DeviceLoader.for_recipe(self.recipe, self.dataset.train, dev, soft=self.soft, **loader)
        self.test_loader = DeviceLoader(self.dataset.test, split_batch(dev), dev, train=False, **loader)
        self.steps = len(self.train_loader)
        if self.steps == 0:
            raise TrainingError(f"the training split has {len(self.dataset.train)} images, fewer than one batch of "
                                f"{self.recipe.batch_size}; lower --batch-size")
        # Weight-gradient norm per layer on a few fixed images, at initialisation and after each epoch: the
        # Why they differ page plots them against depth. Kept in the resume state until epoch 1's row has it.
        self.probe = self.probe(self.dataset.train, dev) if self.probe and self.main else None
        self.init_norms = (state.get("grad_norms_init") if state else
                           self.probe(self.model) if self.probe else None)

    def _init_from(self, where: str) -> None:
        """Start from a trained network's weights (fine-tuning): a checkpoint folder, or a shipped network's key."""
        folder = Path(where) if Path(where).is_dir() else checkpoints_dir() / where
        try:
            load_weights(self.model, folder / MODEL_FILE)
        except CheckpointError as e:
            raise TrainingError(f"init={where}: {e}") from None
        if self.average:
            self.average = WeightAverage(self.model, self.recipe.ema)

    def _teachers(self, state: dict | None) -> None:
        """The recipe's teachers, live (they answer each batch) or as their fixed answers to the training split."""
        self.teachers, self.teacher = load_teachers(self.recipe, self.dev, self.dataset.classes)
        self.soft, self.answers_s = None, float(state.get("answers_s", 0.0)) if state else 0.0
        if self.teachers and self.recipe.distill_targets == "fixed":
            tick = time.perf_counter()
            self.soft = fixed_answers(self.teachers, self.dataset.train, self.dev)
            self.teachers, self.answers_s = [], self.answers_s + time.perf_counter() - tick

    def train(self, emit: Progress, should_stop: Callable[[], bool]) -> dict:
        recipe = self.recipe
        if self.state is not None and self.first_epoch >= recipe.epochs:
            return {"state": "finished", "epoch": self.first_epoch, "step": 0, "history": self.history}
        self._build()
        self.status = Status(self.out, self.main)
        self.status.update(True, state="running", model=self.key, recipe=recipe.name, epoch=self.first_epoch,
                           epochs=recipe.epochs, step=self.start, steps=self.steps, device=machine_name(self.dev))
        self.objective = Objective(recipe, self.teachers)
        for epoch in range(self.first_epoch, recipe.epochs):
            stopped_at = self._epoch(epoch, emit, should_stop)
            if stopped_at is not None:
                return self._stopped(epoch, stopped_at)
            self.start = 0
            self._end_epoch(epoch, emit)
            if _agree(should_stop(), self.dev) and epoch + 1 < recipe.epochs:
                return self._stopped(epoch + 1, 0)
        self.status.update(True, state="finished", epoch=recipe.epochs, step=0)
        return {"state": "finished", "epoch": recipe.epochs, "step": 0, "history": self.history}

    def _epoch(self, epoch: int, emit: Progress, should_stop: Callable[[], bool]) -> int | None:
        """Train one epoch from self.start; returns the step it stopped after when asked to stop mid-epoch."""
        recipe, steps = self.recipe, self.steps
        self.net.train()
        self.tally = tally = _Tally(self.partial, self.dev)
        self.partial = {}
        global_step = epoch * steps + self.start
        for step, (xb, yb, *soft) in enumerate(self.train_loader.batches(epoch, self.seed, self.start),
                                               start=self.start):
            self.lr = lr = recipe.lr_at(global_step, steps)
            tally.add(*train_step(self.net, self.optimizer, self.objective, xb, yb, lr, *soft), len(yb))
            if self.average:
                self.average.update()
            global_step += 1
            stop = _agree(should_stop(), self.dev)
            last = step + 1 == steps
            if (step + 1) % SYNC_EVERY == 0 or last or stop:
                try:
                    tally.read_back(step, epoch, steps, lr)
                except NonFiniteLoss as e:
                    self.status.update(True, state="failed", error=f"loss is not finite at {e.where}")
                    raise
                self._report_step(epoch, step, emit)
            if stop and not last:
                self._snapshot(epoch, step + 1, tally.sums)
                return step + 1
        return None

    def _report_step(self, epoch: int, step: int, emit: Progress) -> None:
        recipe, steps, tally = self.recipe, self.steps, self.tally
        done = (step + 1) + (epoch * steps)
        eta = ((recipe.epochs * steps - done) * tally.sums["seconds"] / max(step + 1 - self.start, 1)
               if step + 1 > self.start else None)
        event = {"kind": "step", "epoch": epoch + 1, "epochs": recipe.epochs, "step": step + 1, "steps": steps,
                 "loss": tally.loss, "acc": tally.acc, "images_per_s": tally.images_per_s, "lr": self.lr, "eta_s": eta}
        emit(event)
        self.status.update(state="running", epoch=epoch + 1, step=step + 1, loss=event["loss"], acc=event["acc"],
                           images_per_s=event["images_per_s"], eta_s=eta)

    def _end_epoch(self, epoch: int, emit: Progress) -> None:
        """Evaluate, add the history row, write the checkpoint and then the resume state."""
        if dist.is_initialized():  # BatchNorm statistics differ per rank: keep rank 0's, so every rank ends identical
            for buf in [*self.model.buffers(), *(self.average.model.buffers() if self.average else ())]:
                dist.broadcast(buf, 0)
        tally, eval_tick = self.tally, time.perf_counter()
        self.status.update(True, state="testing", epoch=epoch + 1, step=self.steps, eta_s=None)
        # Between epochs the mirror pair alone: a fifth of the app's views' cost (a ResNet epoch on one CPU
        # core: 15 s against about 70 s, beside 44 s of training), and all the curves need. The last epoch, whose
        # checkpoint is the run's result, is measured as the app answers; an earlier one's config says its views.
        views = VIEWS if epoch + 1 == self.recipe.epochs else MIRRORED
        metrics = evaluate(self.answering, self.test_loader, self.dataset.classes, views)
        # The curves stay single-view, comparable with the report's and with runs from before mirroring.
        row = {"epoch": epoch + 1, "train_loss": tally.loss, "train_acc": tally.acc,
               "test_loss": metrics["single_view"]["test_loss"], "test_acc": metrics["single_view"]["test_acc"],
               "test_acc_mirrored": metrics["mirrored"]["test_acc"], "lr": self.lr,
               "seconds": tally.sums["seconds"] + time.perf_counter() - eval_tick, "images_per_s": tally.images_per_s}
        if self.probe:
            row["grad_norms"] = self.probe(self.model)
            if epoch == 0 and self.init_norms:
                row["grad_norms_init"] = self.init_norms
        self.history.append(row)
        if self.main:
            config = make_config(self.key, self.answering, classes=self.dataset.classes, recipe=self.recipe.to_dict(),
                                 data=self.dataset.provenance() | {"classes": None}, metrics=metrics,
                                 device=machine_name(self.dev) + (f" x{self.world}" if dist.is_initialized() else ""),
                                 epochs_done=epoch + 1, seed=self.seed)
            config["data"].pop("classes")
            # training and evaluation, all epochs, and the teachers' fixed answers
            config["wall_s"] = round(sum(r["seconds"] for r in self.history) + self.answers_s, 1)
            if self.teacher:
                config["teacher"] = self.teacher
            # The public checkpoint first, the resume state last: a kill between the two then repeats
            # this epoch on --resume. The other way round, a run killed there after its last epoch
            # would resume as "finished" and leave its checkpoint one epoch short.
            save_checkpoint(self.out, self.answering, config, self.history)
            self._snapshot(epoch + 1, 0, {})
        emit({"kind": "epoch", "row": row, "epochs": self.recipe.epochs})
        self.status.update(True, state="running", epoch=epoch + 1, step=0, test_acc=row["test_acc"])

    def _snapshot(self, epoch: int, step: int, partial: dict) -> None:
        if self.main:
            _write_state(self.out, {
                "version": 1, "model_key": self.key, "recipe": self.recipe.to_dict(), "seed": self.seed,
                "classes": self.dataset.classes, "data": self.dataset.provenance() | {"classes": None},
                "epoch": epoch, "step": step, "partial": partial, "history": self.history,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "average": self.average.state_dict() if self.average else None, "grad_norms_init": self.init_norms,
                "answers_s": self.answers_s})

    def _stopped(self, epoch: int, step: int) -> dict:
        self.status.update(True, state="stopped", epoch=epoch, step=step)
        return {"state": "stopped", "epoch": epoch, "step": step, "history": self.history}


def _agree(flag: bool, dev: torch.device) -> bool:
    """Under DDP a stop signal may reach one rank first: stop when any rank wants to."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor(int(flag), device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t)
