"""python -m cifarnets bench: our training pipeline against the textbook one, inference latency, cold start.

Per network, both pipelines train the same model with the same batch size, optimizer, device and
thread count, for the same number of optimizer steps after a warm-up. They take turns in rounds
inside one process (ours first in even rounds, the textbook first in odd ones), so machine noise
(another job, clock changes, caches) hits both and cancels out of the ratio.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch

from ..answering import VIEWS, split_batch
from ..cliargs import add_checkpoints_arg
from ..data import loader, sources
from ..device import machine_name, pick, training_precision
from ..errors import UsageError
from ..models import KEYS, build, label
from ..paths import data_env
from ..training import recipes
from ..training.step import CHANNELS_LAST, Objective, make_optimizer, place, train_step
from ..training.threads import training_threads
from . import memory
from .compute import cpu_seconds, gflop_per_image, peak_gflop_s
from .latency import cold_start_s, inference_ms, networks, split_ms, views_ms
from .textbook import Textbook

WARMUP_STEPS = 3  # per pipeline, untimed: allocator, oneDNN kernel choice, worker start
ROUNDS = 3
GENERATED = 10_240  # images made up when there is no data set: speed depends on their size, not content
# The speed-up over the textbook pipeline each network must reach (issue 6, on the 2-core CPU)
MIN_SPEEDUP = {"cnn": 2.0, "resnet": 1.5, "densenet": 1.5, "se_resnet": 1.5}


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="training speed against the textbook pipeline, inference latency, cold start",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    b.add_argument("--model", default="all", choices=["all", *KEYS])
    b.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    b.add_argument("--steps", type=int, default=30,
                   help=f"timed optimizer steps per pipeline and network after warm-up, in {ROUNDS} rounds "
                        "(default 30)")
    b.add_argument("--batch-size", type=int, help="default: the modern recipe's")
    b.add_argument("--threads", type=int, help="compute threads for both pipelines (default: what training "
                                               "would take: the idle cores, see cifarnets/training/threads.py)")
    b.add_argument("--data", help="measure on this data set (default: $CIFARNETS_DATA, else ./data, "
                                  "else generated images of CIFAR's size)")
    add_checkpoints_arg(b, "trained networks for the latency figures (fresh ones where missing)")
    b.add_argument("--cold-starts", type=int, default=3, help="fresh processes timed for the cold start; "
                                                               "the median counts (default 3)")
    b.add_argument("--memory", action="store_true",
                   help="only the decoder's memory: predict's peak on small files of 64 million pixels, against "
                        "64x64 ones, locally and in public mode (perf/memory.py)")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    if args.memory:
        result = memory.measure()
        print(json.dumps(result, indent=2) if args.json else memory.table(result))
        return 0
    if min(args.steps, args.batch_size or 1, args.threads or 1, args.cold_starts) < 1:
        raise UsageError("--steps, --batch-size, --threads and --cold-starts must be at least 1")
    dev = pick(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as fit() sets it, for both pipelines
    with training_threads(dev):  # fit()'s thread count, for both pipelines alike
        if args.threads:
            torch.set_num_threads(args.threads)
        result = measure(args, dev)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


def measure(args, dev: torch.device) -> dict:
    split, classes, source = bench_data(args.data)
    keys = KEYS if args.model == "all" else (args.model,)
    # bf16's peak only where bf16 is native: emulated, one product takes minutes and trains nothing
    peak = peak_gflop_s(dev, ("fp32", "bf16") if training_precision(dev) == "bf16" else ("fp32",))
    result: dict = {}
    for key in keys:
        recipe = recipes.get("modern", key, batch_size=args.batch_size)
        wall, cpu = race(key, split, classes, recipe, dev, args.steps, ROUNDS)
        result[key] = m = figures(args.steps * recipe.batch_size, wall, cpu, *gflop_per_image(key, classes),
                                  peak, per_cpu=dev.type == "cpu", precision=training_precision(dev))
        if not args.json:
            print(f"{label(key)}: ours {m['ours_img_s']:.0f} img/s, textbook {m['reference_img_s']:.0f} img/s, "
                  f"x{m['ratio']:.2f}", file=sys.stderr)
    entries, models_from = networks(args.checkpoints, dev)
    result |= {"infer_ms_all4": round(inference_ms(entries), 2), "views_ms_per_image_all4": views_ms(entries),
               "split_ms_per_image": split_ms(entries, keys), "split_batch": split_batch(dev),
               "cold_start_s": round(cold_start_s(entries, args.device, args.cold_starts), 2),
               "device": machine_name(dev), "precision": training_precision(dev), "threads": torch.get_num_threads(),
               "batch_size": recipe.batch_size,
               "steps": args.steps, "rounds": ROUNDS, "data": source, "models_from": models_from,
               ("peak_gflop_per_cpu_s" if dev.type == "cpu" else "peak_gflop_s"): peak,
               "loadavg_1m": round(os.getloadavg()[0], 2)}
    return result


def figures(images: int, wall: dict[str, float], cpu: dict[str, float], gflop_fwd: float, gflop: float,
            peak: dict[str, float], per_cpu: bool, precision: str) -> dict:
    """One network's line: wall-clock speeds and their ratio; on the CPU also the cost, images per
    CPU-second, which the other processes of a shared machine do not move; and how much of the
    matrix-product peak in the precision training actually computes in (bf16 where it is native, else
    fp32) ours turns into training arithmetic, on the same clock as the peak."""
    ours, ref = images / wall["ours"], images / wall["textbook"]
    m = {"ours_img_s": round(ours, 1), "reference_img_s": round(ref, 1), "ratio": round(ours / ref, 2),
         "gflop_fwd_per_img": round(gflop_fwd, 4), "gflop_per_img": round(gflop, 4)}
    if per_cpu:
        ours_cpu, ref_cpu = images / cpu["ours"], images / cpu["textbook"]
        m |= {"ours_img_per_cpu_s": round(ours_cpu, 1), "reference_img_per_cpu_s": round(ref_cpu, 1),
              "cpu_ratio": round(ours_cpu / ref_cpu, 2), "ours_gflop_per_cpu_s": round(ours_cpu * gflop, 1)}
    else:
        m["ours_gflop_s"] = round(ours * gflop, 1)
    m["ours_pct_of_peak"] = round(100 * m["ours_gflop_per_cpu_s" if per_cpu else "ours_gflop_s"] / peak[precision], 1)
    return m


# ---------------------------------------------------------------- data

def bench_data(source: str | None) -> tuple[sources.Split, int, str]:
    """The real training split when there is one, else random images of CIFAR's size."""
    try:
        ds = sources.load(source, download=False)
        return ds.train, len(ds.classes), f"{ds.source} ({len(ds.train)} training images)"
    except sources.DataError:
        if source or data_env():
            raise  # the user named a data set: measuring something else would mislead
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (GENERATED, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (GENERATED,), generator=g)
    return sources.Split(x, y), 10, f"generated: {GENERATED} random 32x32 images (no data set found; see --data)"


