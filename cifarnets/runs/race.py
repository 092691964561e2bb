"""A race: the four networks trained one after another with one recipe, in one process, so a user sees them learn
side by side. Its records (RaceRequest, RaceStatus, Race: as record.py's for a run) and the command that trains
it, `python -m cifarnets race`.

Each network trains through fit() into its own run folder inside the race's folder, so each finished
one is an ordinary run (checkpoint, history, resume state) that the app can classify with. race.json
says where the race is, for the app's chart. SIGTERM or Ctrl-C stops the network in training after its
current step, with its state saved, and starts no further one; --resume skips the networks that have
finished and continues the stopped one where it was.

As for a single run, the folder is the truth: job.json says how the app started the race, race.json is written by
the race (its state, its order, the network it is on), and each network trains into its own run folder inside,
which the trainer writes as it always does. Any session, or a reloaded page, sees the same race. A race is a
record.Job like a run: queued, cancelled, resumed (jobs.py), loaded and listed by the same code.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from ..cliargs import add_data_arg, add_device_arg, stop_on_signals
from ..errors import UsageError
from ..models import KEYS, label
from ..paths import runs_dir
from ..store.fileio import read_json, write_json
from ..store.runfolder import STATE_FILE, STATUS_FILE, RunLock, TrainingError
from ..training import recipes
from . import record
from .record import RACE_FILE, Job, Run, is_number, is_race, read_object
from .request import TrainRequest, absolute_data, check, given, optional

if TYPE_CHECKING:
    from ..data import sources

ORDER = KEYS  # quickest first: the CNN's curve is on the chart within minutes
PREFIX = "race-"


# ---------------------------------------------------------------- the request

@dataclass(frozen=True)
class RaceRequest:
    """How a race is started: one recipe for all four; None means each network's recipe value."""

    recipe: str = "fast"
    epochs: int | None = None
    batch_size: int | None = None
    data: str | None = None
    device: str = "auto"
    seed: int = 0

    @classmethod
    def of(cls, recipe: str = "fast", *, epochs=None, batch_size=None, data: str | None = None,
           device: str = "auto", seed: int = 0) -> RaceRequest:
        return cls(recipe, optional(epochs, int), optional(batch_size, int), data, device, int(seed))

    @classmethod
    def from_json(cls, data) -> RaceRequest:
        return cls(**given(data, cls))

    def member(self, key: str) -> TrainRequest:
        """The run the race trains `key` with."""
        return TrainRequest.of(key, self.recipe, epochs=self.epochs, batch_size=self.batch_size, data=self.data,
                               device=self.device, seed=self.seed)

    def argv(self, out: Path, resume: bool = False) -> list[str]:
        args = ["race", "--recipe", self.recipe, "--out", str(out), "--device", self.device, "--seed", str(self.seed)]
        for flag, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size), ("--data", self.data)):
            if value is not None and value != "":
                args += [flag, str(value)]
        return args + (["--resume"] if resume else [])


# ---------------------------------------------------------------- what a race writes

@dataclass(frozen=True)
class RaceStatus:
    """race.json, typed: what the race (race.py) last said, and the app's first word before it (jobs.announce).
    As RunStatus, a field missing or of the wrong type reads as its default."""

    state: str = ""  # starting | running | stopped | finished | failed
    order: tuple[str, ...] | None = None  # the networks in the order the race trains them
    request: dict = field(default_factory=dict)  # the RaceRequest, as the race was started
    results: dict = field(default_factory=dict)  # {network: {"state", "epochs", "test_acc", ...}} of those done
    current: str | None = None  # the network in training
    error: str = ""
    pid: int | None = None
    updated: float | None = None
    written: bool = False

    @classmethod
    def from_json(cls, data) -> RaceStatus:
        if not isinstance(data, dict) or not data:
            return cls()
        order, text = data.get("order"), lambda k: data.get(k) if isinstance(data.get(k), str) else ""
        return cls(text("state"), tuple(k for k in order if isinstance(k, str)) if isinstance(order, list) else None,
                   data.get("request") if isinstance(data.get("request"), dict) else {},
                   data.get("results") if isinstance(data.get("results"), dict) else {},
                   data.get("current") if isinstance(data.get("current"), str) else None, text("error"),
                   int(data["pid"]) if is_number(data.get("pid")) else None,
                   float(data["updated"]) if is_number(data.get("updated")) else None, True)

    @classmethod
    def read(cls, folder: Path) -> RaceStatus:
        return cls.from_json(read_object(Path(folder) / RACE_FILE))

    @staticmethod
    def announced(request: RaceRequest) -> dict:
        """race.json as the app writes it before the race has begun."""
        return {"state": "starting", "order": list(ORDER), "request": asdict(request)}


