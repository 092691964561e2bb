"""`python -m cifarnets calibrate`: which score tells CIFAR-10 from unfamiliar inputs best, and where to cut.

For every network in --checkpoints, on fixed seeded parts of the data:
  training split: 5,000 images fit the class statistics, 2,000 others give each layer's scale;
  test split: 2,000 images set the threshold (the RATE quantile of their scores) and choose the
      method, 2,000 others are held out and judge it;
  unfamiliar inputs (inputs.generate): seed 0 to choose the method, seed 1 to judge it.
Every method is scored; the one with the highest mean AUROC over the networks on the choosing half is
used for all of them, so their AUROCs compare like with like. --write stores each network's result in
its checkpoint folder (calibration.py says what goes where); rerun it after retraining.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..answering import VIEWS, split_batch
from ..cliargs import measuring_command
from ..data import sources
from ..data.loader import batch, normalize
from ..device import machine_name, pick
from ..errors import UsageError
from ..models import KEYS, label
from ..store import checkpoints as ckpt
from . import calibration, inputs
from .scores import METHODS, Gaussians, Views, auroc, fit, score, views

SEED = 0


class Sizes(NamedTuple):
    fit: int = 5000  # training images that fit the statistics
    scale: int = 2000  # other training images that scale each layer's distances
    choose: int = 2000  # test images that set the threshold and choose the method
    held_out: int = 2000  # other test images that judge them


SIZES = Sizes()


def add_parser(sub) -> None:
    c = measuring_command(sub, "calibrate", __doc__,
                          "measure when each network meets something unfamiliar, and the threshold")
    c.add_argument("--rate", type=float, default=calibration.RATE,
                   help=f"share of held-out test images to keep under the threshold (default {calibration.RATE})")
    c.add_argument("--write", action="store_true", help="store the result in each checkpoint folder")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> int:
    if not 0.5 <= args.rate < 1:
        raise UsageError("--rate is the share of familiar images kept under the threshold: between 0.5 and 1")
    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    device = pick(args.device)
    dataset = sources.load(args.data, verbose=not args.json)
    found = {}
    for key in KEYS:
        folder = Path(args.checkpoints) / key
        try:
            found[key] = Network(*ckpt.load_checkpoint(folder, device, expected_key=key), folder)
        except ckpt.CheckpointError as e:
            say(f"{label(key)}: {e}; skipped")
    if not found:
        raise ckpt.CheckpointError(f"no network could be loaded from {args.checkpoints}")
    results = calibrate(found, dataset, args.rate, say)
    if args.write:
        for key, (record, fitted) in results.items():
            calibration.write(Path(args.checkpoints) / key, record, fitted)
            say(f"{label(key)}: written to {Path(args.checkpoints) / key}")
    records = {k: r for k, (r, _) in results.items()}
    print(json.dumps(records, indent=2) if args.json else table(records))
    return 0


def parts(dataset: sources.Dataset, sizes: Sizes = SIZES) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The seeded, disjoint parts of the data each step uses: (uint8 images, labels)."""
    g = torch.Generator().manual_seed(SEED)
    train, test = torch.randperm(len(dataset.train), generator=g), torch.randperm(len(dataset.test), generator=g)
    fit_, scale, choose, held_out = sizes
    if len(train) < fit_ + scale or len(test) < choose + held_out:
        raise sources.DataError(f"calibration needs {fit_ + scale:,} training and {choose + held_out:,} test images; "
                             f"the data has {len(train):,} and {len(test):,}")
    pick_ = {"fit": (dataset.train, train[:fit_]), "scale": (dataset.train, train[fit_:fit_ + scale]),
             "choose": (dataset.test, test[:choose]), "held_out": (dataset.test, test[choose:choose + held_out])}
    return {name: (split.x[i], split.y[i]) for name, (split, i) in pick_.items()}


def held_out_images(dataset: sources.Dataset, sizes: Sizes = SIZES) -> torch.Tensor:
    """The held-out test images as uint8 (N, 3, 32, 32): what the tests check the stored threshold on."""
    return parts(dataset, sizes)["held_out"][0]


def views_in_batches(model: torch.nn.Module, x: torch.Tensor) -> Views:
    """scores.views() of a large (N, 3, 32, 32) tensor, with the views every answer is made from, in batches."""
    device = next(model.parameters()).device
    size = split_batch(device)
    return Views.cat([views(model, x[i:i + size].to(device)) for i in range(0, len(x), size)])


class Network(NamedTuple):
    model: torch.nn.Module
    config: dict
    folder: Path


