"""How long a user waits for an answer: one image through all four networks, and a cold start.

Both use the shipped checkpoints where there are some and fresh networks elsewhere (same
architecture, same arithmetic, so the same speed); `networks()` says which.
"""

from __future__ import annotations

import copy
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

from .. import CIFAR10_CLASSES, answering, predict
from ..data.loader import batch
from ..models import build
from ..store import checkpoints as ckpt
from ..training.step import CHANNELS_LAST, place


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
    x = batch([np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)])
    return _median_ms(lambda: predict.probabilities(entries, x), reps)


@torch.no_grad()
def views_ms(entries: dict[str, ckpt.Entry], batch: int = 64, reps: int = 10) -> dict[int, float]:
    """{views: median milliseconds per image for all four networks to answer}, for each number of views
    an answer may average (answering.VIEWS is the one in use), on a batch as `evaluate` answers."""
    x = torch.randn(batch, 3, 32, 32, device=next(next(iter(entries.values())).model.parameters()).device)
    models = [e.model for e in entries.values() if e.ok]
    return {n: round(_median_ms(lambda n=n: [answering.answer(m, x, n) for m in models], reps) / batch, 3)
            for n in (1, 2, 4, answering.MAX_VIEWS)}


@torch.no_grad()
def split_ms(entries: dict[str, ckpt.Entry], keys: tuple[str, ...], reps: int = 3) -> dict[int, float]:
    """{images per forward: milliseconds per image for the networks `keys` to answer a whole split in batches
    that size}, as fit() evaluates after every epoch: answering.split_batch's size for this device beside
    the 1,000 every device took before."""
    dev = next(entries[keys[0]].model.parameters()).device
    models = [place(copy.deepcopy(entries[key].model), dev) for key in keys]  # in fit()'s memory format
    sizes = sorted({answering.split_batch(dev), 1000})
    x = torch.randn(max(sizes), 3, 32, 32, device=dev).contiguous(
        memory_format=torch.channels_last if CHANNELS_LAST else torch.contiguous_format)
    return {size: round(_median_ms(lambda size=size: [answering.answer(m, x[:size]) for m in models], reps) / size, 3)
            for size in sizes}


def _median_ms(work, reps: int) -> float:
    for _ in range(min(reps, 10)):
        work()
    times = []
    for _ in range(reps):
        tick = time.perf_counter()
        work()
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
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
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