RACE_FIELDS = frozenset(f.name for f in fields(RaceStatus)) - {"written"}  # what race.py may write


# ---------------------------------------------------------------- a race folder, read whole

@dataclass
class Race(Job):
    """A race folder, read from disk. `state`: starting | running | stopped | finished | failed."""

    status: RaceStatus = field(default_factory=RaceStatus)

    STATUS = RaceStatus
    REQUEST = RaceRequest

    @property
    def request(self) -> RaceRequest:
        """How it was started: the app's job.json, else what the race itself wrote."""
        return RaceRequest.from_json(self.job.get("request") or self.status.request)

    @property
    def order(self) -> list[str]:
        order = self.status.order
        return [k for k in order if k in KEYS] if order is not None else list(ORDER)

    def members(self) -> dict[str, Run]:
        """{network: its run}, in the race's order, for the networks the race has begun."""
        return {key: record.load_run(member_folder(self.folder, key)) for key in self.order
                if record.is_run(member_folder(self.folder, key))}

    def progress(self) -> float:
        """Fraction of the whole race done, 0..1: each network is an equal share of it."""
        if self.state == "finished":
            return 1.0
        return sum(run.progress() for run in self.members().values()) / max(len(self.order), 1)


def check_race(request: RaceRequest) -> str:
    """Why this race cannot start, in one line; "" when it can. Every network is checked, since a recipe may
    train one of them differently (the modern DenseNet distils from the ResNet)."""
    return next((p for p in (check(request.member(key)) for key in ORDER) if p), "")


def member_folder(race_folder: Path, key: str) -> Path:
    """Where a race trains `key`: named after the race too, so every run's folder name is unique."""
    return Path(race_folder) / f"{key}-{Path(race_folder).name}"


def load_race(folder: Path) -> Race:
    return Race.load(folder)


def list_races(runs: Path | None = None) -> list[Race]:
    """Every race under runs/, newest first."""
    record.reap()
    runs = Path(runs or runs_dir())
    if not runs.is_dir():
        return []
    return sorted((load_race(p) for p in runs.iterdir() if is_race(p)), key=lambda r: r.started, reverse=True)


# ---------------------------------------------------------------- the command

Say = Callable[[str], None]