def calibrate(networks: dict[str, Network], dataset: sources.Dataset, rate: float = calibration.RATE,
              say=lambda m: None, sizes: Sizes = SIZES,
              counts: dict[str, int] | None = None) -> dict[str, tuple[dict, dict[str, Gaussians]]]:
    """{key: (record for config.json, fitted statistics)} for every network given; `counts`: how many unfamiliar
    inputs of each kind (default inputs.COUNTS)."""
    tick = time.perf_counter()
    p = parts(dataset, sizes)
    strange = {seed: inputs.generate(seed, counts) for seed in (0, 1)}
    say(f"{sum(len(k) for _, k in strange.values()):,} unfamiliar inputs made in {time.perf_counter() - tick:.0f}s")
    measured = {}
    for key, (model, config, _) in networks.items():
        tick = time.perf_counter()
        v = {name: views_in_batches(model, normalize(x)) for name, (x, _) in p.items()}
        v |= {f"strange{seed}": views_in_batches(model, batch(list(pixels))) for seed, (pixels, _) in strange.items()}
        fitted = fit(v["fit"], p["fit"][1], v["scale"], len(config["classes"]))
        measured[key] = (fitted, {m: {n: score(m, x, fitted).cpu().numpy() for n, x in v.items() if n not in
                                             ("fit", "scale")} for m in METHODS})
        say(f"{label(key)}: scored in {time.perf_counter() - tick:.0f}s")
    choosing = {m: float(np.mean([auroc(s[m]["choose"], s[m]["strange0"]) for _, s in measured.values()]))
                for m in METHODS}
    method = max(choosing, key=choosing.get)
    say(f"method: {METHODS[method]} (mean AUROC on the choosing half: "
        + ", ".join(f"{m} {a:.3f}" for m, a in choosing.items()) + ")")
    machine = machine_name(next(next(iter(networks.values())).model.parameters()).device)
    return {key: (record(method, rate, s, strange[1][1], dataset, machine, sizes,
                         calibration.sha256(networks[key].folder / ckpt.MODEL_FILE)), fitted)
            for key, (fitted, s) in measured.items()}


def record(method: str, rate: float, s: dict[str, dict[str, np.ndarray]], kinds: list[str], dataset: sources.Dataset,
           machine: str, sizes: Sizes, weights_sha256: str) -> dict:
    """What config.json keeps: the choice, the threshold, and what they were measured on."""
    chosen = s[method]
    # The smallest threshold that keeps `rate` of the choosing half at or under it.
    threshold = float(np.quantile(chosen["choose"], rate, method="higher"))
    kinds_ = np.array(kinds)
    over = chosen["strange1"] > threshold
    return {
        "method": method, "method_name": METHODS[method], "threshold": threshold, "rate": rate, "views": VIEWS,
        "held_out_rate": float((chosen["held_out"] <= threshold).mean()),
        "auroc": {m: round(auroc(x["held_out"], x["strange1"]), 4) for m, x in s.items()},
        "auroc_choosing": {m: round(auroc(x["choose"], x["strange0"]), 4) for m, x in s.items()},
        "flagged": {k: round(float(over[kinds_ == k].mean()), 4) for k in dict.fromkeys(kinds)},
        "n": sizes._asdict() | {"unfamiliar": len(kinds)},
        "seed": SEED, "data": {k: v for k, v in dataset.provenance().items() if k != "classes"},
        "weights_sha256": weights_sha256, "machine": machine,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def table(records: dict[str, dict]) -> str:
    first = next(iter(records.values()))
    lines = [f"AUROC on held-out test images against fresh unfamiliar inputs (chosen: {first['method_name']}, "
             f"threshold at {first['rate']:.0%} of the test split; {first['machine']})",
             f"{'network':<10} " + " ".join(f"{m:>12}" for m in METHODS) + f" {'threshold':>10} {'held out':>9}"]
    for key, r in records.items():
        lines.append(f"{label(key):<10} " + " ".join(f"{r['auroc'][m]:>12.3f}" for m in METHODS)
                     + f" {r['threshold']:>10.4g} {r['held_out_rate']:>9.1%}")
    kinds = list(first["flagged"])
    lines += ["", "share of fresh unfamiliar inputs over the threshold",
              f"{'network':<10} " + " ".join(f"{k:>13}" for k in kinds)]
    for key, r in records.items():
        lines.append(f"{label(key):<10} " + " ".join(f"{r['flagged'][k]:>13.0%}" for k in kinds))
    return "\n".join(lines)
