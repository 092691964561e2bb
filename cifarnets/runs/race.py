"""python -m cifarnets race: the four networks trained one after another with one recipe, in one process.

Each network trains through fit() into its own run folder inside the race's folder, so each finished
one is an ordinary run (checkpoint, history, resume state) that the app can classify with. race.json
says where the race is, for the app's chart. SIGTERM or Ctrl-C stops the network in training after its
current step, with its state saved, and starts no further one; --resume skips the networks that have
finished and continues the stopped one where it was.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..cliargs import add_data_arg, add_device_arg, stop_on_signals
from ..data import sources
from ..errors import UsageError
from ..models import label
from ..paths import runs_dir
from ..store.fileio import read_json, write_json
from ..store.runfolder import STATE_FILE, STATUS_FILE, RunLock, TrainingError
from ..training import recipes
from .record import ORDER, PREFIX, RACE_FIELDS, RACE_FILE, RaceRequest, absolute_data, member_folder

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
    """Train the four in ORDER into `out`; returns race.json's content (record.RaceStatus's fields): {"state",
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
        raise TypeError(f"race.json has no field {', '.join(sorted(unknown))} (record.RaceStatus)")
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

