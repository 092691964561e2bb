"""python -m cifarnets bench: our training pipeline against the textbook one, inference latency, cold start.

Per network, both pipelines train the same model with the same batch size, optimizer, device and
thread count, for the same number of optimizer steps after a warm-up. They take turns in rounds
inside one process (ours first in even rounds, the textbook first in odd ones), so machine noise
(another job, clock changes, caches) hits both and cancels out of the ratio.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import CIFAR10_CLASSES, data, predict, recipes
from . import checkpoints as ckpt
from .device import describe, pick
from .models import KEYS, build, label
from .textbook import Textbook
from .threads import training_threads
from .train import CHANNELS_LAST, make_optimizer, place, train_step

WARMUP_STEPS = 3  # per pipeline, untimed: allocator, oneDNN kernel choice, worker start
ROUNDS = 3
GENERATED = 10_240  # images made up when there is no data set: speed depends on their size, not content
FLOORS = {"cnn": 2.0, "resnet": 1.5, "densenet": 1.5, "se_resnet": 1.5}  # issue 6, on the 2-core CPU


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="training speed against the textbook pipeline, inference latency, cold start",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    b.add_argument("--model", default="all", choices=["all", *KEYS])
    b.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    b.add_argument("--steps", type=int, default=30,
                   help=f"timed optimizer steps per pipeline and network after warm-up, in {ROUNDS} rounds "
                        "(default 30)")
    b.add_argument("--batch-size", type=int, help="default: the modern recipe's (256)")
    b.add_argument("--threads", type=int, help="compute threads for both pipelines (default: what training "
                                               "would take: the idle cores, see cifarnets/threads.py)")
    b.add_argument("--data", help="measure on this data set (default: $CIFARNETS_DATA, else ./data, "
                                  "else generated images of CIFAR's size)")
    b.add_argument("--checkpoints", default=ckpt.DEFAULT_DIR,
                   help="trained networks for the latency figures (default checkpoints; fresh ones where missing)")
    b.add_argument("--cold-starts", type=int, default=3, help="fresh processes timed for the cold start; "
                                                               "the median counts (default 3)")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    if min(args.steps, args.batch_size or 1, args.threads or 1, args.cold_starts) < 1:
        raise ValueError("--steps, --batch-size, --threads and --cold-starts must be at least 1")
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
    peak = peak_gflop_s(dev)
    result: dict = {}
    for key in keys:
        recipe = recipes.get("modern", key, batch_size=args.batch_size)
        seconds = race(key, split, classes, recipe, dev, args.steps, ROUNDS)
        images = args.steps * recipe.batch_size
        ours, ref = images / seconds["ours"], images / seconds["textbook"]
        fwd, train = gflop_per_image(key, classes)
        result[key] = {"ours_img_s": round(ours, 1), "reference_img_s": round(ref, 1), "ratio": round(ours / ref, 2),
                       "gflop_fwd_per_img": round(fwd, 4), "gflop_per_img": round(train, 4),
                       "ours_gflop_s": round(ours * train, 1), "reference_gflop_s": round(ref * train, 1)}
        if not args.json:
            print(f"{label(key)}: ours {ours:.0f} img/s, textbook {ref:.0f} img/s, x{ours / ref:.2f}", file=sys.stderr)
    entries, models_from = networks(args.checkpoints, dev)
    result |= {"infer_ms_all4": round(inference_ms(entries), 2),
               "cold_start_s": round(cold_start_s(entries, args.device, args.cold_starts), 2),
               "device": describe(dev), "threads": torch.get_num_threads(), "batch_size": recipe.batch_size,
               "steps": args.steps, "rounds": ROUNDS, "data": source, "models_from": models_from,
               "peak_gflop_s": peak, "loadavg_1m": round(os.getloadavg()[0], 2)}
    return result


# ---------------------------------------------------------------- data

def bench_data(source: str | None) -> tuple[data.Split, int, str]:
    """The real training split when there is one, else random images of CIFAR's size."""
    try:
        ds = data.load(source, download=False)
        return ds.train, len(ds.classes), f"{ds.source} ({len(ds.train)} training images)"
    except data.DataError:
        if source or os.environ.get("CIFARNETS_DATA"):
            raise  # the user named a data set: measuring something else would mislead
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (GENERATED, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (GENERATED,), generator=g)
    return data.Split(x, y), 10, f"generated: {GENERATED} random 32x32 images (no data set found; see --data)"


