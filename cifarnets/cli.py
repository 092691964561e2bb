"""python -m cifarnets train | evaluate | predict | summary | export ...: the library from the shell.

Every command prints a table for people and, with --json, one JSON document for programs.
User mistakes (errors.UserError) end in one `error:` line and a non-zero exit, never a stack trace;
a bug shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import answering
from .analysis import analyze
from .cliargs import add_checkpoints_arg, add_data_arg, add_device_arg, stop_on_signals
from .data import loader, sources
from .errors import UsageError, UserError
from .models import ALL_KEYS, KEYS, label, recipe_key
from .paths import runs_dir
from .perf import bench, classload, pagetime, speedrun, stresstime
from .photos import check as photos
from .prose import duration, plural
from .runs import engine, race
from .store import checkpoints as ckpt
from .store import hub
from .store.record import CheckpointRecord
from .stress import apply as stress
from .stress import measure as stress_measure
from .training import recipes
from .unfamiliar import measure
from .yours import commands as yours


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except UserError as e:  # anything else is a bug: its traceback shows
        print(f"error: {e}", file=sys.stderr)
        return 1


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cifarnets", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    s = sub.add_parser("summary", help="each network's printout and parameter count")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_summary)

    t = sub.add_parser("train", help="train one network, writing a checkpoint folder after every epoch",
                       description="Train one network. Ctrl-C (or SIGTERM) finishes the current step, saves, and "
                                   "exits 0; --resume continues exactly there.")
    t.add_argument("--model", required=True, choices=ALL_KEYS,
                   help="one of the report's four, or resnet_plain: our ResNet without shortcuts")
    t.add_argument("--recipe", default="fast", choices=list(recipes.RECIPES),
                   help="fast: ours, the report's accuracy in a few epochs (default); modern: ours, long, for the "
                        "shipped checkpoints; report: the report's own training")
    t.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    t.add_argument("--lr", type=float, help="override the recipe's (peak) learning rate")
    t.add_argument("--batch-size", type=int, help="override the recipe's batch size (global, across ranks)")
    t.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any other recipe field (see cifarnets/training/recipes.py), e.g. --set cutout=8; "
                        "repeatable, and recorded in the run's config.json like the rest of the recipe")
    add_data_arg(t)
    t.add_argument("--out", help="run folder (default <runs>/<model>-<recipe>-<time>, where the app shows it; "
                                 "<runs>: $CIFARNETS_RUNS, else runs/ beside app.py)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    add_device_arg(t)
    t.add_argument("--seed", type=int, default=0, help="makes CPU runs repeatable (default 0)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix on the test split")
    which = e.add_mutually_exclusive_group()  # one of the two, or --network alone
    which.add_argument("--checkpoint", help="one checkpoint folder")
    which.add_argument("--all", action="store_true", help="every network in --checkpoints")
    add_checkpoints_arg(e)
    add_data_arg(e)
    add_device_arg(e)
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.add_argument("--write", action="store_true",
                   help="store what was measured as each checkpoint's metrics in its config.json (local folders only)")
    hub.add_hub_arg(e)
    yours.add_network_arg(e)
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="classify image files with every network")
    r.add_argument("files", nargs="+", metavar="FILE")
    add_checkpoints_arg(r)
    add_device_arg(r)
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.add_argument("--corrupt", metavar="NAME:SEVERITY",
                   help="classify each image under a CIFAR-10-C corruption, e.g. gaussian_noise:3 (severity 0-5)")
    r.add_argument("--attack", metavar="KIND:EPS",
                   help="classify each image perturbed by fgsm or pgd (10 steps) within EPS/255, e.g. pgd:4")
    r.add_argument("--against", choices=KEYS, help="the network --attack targets")
    hub.add_hub_arg(r)
    yours.add_network_arg(r)
    r.set_defaults(func=cmd_predict)

    race.add_parser(sub)
    engine.add_parser(sub)
    hub.add_parser(sub)
    bench.add_parser(sub)
    speedrun.add_parser(sub)
    photos.add_parser(sub)
    classload.add_parser(sub)
    pagetime.add_parser(sub)
    analyze.add_parser(sub)
    measure.add_parser(sub)
    stress_measure.add_parser(sub)
    stresstime.add_parser(sub)
    yours.add_export_parser(sub)
    return p


# ---------------------------------------------------------------- summary

def cmd_summary(args) -> int:
    from .diagram.architecture import overview

    info = {key: overview(key) for key in KEYS}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, i in info.items():
        print(f"== {i['label']} ({key}): {i['class']}, {i['params']:,} parameters\n{i['printout']}\n")
    return 0


# ---------------------------------------------------------------- train

def cmd_train(args) -> int:
    from tqdm import tqdm

    from .analysis.gradients import GradientProbe
    from .store.curves import epoch_line
    from .training.fit import fit

    # An extra network trains with the recipe of the report network it derives from.
    named = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size}
    recipe = recipes.get(args.recipe, recipe_key(args.model),
                         **recipes.settings(args.set) | {k: v for k, v in named.items() if v is not None})
    out = Path(args.out or runs_dir() / f"{args.model}-{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    main = os.environ.get("RANK", "0") == "0"  # under torchrun rank 0 alone talks, as it alone writes
    say = print if main else (lambda *a, **k: None)
    dataset = sources.load(args.data, verbose=main)

    should_stop = stop_on_signals(say)

    bar = {"bar": None}

    def progress(event: dict) -> None:
        if event["kind"] == "step":
            if bar["bar"] is None or bar["bar"].total != event["steps"] or bar["epoch"] != event["epoch"]:
                if bar["bar"] is not None:
                    bar["bar"].close()
                bar["bar"] = tqdm(total=event["steps"], desc=f"epoch {event['epoch']}/{event['epochs']}",
                                  unit="batch", leave=False, dynamic_ncols=True, file=sys.stderr)
                bar["bar"].n = event["step"] - 1
                bar["epoch"] = event["epoch"]
            b = bar["bar"]
            b.update(event["step"] - b.n)
            eta = duration(event["eta_s"]) if event["eta_s"] is not None else "?"
            b.set_postfix_str(f"loss {event['loss']:.3f} acc {event['acc']:.1%} {event['images_per_s']:.0f} img/s "
                              f"run ETA {eta}", refresh=False)
        else:
            if bar["bar"] is not None:
                bar["bar"].close()
                bar["bar"] = None
            tqdm.write(epoch_line(event["row"], event["epochs"]), file=sys.stderr)

    say(f"training {label(args.model)} with the {recipe.name} recipe ({plural(recipe.epochs, 'epoch')}) into {out}",
        file=sys.stderr)
    result = fit(args.model, recipe, dataset, out, device=args.device, seed=args.seed, resume=args.resume,
                 progress=progress, should_stop=should_stop, probe=GradientProbe)
    if bar["bar"] is not None:
        bar["bar"].close()
    if result["state"] == "stopped":
        launcher = ("python -m cifarnets" if os.environ.get("WORLD_SIZE", "1") == "1"
                    else f"torchrun --nproc_per_node={os.environ.get('LOCAL_WORLD_SIZE', 'N')} -m cifarnets")
        say(f"stopped at epoch {result['epoch'] + 1}, step {result['step']}; the state is saved. Continue with:\n"
            f"  {launcher} train --model {args.model} --recipe {recipe.name} --out {out} --resume"
            + (f" --data {args.data}" if args.data else ""), file=sys.stderr)
    else:
        metrics = CheckpointRecord.read(out).config["metrics"] if main else {}  # the last epoch's, as the app answers
        say(f"finished: test accuracy {metrics.get('test_acc', float('nan')):.2%}, "
            f"{answering.views_in_words(metrics.get('views', answering.VIEWS))} "
            f"({metrics.get('single_view', {}).get('test_acc', float('nan')):.2%} single view); checkpoint in {out}",
            file=sys.stderr)
    return 0


# ---------------------------------------------------------------- evaluate

def cmd_evaluate(args) -> int:
    from .answering import split_batch
    from .device import machine_name, pick
    from .training.evaluation import evaluate

    device = pick(args.device)
    if not (args.checkpoint or args.all or args.network):
        raise UsageError("give --checkpoint FOLDER, --all or --network SOURCE")
    if args.write and (args.hub or str(args.checkpoint or "").startswith("hf://")):
        raise UsageError("--write updates local checkpoint folders, not the Hugging Face cache")
    if args.hub and not args.all:
        raise UsageError("--hub goes with --all; for one Hub repository use --checkpoint hf://OWNER/NAME")
    folders = (({key: Path(args.checkpoints) / key for key in KEYS} | hub.cli_overrides(args.hub)) if args.all
               else {None: hub.checkpoint_folder(args.checkpoint)} if args.checkpoint else {})
    extra = yours.entries(args.network, device)
    dataset = sources.load(args.data, verbose=not args.json)
    test = loader.DeviceLoader(dataset.test, split_batch(device), device, train=False)
    results, failures = {}, {}
    for key, folder in folders.items():
        try:
            model, config = ckpt.load_checkpoint(folder, device, expected_key=key)
            if config["classes"] != dataset.classes:
                raise ckpt.CheckpointError(f"{folder} was trained on classes {config['classes']}, "
                                           f"but the data has {dataset.classes}")
        except ckpt.CheckpointError as e:
            failures[key or str(folder)] = str(e)
            continue
        metrics = evaluate(model, test, dataset.classes)
        results[config["model"] if key is None else key] = metrics
        if args.write:  # the data it was measured on goes with the numbers
            provenance = dataset.provenance() | {"classes": None, "machine": machine_name(device)}
            CheckpointRecord.read(folder).write_metrics(metrics, provenance)
    for name, entry in extra.items():  # beside the four, under the name it was given
        if entry.classes != dataset.classes:
            failures[name] = f"answers in the classes {entry.classes}, but the data has {dataset.classes}"
            continue
        results[name] = evaluate(entry.model, test, dataset.classes)
    if args.json:
        print(json.dumps(results | {k: {"error": v} for k, v in failures.items()}, indent=2))
    else:
        for key, m in results.items():
            name = label(key) if key in KEYS else key  # --network: the name it was given
            print(f"{name:<10} test accuracy {m['test_acc']:.2%}  loss {m['test_loss']:.4f}  (n={m['n']}; "
                  f"{answering.views_in_words(m['views'])}, in {m['precision']}; "
                  f"{m['single_view']['test_acc']:.2%} single view)")
            print("  " + "  ".join(f"{c} {a:.1%}" for c, a in m["per_class"].items()))
        for key, reason in failures.items():
            print(f"{label(key) if key in KEYS else key:<10} unavailable: {reason}")
    return 0 if results and not failures else 1


# ---------------------------------------------------------------- predict

def cmd_predict(args) -> int:
    from .device import pick
    from .predict import predict_files, uncalibrated

    entries = ckpt.discover(args.checkpoints, pick(args.device), overrides=hub.cli_overrides(args.hub))
    entries |= yours.entries(args.network, pick(args.device))
    if not any(e.ok for e in entries.values()):
        raise ckpt.CheckpointError("no network could be loaded:\n  " +
                                   "\n  ".join(f"{e.label}: {e.reason}" for e in entries.values()))
    results = predict_files(args.files, entries, stress.change(args.corrupt, args.attack, args.against, entries))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        loaded = [k for k, e in entries.items() if e.ok]
        width = max(len(r["file"]) for r in results)
        rows = {r["file"]: [f"{p['label']} {p['prob']:.0%}" + (" unfamiliar" if p["unfamiliar"]["flag"] else "")
                            for p in (r["predictions"][k] for k in loaded)] for r in results if "error" not in r}
        cell = max([22] + [len(c) for cells in rows.values() for c in cells])
        print(f"{'file':<{width}}  " + "  ".join(f"{entries[k].label:<{cell}}" for k in loaded))
        for r in results:
            if "error" in r:
                print(f"{r['file']:<{width}}  error: {r['error']}")
            else:
                print(f"{r['file']:<{width}}  " + "  ".join(f"{c:<{cell}}" for c in rows[r["file"]]))
        if any(p["unfamiliar"]["flag"] for r in results for p in r.get("predictions", {}).values()):
            print("unfamiliar: the network finds the input unlike its training images; its answer is a guess")
    for e in entries.values():  # with --json too: a program reading stdout still shows people why
        if not e.ok:
            print(f"{e.label} unavailable: {e.reason}", file=sys.stderr)
    for key, why in uncalibrated(entries).items():
        print(f"{entries[key].label}: no unfamiliarity check, {why}", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0
