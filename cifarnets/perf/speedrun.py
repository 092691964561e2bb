"""python -m cifarnets speedrun: how many epochs and seconds each recipe takes to reach an accuracy.

Each (network, recipe, seed) trains from scratch through fit() itself, in a temporary run folder,
and stops after the first epoch whose test accuracy, each image averaged with its mirror image in
fp32 (what fit() measures between epochs; the app's ten views add a few tenths), reaches the
target. The recipes run side by side in one invocation, on the same machine, so their figures
compare; the machine is printed with them.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time

from ..answering import VIEWS
from ..cliargs import add_data_arg, add_device_arg
from ..data import sources
from ..device import machine_name, pick, training_precision
from ..errors import UsageError
from ..models import KEYS, label, spec
from ..training import recipes
from ..training.fit import fit


def add_parser(sub) -> None:
    s = sub.add_parser("speedrun", help="epochs and seconds from scratch to a test accuracy, per network and recipe",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    s.add_argument("--model", default="all", choices=["all", *KEYS])
    s.add_argument("--recipe", nargs="+", default=["fast"], choices=list(recipes.RECIPES), metavar="RECIPE",
                   help=f"one or more of {', '.join(recipes.RECIPES)} (default fast)")
    s.add_argument("--target", default="report",
                   help="report (the report's accuracy: CNN 64%%, ResNet 80%%, DenseNet 75%%, SE-ResNet 80%%), "
                        "floor (the shipped checkpoints' floors, models.ModelSpec.floor), or a fraction such as 0.85")
    s.add_argument("--epochs", type=int, help="override each recipe's epochs: its schedule is fitted to these")
    s.add_argument("--batch-size", type=int, help="override each recipe's batch size")
    s.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="try a variation: set a recipe field (see cifarnets/training/recipes.py) in every recipe run, "
                        "e.g. --set flip=random --set ema=0.99; repeatable")
    s.add_argument("--seeds", type=int, default=1, help="runs per network and recipe, seeds 0..N-1 (default 1)")
    add_data_arg(s)
    add_device_arg(s)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_speedrun)


def target_for(target: str, key: str) -> float:
    if target == "report":
        return spec(key).report.accuracy
    if target == "floor":
        return spec(key).floor
    try:
        value = float(target)
    except ValueError:
        raise UsageError(f"--target {target!r}: report, floor, or a fraction such as 0.85") from None
    if not 0 < value <= 1:
        raise UsageError(f"--target {target}: an accuracy is a fraction between 0 and 1")
    return value


def race(key: str, recipe: recipes.Recipe, dataset: sources.Dataset, target: float, seed: int, device: str,
         say=lambda text: None) -> dict:
    """One run from scratch until the target; the epoch and seconds it was first reached (None if never)."""
    start, reached, rows = time.perf_counter(), {}, []

    def progress(event: dict) -> None:
        if event["kind"] != "epoch":
            return
        row = event["row"]
        rows.append(row)
        acc = row["test_acc_mirrored"]
        if acc >= target and not reached:
            reached.update(epoch=row["epoch"], seconds=time.perf_counter() - start)
        say(f"{label(key)} {recipe.name} seed {seed}: epoch {row['epoch']}/{recipe.epochs} "
            f"{acc:.2%} (target {target:.0%}), {time.perf_counter() - start:.0f} s")

    with tempfile.TemporaryDirectory(prefix="cifarnets-speedrun-") as out:
        fit(key, recipe, dataset, out, device=device, seed=seed, progress=progress, should_stop=lambda: bool(reached))
    return {"seed": seed, "epoch": reached.get("epoch"), "seconds": reached.get("seconds"),
            "final_acc": rows[-1]["test_acc_mirrored"] if rows else None, "epochs_run": len(rows)}


def summarise(runs: list[dict]) -> dict:
    """Mean and spread over seeds of the runs that reached the target; how many did."""
    hit = [r for r in runs if r["epoch"] is not None]

    def stats(values: list[float], digits: int) -> dict:
        return {"mean": round(statistics.fmean(values), digits),
                "std": round(statistics.stdev(values), digits) if len(values) > 1 else 0.0} if values else None

    return {"reached": f"{len(hit)}/{len(runs)}", "epochs": stats([r["epoch"] for r in hit], 2),
            "seconds": stats([r["seconds"] for r in hit], 1),
            "final_acc": stats([r["final_acc"] for r in runs if r["final_acc"] is not None], 4), "runs": runs}


def cmd_speedrun(args) -> int:
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    dev = pick(args.device)
    keys = KEYS if args.model == "all" else (args.model,)
    targets = {key: target_for(args.target, key) for key in keys}
    changes = recipes.settings(args.set)
    # made before the data loads: a recipe refuses what it cannot take (Recipe.__post_init__)
    chosen = {(key, name): recipes.get(name, key, epochs=args.epochs, batch_size=args.batch_size, **changes)
              for key in keys for name in args.recipe}
    dataset = sources.load(args.data, verbose=not args.json)
    say = (lambda text: print(text, file=sys.stderr, flush=True))
    machine = machine_name(dev)
    say(f"speedrun on {machine}, training in {training_precision(dev)}; data: {dataset.source}")
    result: dict = {"machine": machine, "precision": training_precision(dev), "target": args.target,
                    "changes": changes, "data": dataset.source, "results": {}}
    for (key, name), recipe in chosen.items():
        runs = [race(key, recipe, dataset, targets[key], seed, args.device, say) for seed in range(args.seeds)]
        result["results"].setdefault(key, {})[name] = summarise(runs) | {"target": targets[key],
                                                                          "epochs_budget": recipe.epochs}
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


def table(result: dict) -> str:
    lines = [f"speedrun on {result['machine']}, training in {result['precision']}; target: {result['target']}; "
             f"accuracy of each image and its mirror image, in fp32 (the app's {VIEWS} views add a few tenths); "
             "mean ± spread over seeds"
             + "".join(f"; {k}={v}" for k, v in result["changes"].items()),
             f"{'network':<10} {'recipe':<8} {'target':>7} {'reached':>8} {'epochs':>13} {'seconds':>15} "
             f"{'accuracy at stop':>17}"]
    for key, by_recipe in result["results"].items():
        for name, r in by_recipe.items():
            epochs = f"{r['epochs']['mean']:.1f} ± {r['epochs']['std']:.1f}" if r["epochs"] else "-"
            seconds = f"{r['seconds']['mean']:.0f} ± {r['seconds']['std']:.0f}" if r["seconds"] else "-"
            acc = f"{r['final_acc']['mean']:.2%}" if r["final_acc"] else "-"
            lines.append(f"{label(key):<10} {name:<8} {r['target']:>7.0%} {r['reached']:>8} {epochs:>13} "
                         f"{seconds:>15} {acc:>17}")
    return "\n".join(lines)