# ---------------------------------------------------------------- training throughput

class Ours:
    """The trainer's own path: fit()'s DeviceLoader, place() and train_step()."""

    def __init__(self, key: str, split: data.Split, num_classes: int, recipe: recipes.Recipe,
                 dev: torch.device) -> None:
        torch.manual_seed(0)
        self.model = place(build(key, num_classes=num_classes), dev).train()
        self.optimizer = make_optimizer(self.model, recipe)
        self.loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        self.loader = data.DeviceLoader(split, recipe.batch_size, dev, train=True, augment=True,
                                        channels_last=CHANNELS_LAST)
        self.lr = recipe.lr
        self.batches = self._epochs()

    def _epochs(self):
        epoch = 0
        while True:
            yield from self.loader.batches(epoch)
            epoch += 1

    def run(self, steps: int) -> None:
        for _ in range(steps):
            loss, _ = train_step(self.model, self.optimizer, self.loss_fn, *next(self.batches), self.lr)
        float(loss)  # waits for the device, as fit()'s periodic read-back does

    def close(self) -> None:
        pass


def race(key: str, split: data.Split, num_classes: int, recipe: recipes.Recipe, dev: torch.device,
         steps: int, rounds: int) -> dict[str, float]:
    """Seconds each pipeline spent on `steps` timed steps, taking turns in `rounds` rounds."""
    if len(split) < recipe.batch_size:
        raise ValueError(f"the data has {len(split)} training images, fewer than one batch of {recipe.batch_size}")
    pipes = {"ours": Ours(key, split, num_classes, recipe, dev),
             "textbook": Textbook(key, split, num_classes, recipe, dev)}
    try:
        for pipe in pipes.values():
            pipe.run(WARMUP_STEPS)
        seconds = dict.fromkeys(pipes, 0.0)
        chunks = [steps // rounds + (r < steps % rounds) for r in range(rounds)]
        for r, n in enumerate(c for c in chunks if c):
            for name in (list(pipes) if r % 2 == 0 else list(pipes)[::-1]):
                tick = time.perf_counter()
                pipes[name].run(n)
                seconds[name] += time.perf_counter() - tick
        return seconds
    finally:
        for pipe in pipes.values():
            pipe.close()


# ---------------------------------------------------------------- compute and the machine's peak

def gflop_per_image(key: str, num_classes: int) -> tuple[float, float]:
    """(forward, forward+backward) GFLOP per image, counted by PyTorch over the convolutions and
    matrix products (normalisation, activations and pooling add memory traffic, not FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build(key, num_classes=num_classes).train()
    x = torch.randn(2, 3, 32, 32)
    with FlopCounterMode(display=False) as forward:
        out = model(x)
    with FlopCounterMode(display=False) as backward:
        out.sum().backward()
    f, b = forward.get_total_flops() / 2, backward.get_total_flops() / 2
    return f / 1e9, (f + b) / 1e9


def peak_gflop_s(dev: torch.device, n: int = 2048) -> dict[str, float]:
    """What one big matrix product reaches in fp32 and bf16: the most these convolutions could hope for."""
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(n, n, device=dev).to(dtype), torch.randn(n, n, device=dev).to(dtype)
        best = float("inf")
        for _ in range(4):
            tick = time.perf_counter()
            (a @ b).sum().item()
            best = min(best, time.perf_counter() - tick)
        out[str(dtype).removeprefix("torch.").replace("float32", "fp32").replace("bfloat16", "bf16")] = \
            round(2 * n ** 3 / best / 1e9, 1)
    return out


# ---------------------------------------------------------------- using the networks

def networks(folder: str, dev: torch.device) -> tuple[dict[str, ckpt.Entry], dict[str, str]]:
    """All four networks: trained ones from `folder`, fresh ones where there is none."""
    entries = ckpt.discover(folder, dev)
    models_from = {}
    for key, entry in entries.items():
        models_from[key] = "checkpoint" if entry.ok else "fresh"
        if not entry.ok:
            config = {"model": key, "classes": list(CIFAR10_CLASSES)}
            entries[key] = ckpt.Entry(key, entry.path, build(key).to(dev).eval(), config)
    return entries, models_from


def inference_ms(entries: dict[str, ckpt.Entry], reps: int = 50) -> float:
    """Median milliseconds to classify one 32x32 image with all four networks (predict's own path)."""
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = predict.batch([pixels])
    for _ in range(10):
        predict.probabilities(entries, x)
    times = []
    for _ in range(reps):
        tick = time.perf_counter()
        predict.probabilities(entries, x)
        times.append(time.perf_counter() - tick)
    return statistics.median(times) * 1000


def cold_start_s(entries: dict[str, ckpt.Entry], device: str, runs: int = 3) -> float:
    """Median seconds from starting `python -m cifarnets predict photo.jpg` to its answer."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "checkpoints"
        for key, entry in entries.items():
            if entry.path.is_dir() and (entry.path / ckpt.MODEL_FILE).exists():
                shutil.copytree(entry.path, folder / key)
            else:
                ckpt.save_checkpoint(folder / key, entry.model, entry.config, [])
        photo = Path(tmp) / "photo.jpg"
        make_photo(photo)
        cmd = [sys.executable, "-m", "cifarnets", "predict", str(photo), "--checkpoints", str(folder),
               "--device", device, "--json"]
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                         os.environ.get("PYTHONPATH")]))}
        times = []
        for _ in range(runs):
            tick = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            times.append(time.perf_counter() - tick)
            if done.returncode != 0:
                raise RuntimeError(f"predict failed in the cold-start run: {done.stderr.strip()[-300:]}")
            json.loads(done.stdout)
    return statistics.median(times)


def make_photo(path: Path, size: tuple[int, int] = (1024, 768)) -> None:
    """A phone-sized JPEG (smooth gradients plus grain), so decoding and resizing cost what a photo costs."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], axis=-1)
    rgb = rgb + np.random.default_rng(0).integers(-20, 20, rgb.shape)
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(path, quality=90)


# ---------------------------------------------------------------- for people

def table(r: dict) -> str:
    peak, keys = r["peak_gflop_s"], [k for k in KEYS if k in r]
    lines = [f"device {r['device']}, batch {r['batch_size']}, {r['steps']} timed steps per pipeline in "
             f"{r['rounds']} alternating rounds; data: {r['data']}",
             f"{'network':<10} {'ours img/s':>11} {'textbook img/s':>15} {'ratio':>6} {'floor':>6} "
             f"{'GFLOP/img':>10} {'ours GFLOP/s':>13} {'% bf16 peak':>12}"]
    for key in keys:
        m = r[key]
        lines.append(f"{label(key):<10} {m['ours_img_s']:>11.0f} {m['reference_img_s']:>15.0f} {m['ratio']:>6.2f} "
                     f"{FLOORS[key]:>6.1f} {m['gflop_per_img']:>10.3f} {m['ours_gflop_s']:>13.1f} "
                     f"{100 * m['ours_gflop_s'] / peak['bf16']:>11.1f}%")
    lines += [f"matrix-product peak: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s",
              f"inference, one 32x32 image through all four networks: {r['infer_ms_all4']:.1f} ms "
              f"(median; models: {', '.join(f'{k} {v}' for k, v in r['models_from'].items())})",
              f"cold start, fresh process to the first prediction of a photo: {r['cold_start_s']:.2f} s (median)",
              f"1-minute load average at the end: {r['loadavg_1m']}"]
    return "\n".join(lines)
