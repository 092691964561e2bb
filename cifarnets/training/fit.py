"""fit(): epochs over device-resident batches, evaluation after each, history, atomic checkpoints,
resume from any step, a clean stop on request, and DistributedDataParallel under torchrun.

A run folder holds the public checkpoint (model.safetensors, config.json, history.json), the
private resume state (train_state.pt: weights, optimizer, position, history; tensors and plain
data only, loaded with weights_only=True), status.json for whoever watches, and a lock.

A run's state is two records: _Run, what fit() is given and builds once (the network, its optimizer,
data and teachers), and _Position, what each step and epoch move on (where the run stands, its history).
_train reads top to bottom: the resume state, the build, the epochs (_train_epoch, _end_epoch).
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
from .tally import EpochTally, NonFiniteLoss
from .threads import training_threads

SYNC_EVERY = 10  # steps between reading the loss back from the device (a sync on CUDA)

Progress = Callable[[dict], None]

# Given the training split and the device, returns what measures a model after each epoch (and at
# initialisation): its result goes in the history row as "grad_norms". The CLI passes the analysis's
# GradientProbe; the trainer itself knows nothing of what is measured.
ProbeFactory = Callable[[Split, torch.device], Callable[[torch.nn.Module], dict]]


@dataclass
class _Run:
    """What one call of fit() is given and builds once, and trains with to the end."""
    key: str
    recipe: Recipe  # a resumed run's own: a run keeps the recipe it started with
    seed: int
    dataset: Dataset
    out: Path
    dev: torch.device
    rank: int
    world: int
    model: torch.nn.Module  # the live weights, which train
    net: torch.nn.Module  # the model, or under torchrun its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    # With a weight average, the average is what is evaluated, saved and answers: the live weights train.
    average: WeightAverage | None
    objective: Objective  # the loss, the live teachers' included
    teacher: dict | None  # what a checkpoint's config records of the teachers
    train_loader: DeviceLoader
    test_loader: DeviceLoader
    probe: Callable[[torch.nn.Module], dict] | None  # rank 0's alone
    status: Status
    emit: Progress
    should_stop: Callable[[], bool]

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def steps(self) -> int:
        return len(self.train_loader)

    @property
    def answering(self) -> torch.nn.Module:
        return self.average.model if self.average else self.model


@dataclass
class _Position:
    """Where a run stands, and what it carries from epoch to epoch: with the weights, what the resume state keeps."""
    epoch: int = 0  # epochs done
    step: int = 0  # steps done of the next epoch
    partial: dict = field(default_factory=dict)  # those steps' EpochTally sums, where a stop came mid-epoch
    history: list[dict] = field(default_factory=list)  # one row per epoch done
    # Weight-gradient norm per layer at initialisation: kept until epoch 1's row has it.
    init_norms: dict | None = None
    answers_s: float = 0.0  # seconds the teachers' fixed answers took, over all of the run's sessions

    @classmethod
    def resumed(cls, state: dict) -> _Position:
        return cls(state["epoch"], state["step"], dict(state["partial"]), list(state["history"]),
                   state.get("grad_norms_init"), float(state.get("answers_s", 0.0)))


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
            result = _train(key, recipe, dataset, out, dev, seed, resume, rank, world, probe,
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


def _train(key: str, recipe: Recipe, dataset: Dataset, out: Path, dev: torch.device, seed: int, resume: bool,
           rank: int, world: int, probe: ProbeFactory | None, emit: Progress, should_stop: Callable[[], bool]) -> dict:
    """fit() inside the run's lock: the resume state, the build, then epoch after epoch to the end or a stop."""
    state = _shared_state(out, rank)
    if state is not None and not resume:
        raise TrainingError(f"{out} already holds a run ({state['epoch']}/{state['recipe']['epochs']} epochs); "
                            "pass --resume to continue it, or choose another --out")
    if state is not None:
        if state["model_key"] != key:
            raise TrainingError(f"{out} holds a {state['model_key']!r} run, not {key!r}")
        recipe, seed = Recipe(**state["recipe"]), state["seed"]  # a run keeps the recipe it started with
    at = _Position.resumed(state) if state is not None else _Position()
    if state is not None and at.epoch >= recipe.epochs:
        return {"state": "finished", "epoch": at.epoch, "step": 0, "history": at.history}

    run = _build(key, recipe, seed, dataset, out, dev, rank, world, probe, state, at, emit, should_stop)
    run.status.update(True, state="running", model=key, recipe=recipe.name, epoch=at.epoch, epochs=recipe.epochs,
                      step=at.step, steps=run.steps, device=machine_name(dev))
    while at.epoch < recipe.epochs:
        tally = _train_epoch(run, at)
        if tally is None:  # asked to stop mid-epoch
            return _stopped(run, at)
        _end_epoch(run, at, tally)
        if _agree(should_stop(), dev) and at.epoch < recipe.epochs:
            return _stopped(run, at)
    run.status.update(True, state="finished", epoch=recipe.epochs, step=0)
    return {"state": "finished", "epoch": recipe.epochs, "step": 0, "history": at.history}