# ---------------------------------------------------------------- training throughput

class Ours:
    """The trainer's own path: fit()'s DeviceLoader, place() and train_step()."""

    def __init__(self, key: str, split: sources.Split, num_classes: int, recipe: recipes.Recipe,
                 dev: torch.device) -> None:
        torch.manual_seed(0)
        self.model = place(build(key, num_classes=num_classes), dev).train()
        self.optimizer = make_optimizer(self.model, recipe)
        self.objective = Objective(recipe)
        self.loader = loader.DeviceLoader.for_recipe(recipe, split, dev, channels_last=CHANNELS_LAST)
        self.lr = recipe.lr
        self.batches = self._epochs()

    def _epochs(self):
        epoch = 0
        while True:
            yield from self.loader.batches(epoch)
            epoch += 1

    def run(self, steps: int) -> None:
        for _ in range(steps):
            loss, _ = train_step(self.model, self.optimizer, self.objective, *next(self.batches), self.lr)
        float(loss)  # waits for the device, as fit()'s periodic read-back does

    def close(self) -> None:
        pass


def race(key: str, split: sources.Split, num_classes: int, recipe: recipes.Recipe, dev: torch.device,
         steps: int, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """(wall seconds, CPU seconds) each pipeline spent on `steps` timed steps, taking turns in `rounds`
    rounds. A round's CPU time counts the DataLoader workers too: they idle outside their own rounds."""
    if len(split) < recipe.batch_size:
        raise UsageError(f"the data has {len(split)} training images, fewer than one batch of {recipe.batch_size}")
    pipes = {"ours": Ours(key, split, num_classes, recipe, dev),
             "textbook": Textbook(key, split, num_classes, recipe, dev)}
    try:
        for pipe in pipes.values():
            pipe.run(WARMUP_STEPS)
        wall, cpu = dict.fromkeys(pipes, 0.0), dict.fromkeys(pipes, 0.0)
        chunks = [steps // rounds + (r < steps % rounds) for r in range(rounds)]
        for r, n in enumerate(c for c in chunks if c):
            for name in (list(pipes) if r % 2 == 0 else list(pipes)[::-1]):
                tick, cpu_tick = time.perf_counter(), cpu_seconds()
                pipes[name].run(n)
                wall[name] += time.perf_counter() - tick
                cpu[name] += cpu_seconds() - cpu_tick
        return wall, cpu
    finally:
        for pipe in pipes.values():
            pipe.close()


# ---------------------------------------------------------------- for people

def table(r: dict) -> str:
    keys = [k for k in KEYS if k in r]
    per_cpu = "peak_gflop_per_cpu_s" in r
    peak = r["peak_gflop_per_cpu_s" if per_cpu else "peak_gflop_s"]
    lines = [f"device {r['device']}, training in {r['precision']}, batch {r['batch_size']}, {r['steps']} timed steps "
             f"per pipeline in {r['rounds']} alternating rounds; data: {r['data']}",
             f"{'network':<10} {'ours img/s':>11} {'textbook img/s':>15} {'ratio':>6} {'floor':>6}"
             + (f" {'ours img/CPU-s':>15} {'textbook img/CPU-s':>19} {'ratio':>6}" if per_cpu else "")
             + f" {'GFLOP/img':>10} {'% ' + r['precision'] + ' peak':>12}"]
    for key in keys:
        m = r[key]
        lines.append(f"{label(key):<10} {m['ours_img_s']:>11.0f} {m['reference_img_s']:>15.0f} {m['ratio']:>6.2f} "
                     f"{MIN_SPEEDUP[key]:>6.1f}"
                     + (f" {m['ours_img_per_cpu_s']:>15.0f} {m['reference_img_per_cpu_s']:>19.0f} "
                        f"{m['cpu_ratio']:>6.2f}" if per_cpu else "")
                     + f" {m['gflop_per_img']:>10.3f} {m['ours_pct_of_peak']:>11.1f}%")
    lines += [f"matrix-product peak{' per CPU-second' if per_cpu else ''}: "
              + ", ".join(f"{name} {gflop:.0f} GFLOP/s" for name, gflop in peak.items()),
              f"inference, one 32x32 image through all four networks: {r['infer_ms_all4']:.1f} ms "
              f"(median; models: {', '.join(f'{k} {v}' for k, v in r['models_from'].items())})",
              "an answer of n views (the image, its mirror, and the pair shifted a pixel diagonally; the app uses "
              f"{VIEWS}), ms per image for all four: "
              + ", ".join(f"{n} views {ms:.3f}" for n, ms in r["views_ms_per_image_all4"].items()),
              "answering a whole split as training evaluates it, ms per image for "
              f"{', '.join(label(k) for k in keys)}, by images per forward ({r['split_batch']} in use): "
              + ", ".join(f"{size} {ms:.3f}" for size, ms in r["split_ms_per_image"].items()),
              f"cold start, fresh process to the first prediction of a photo: {r['cold_start_s']:.2f} s (median)",
              f"1-minute load average at the end: {r['loadavg_1m']}"]
    return "\n".join(lines)