def add_parser(sub) -> None:
    r = sub.add_parser("race", help="train the four networks one after another with one recipe (the app's race)",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    r.add_argument("--recipe", default="fast", choices=list(recipes.RECIPES), help="one recipe for all four "
                   "(each network with its own entry of it); default fast")
    r.add_argument("--epochs", type=int, help="the same epoch count for all four (default: each recipe's own)")
    r.add_argument("--batch-size", type=int, help="the same batch size for all four (default: each recipe's own)")
    add_data_arg(r)
    r.add_argument("--out", help="race folder (default runs/race-<recipe>-<time>, where the app shows it)")
    r.add_argument("--resume", action="store_true", help="continue the race in --out where it stopped")
    add_device_arg(r)
    r.add_argument("--seed", type=int, default=0, help="makes CPU runs repeatable (default 0)")
    r.set_defaults(func=cmd_race)


def cmd_race(args) -> int:
    if (args.epochs is not None and args.epochs < 1) or (args.batch_size is not None and args.batch_size < 1):
        raise UsageError("--epochs and --batch-size must be at least 1")
    if args.resume and not args.out:
        raise UsageError("--resume needs --out: the race folder to continue")
    from ..data import sources  # here, not above: the app reads races without loading torch

    out = Path(args.out or runs_dir() / f"{PREFIX}{args.recipe}-{time.strftime('%Y%m%d-%H%M%S')}")
    dataset = sources.load(args.data, verbose=True)
    should_stop = stop_on_signals()
    # race.json keeps it: the app continues a race started from the shell with these
    request = RaceRequest.of(args.recipe, epochs=args.epochs, batch_size=args.batch_size,
                             data=absolute_data(args.data), device=args.device, seed=args.seed)
    result = run(out, request, dataset, resume=args.resume, should_stop=should_stop)
    print(table(result))
    if result["state"] == "stopped":
        print(f"stopped; continue with: python -m cifarnets race --recipe {args.recipe} --out {out} --resume"
              + (f" --data {args.data}" if args.data else ""), file=sys.stderr)
    return 1 if result["state"] == "failed" else 0


def run(out: Path, request: RaceRequest, dataset: sources.Dataset, *, resume: bool = False,
        should_stop: Callable[[], bool] = lambda: False, say: Say | None = None) -> dict:
    """Train the four in ORDER into `out`; returns race.json's content (RaceStatus's fields): {"state",
    "results": {key: {...}}, ...}.

    A network that fails (its loss diverges, say) is recorded as failed and the race goes on with the next.
    """
    from ..analysis.gradients import GradientProbe
    from ..training.fit import fit

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainingError(f"cannot create the race folder {out}: {e.strerror}") from None
    with RunLock(out):
        begun = [k for k in ORDER if (member_folder(out, k) / STATE_FILE).exists()]
        if begun and not resume:
            raise TrainingError(f"{out} already holds a race ({', '.join(begun)} begun); pass --resume to continue "
                                "it, or choose another --out")
        status = {"state": "running", "order": list(ORDER), "request": asdict(request), "results": {},
                  "pid": os.getpid()}
        for i, key in enumerate(ORDER):
            recipe = request.member(key).planned()
            _write(out, status, current=key)
            say(f"== {label(key)} ({i + 1}/{len(ORDER)}): {recipe.name} recipe, {recipe.epochs} epochs, "
                f"batch {recipe.batch_size}")
            folder = member_folder(out, key)
            try:
                # resume=True for every network: a finished one returns at once, a new one starts afresh
                result = fit(key, recipe, dataset, folder, device=request.device, seed=request.seed, resume=True,
                             should_stop=should_stop, progress=_epoch_lines(key, say), probe=GradientProbe)
            except TrainingError as e:
                _failed(folder, key, recipe.name, str(e))
                status["results"][key] = {"state": "failed", "error": str(e)}
                say(f"{label(key)} failed: {e}")
                continue
            status["results"][key] = _result(result)
            if result["state"] == "stopped":
                return _write(out, status, state="stopped", current=key)
        failed = {k: r["error"] for k, r in status["results"].items() if r["state"] == "failed"}
        error = "; ".join(f"{label(k)}: {why}" for k, why in failed.items())
        return _write(out, status, state="failed" if failed else "finished", current=None, error=error)


def _write(out: Path, status: dict, **fields) -> dict:
    status.update(fields, updated=time.time())
    unknown = set(status) - RACE_FIELDS
    if unknown:
        raise TypeError(f"race.json has no field {', '.join(sorted(unknown))} (RaceStatus)")
    write_json(out / RACE_FILE, status)
    return status


def _failed(folder: Path, key: str, recipe: str, error: str) -> None:
    """A failed network's status says why: the trainer leaves none for most failures (its CLI prints them)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        status = read_json(folder / STATUS_FILE)
    except (OSError, ValueError):
        status = {}
    status = status if isinstance(status, dict) else {}
    write_json(folder / STATUS_FILE, status | {"state": "failed", "error": error, "model": key, "recipe": recipe,
                                               "updated": time.time()})


def _result(fit_result: dict) -> dict:
    last = fit_result["history"][-1] if fit_result["history"] else {}
    return {"state": fit_result["state"], "epochs": fit_result["epoch"], "test_acc": last.get("test_acc"),
            "test_acc_mirrored": last.get("test_acc_mirrored"), "test_loss": last.get("test_loss"),
            "seconds": round(sum(r.get("seconds", 0.0) for r in fit_result["history"]), 1)}


def _epoch_lines(key: str, say: Say) -> Callable[[dict], None]:
    def progress(event: dict) -> None:
        if event["kind"] == "epoch":
            r = event["row"]
            say(f"{label(key):<10} epoch {r['epoch']:>3}/{event['epochs']}  train loss {r['train_loss']:.4f}  "
                f"test loss {r['test_loss']:.4f} acc {r['test_acc']:.2%}  {r['seconds']:.0f}s")
    return progress


def table(result: dict) -> str:
    lines = [f"race {result['state']}: {result['request']['recipe']} recipe",
             f"{'network':<10} {'state':<9} {'epochs':>6} {'test acc':>9} {'mirrored':>9} {'seconds':>8}"]
    for key in result["order"]:
        r = result["results"].get(key)
        if r is None:
            lines.append(f"{label(key):<10} {'not run':<9}")
        elif r["state"] == "failed":
            lines.append(f"{label(key):<10} {'failed':<9} {r['error']}")
        else:
            acc, mirrored = r.get("test_acc"), r.get("test_acc_mirrored")
            lines.append(f"{label(key):<10} {r['state']:<9} {r['epochs']:>6} "
                         f"{'' if acc is None else f'{acc:.2%}':>9} {'' if mirrored is None else f'{mirrored:.2%}':>9} "
                         f"{r['seconds']:>8.0f}")
    return "\n".join(lines)