def _build(key: str, recipe: Recipe, seed: int, dataset: Dataset, out: Path, dev: torch.device, rank: int, world: int,
           probe: ProbeFactory | None, state: dict | None, at: _Position, emit: Progress,
           should_stop: Callable[[], bool]) -> _Run:
    """The network, its optimizer, teachers and data, restored from `state` where resuming. Adds to `at` the
    seconds the teachers' fixed answers take, and a new run's gradient norms at initialisation."""
    torch.manual_seed(seed)
    model = place(build(key, num_classes=len(dataset.classes)), dev)
    optimizer = make_optimizer(model, recipe)
    if state is None and recipe.init:
        _init_from(model, recipe.init)
    average = WeightAverage(model, recipe.ema) if recipe.ema else None
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if average:
                average.load_state_dict(state["average"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise TrainingError(f"{out / STATE_FILE} does not fit a {key!r} network "
                                f"({str(e).splitlines()[0][:100]}); delete it to start over") from None

    # The recipe's teachers answer each batch live, or once, before training, for every training image.
    teachers, teacher = load_teachers(recipe, dev, dataset.classes)
    soft = None
    if teachers and recipe.distill_targets == "fixed":
        tick = time.perf_counter()
        soft = fixed_answers(teachers, dataset.train, dev)
        teachers, at.answers_s = [], at.answers_s + time.perf_counter() - tick

    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        exact_fp32()  # what bf16 autocast leaves in fp32 stays fp32, as between epochs and in the app
    net = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    loader = dict(rank=rank, world=world, channels_last=CHANNELS_LAST)
    train_loader = DeviceLoader.for_recipe(recipe, dataset.train, dev, soft=soft, **loader)
    test_loader = DeviceLoader(dataset.test, split_batch(dev), dev, train=False, **loader)
    if len(train_loader) == 0:
        raise TrainingError(f"the training split has {len(dataset.train)} images, fewer than one batch of "
                            f"{recipe.batch_size}; lower --batch-size")
    # Weight-gradient norm per layer on a few fixed images, at initialisation and after each epoch: the
    # Why they differ page plots them against depth.
    measure = probe(dataset.train, dev) if probe and rank == 0 else None
    if state is None:
        at.init_norms = measure(model) if measure else None
    return _Run(key, recipe, seed, dataset, out, dev, rank, world, model, net, optimizer, average,
                Objective(recipe, teachers), teacher, train_loader, test_loader, measure, Status(out, rank == 0),
                emit, should_stop)


def _init_from(model: torch.nn.Module, where: str) -> None:
    """Start from a trained network's weights (fine-tuning): a checkpoint folder, or a shipped network's key."""
    folder = Path(where) if Path(where).is_dir() else checkpoints_dir() / where
    try:
        load_weights(model, folder / MODEL_FILE)
    except CheckpointError as e:
        raise TrainingError(f"init={where}: {e}") from None


def _train_epoch(run: _Run, at: _Position) -> EpochTally | None:
    """Train epoch at.epoch from step at.step on; returns its tally, or None when asked to stop mid-epoch (the
    resume state then holds where)."""
    steps, start = run.steps, at.step
    run.net.train()
    tally, at.partial = EpochTally(at.partial, run.dev), {}
    for step, (xb, yb, *soft) in enumerate(run.train_loader.batches(at.epoch, run.seed, start), start=start):
        lr = run.recipe.lr_at(at.epoch * steps + step, steps)
        tally.add(*train_step(run.net, run.optimizer, run.objective, xb, yb, lr, *soft), len(yb), lr)
        if run.average:
            run.average.update()
        at.step = step + 1
        stop = _agree(run.should_stop(), run.dev)
        last = at.step == steps
        if at.step % SYNC_EVERY == 0 or last or stop:
            try:
                tally.read_back(step, at.epoch, steps)
            except NonFiniteLoss as e:
                run.status.update(True, state="failed", error=f"loss is not finite at {e.where}")
                raise
            _report_step(run, at, tally, start)
        if stop and not last:
            at.partial = tally.sums
            _snapshot(run, at)
            return None
    return tally


def _report_step(run: _Run, at: _Position, tally: EpochTally, start: int) -> None:
    """The steps so far, to the progress callback and status.json; `start`: the step this session's epoch began at."""
    recipe, steps = run.recipe, run.steps
    done = at.epoch * steps + at.step
    eta = ((recipe.epochs * steps - done) * tally.sums["seconds"] / max(at.step - start, 1)
           if at.step > start else None)
    event = {"kind": "step", "epoch": at.epoch + 1, "epochs": recipe.epochs, "step": at.step, "steps": steps,
             "loss": tally.loss, "acc": tally.acc, "images_per_s": tally.images_per_s, "lr": tally.lr, "eta_s": eta}
    run.emit(event)
    run.status.update(state="running", epoch=at.epoch + 1, step=at.step, loss=event["loss"], acc=event["acc"],
                      images_per_s=event["images_per_s"], eta_s=eta)


def _end_epoch(run: _Run, at: _Position, tally: EpochTally) -> None:
    """Evaluate, add the history row, write the checkpoint and then the resume state."""
    if dist.is_initialized():  # BatchNorm statistics differ per rank: keep rank 0's, so every rank ends identical
        for buf in [*run.model.buffers(), *(run.average.model.buffers() if run.average else ())]:
            dist.broadcast(buf, 0)
    eval_tick, epoch, recipe = time.perf_counter(), at.epoch + 1, run.recipe
    run.status.update(True, state="testing", epoch=epoch, step=run.steps, eta_s=None)
    # Between epochs the mirror pair alone: a fifth of the app's views' cost (a ResNet epoch on one CPU
    # core: 15 s against about 70 s, beside 44 s of training), and all the curves need. The last epoch, whose
    # checkpoint is the run's result, is measured as the app answers; an earlier one's config says its views.
    views = VIEWS if epoch == recipe.epochs else MIRRORED
    metrics = evaluate(run.answering, run.test_loader, run.dataset.classes, views)
    # The curves stay single-view, comparable with the report's and with runs from before mirroring.
    row = {"epoch": epoch, "train_loss": tally.loss, "train_acc": tally.acc,
           "test_loss": metrics["single_view"]["test_loss"], "test_acc": metrics["single_view"]["test_acc"],
           "test_acc_mirrored": metrics["mirrored"]["test_acc"], "lr": tally.lr,
           "seconds": tally.sums["seconds"] + time.perf_counter() - eval_tick, "images_per_s": tally.images_per_s}
    if run.probe:
        row["grad_norms"] = run.probe(run.model)
        if epoch == 1 and at.init_norms:
            row["grad_norms_init"] = at.init_norms
    at.history.append(row)
    at.epoch, at.step = epoch, 0
    if run.main:
        config = make_config(run.key, run.answering, classes=run.dataset.classes, recipe=recipe.to_dict(),
                             data=run.dataset.provenance() | {"classes": None}, metrics=metrics,
                             device=machine_name(run.dev) + (f" x{run.world}" if dist.is_initialized() else ""),
                             epochs_done=epoch, seed=run.seed)
        config["data"].pop("classes")
        # training and evaluation, all epochs, and the teachers' fixed answers
        config["wall_s"] = round(sum(r["seconds"] for r in at.history) + at.answers_s, 1)
        if run.teacher:
            config["teacher"] = run.teacher
        # The public checkpoint first, the resume state last: a kill between the two then repeats
        # this epoch on --resume. The other way round, a run killed there after its last epoch
        # would resume as "finished" and leave its checkpoint one epoch short.
        save_checkpoint(run.out, run.answering, config, at.history)
        _snapshot(run, at)
    run.emit({"kind": "epoch", "row": row, "epochs": recipe.epochs})
    run.status.update(True, state="running", epoch=epoch, step=0, test_acc=row["test_acc"])


def _snapshot(run: _Run, at: _Position) -> None:
    """The resume state: the run's setup, `at`, and the weights and optimizer (rank 0 alone writes it)."""
    if run.main:
        _write_state(run.out, {
            "version": 1, "model_key": run.key, "recipe": run.recipe.to_dict(), "seed": run.seed,
            "classes": run.dataset.classes, "data": run.dataset.provenance() | {"classes": None},
            "epoch": at.epoch, "step": at.step, "partial": at.partial, "history": at.history,
            "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "average": run.average.state_dict() if run.average else None, "grad_norms_init": at.init_norms,
            "answers_s": at.answers_s})


def _stopped(run: _Run, at: _Position) -> dict:
    run.status.update(True, state="stopped", epoch=at.epoch, step=at.step)
    return {"state": "stopped", "epoch": at.epoch, "step": at.step, "history": at.history}


# ---------------------------------------------------------------- the resume state, and the ranks

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


def _agree(flag: bool, dev: torch.device) -> bool:
    """Under DDP a stop signal may reach one rank first: stop when any rank wants to."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor(int(flag), device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t)
