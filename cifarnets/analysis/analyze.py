"""`python -m cifarnets analyze`: every measurement of the Why they differ page that needs data, computed once.

For each of the four networks in --checkpoints, and for our plain ResNet (measured from its
architecture alone until it is trained), it writes <checkpoints>/<key>/analysis.json: cost, gradient
norms at initialisation and on the trained weights, and quality on the test split and on real photos (the
development set, or --photos: per class and the confusions, prepared as uploads are); then
<checkpoints>/analysis.json with the test images the four disagree on most. The page reads these
files, so it opens fast and offline; everything about one image it computes on demand.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .. import CIFAR10_CLASSES
from ..cliargs import measuring_command
from ..data import images, sources
from ..device import machine_name, pick
from ..models import ALL_KEYS, KEYS, build, label
from ..paths import photos_folders
from ..store import checkpoints as ckpt
from ..store.record import CheckpointRecord
from . import analysisfile, cost, quality, se
from .gradients import GradientProbe

GALLERY = 20  # disputed test images kept, as PNGs of about 2-3 KB each
LATENCY_BATCHES = (1, 256)
LATENCY_BUDGET_S = 2.0  # per network and batch size: enough for a stable median on a busy machine


def add_parser(sub) -> None:
    a = measuring_command(sub, "analyze", __doc__,
                          "measure the networks on the test split for the Why they differ page")
    a.add_argument("--only", nargs="+", choices=ALL_KEYS, metavar="KEY",
                   help="measure only these networks (the four's joint file needs all four)")
    a.add_argument("--latency-only", action="store_true",
                   help="time the networks again, together, and update only the latency their files hold "
                        "(no data needed)")
    a.add_argument("--photos", type=Path, nargs="+", metavar="FOLDER",
                   help="real photos of the ten classes, FOLDER/<class>/<picture> (default: $CIFARNETS_PHOTOS, "
                        "else the development set where it is there)")
    a.add_argument("--photos-only", action="store_true",
                   help="measure only the real photos again and update that part of the files (no data needed)")
    a.set_defaults(func=cmd_analyze)


def cmd_analyze(args) -> int:
    device = pick(args.device)
    if args.latency_only:
        found = remeasure_latency(Path(args.checkpoints), device, keys=tuple(args.only or ALL_KEYS))
        if not found:
            print(f"error: no analysis files in {args.checkpoints} to update: run the full analyze first",
                  file=sys.stderr)
            return 1
        for key, ms in found.items():
            print(f"{label(key):<32} " + "  ".join(f"{ms[str(b)] * 1e3:8.2f} ms @{b}" for b in LATENCY_BATCHES))
        return 0
    photos = photo_split(args.photos or photos_folders(), list(CIFAR10_CLASSES))
    if args.photos_only:
        if photos is None:
            print("error: no real photos: give --photos FOLDER or set CIFARNETS_PHOTOS", file=sys.stderr)
            return 1
        found = remeasure_photos(Path(args.checkpoints), device, photos, keys=tuple(args.only or KEYS))
        for key, q in found.items():
            print(f"{label(key):<32} real photos {q['balanced']:.1%} class-balanced ({q['n']} photos)")
        return 0 if found else 1
    dataset = sources.load(args.data, verbose=True)
    results = analyze(Path(args.checkpoints), dataset, device, say=lambda m: print(m, file=sys.stderr),
                      keys=tuple(args.only or ALL_KEYS), photos=photos)
    print(f"{'network':<32} {'test acc':>8} {'ECE':>6} {'MACs':>12} {'ms @1':>7} {'ms @256':>8}")
    for key, r in results.items():
        q, c = r.get("quality") or {}, r["cost"]
        acc = f"{q['accuracy']:.2%}" if q else "-"
        ece = f"{q['ece']:.3f}" if q else "-"
        ms = [c["latency_s"][str(b)] * 1e3 for b in LATENCY_BATCHES]
        print(f"{label(key):<32} {acc:>8} {ece:>6} {c['macs']:>12,} {ms[0]:>7.2f} {ms[1]:>8.1f}")
    return 0


def _load(folder: Path, key: str, device: torch.device,
          classes: list[str]) -> tuple[torch.nn.Module | None, dict | None]:
    """A trained network and its config, or (None, None) when the folder holds no checkpoint of `key`."""
    if not (folder / ckpt.MODEL_FILE).exists():
        return None, None
    model, config = ckpt.load_checkpoint(folder, device, expected_key=key)
    if config["classes"] != classes:
        raise ckpt.CheckpointError(f"{folder} was trained on classes {config.get('classes')}, "
                                   f"but the data has {classes}")
    return model, config


def analyze(root: Path, dataset: sources.Dataset, device: torch.device, say=lambda m: None,
            latency_batches: tuple[int, ...] = LATENCY_BATCHES,
            keys: tuple[str, ...] = ALL_KEYS, photos: PhotoSplit | None = None) -> dict[str, dict]:
    """Measure the networks `keys`, write their analysis files, and return {key: record}."""
    probe = GradientProbe(dataset.train, device)
    results, probs, timed = {}, {}, {}
    for key in keys:
        folder = root / key
        # Our plain ResNet is measured even untrained: its cost and initial gradients need no training.
        if key in KEYS and not folder.is_dir():
            say(f"{label(key)}: no checkpoint folder {folder}; skipped")
            continue
        tick = time.perf_counter()
        try:
            model, config = _load(folder, key, device, dataset.classes)
        except ckpt.CheckpointError as e:
            say(f"{label(key)}: {e}; skipped")
            continue
        trained = CheckpointRecord(folder, config) if config else None
        record, p, timed[key] = measure(key, model, trained, dataset, device, probe, photos)
        record["cost"]["checkpoint_bytes"] = cost.checkpoint_bytes(folder)
        results[key] = record
        if p is not None and key in KEYS:
            probs[key] = p
        say(f"{label(key)}: measured in {time.perf_counter() - tick:.0f}s")
    # Latency last, every network timed together (see cost.latencies), then each file written whole.
    for key, latency in _latencies(timed, latency_batches).items():
        results[key]["cost"] |= {"latency_s": latency, "latency_together": True}
        analysisfile.write(root / key, results[key])
        say(f"{label(key)} -> {root / key / analysisfile.ANALYSIS_FILE}")
    if len(probs) >= 2 and set(keys) >= set(KEYS):  # disagreement needs two networks; --only leaves it be
        analysisfile.write(root, joint(probs, dataset, results))
        say(f"where the {len(probs)} networks disagree -> {root / analysisfile.ANALYSIS_FILE}")
    return results


def _latencies(models: dict[str, torch.nn.Module], batches: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """{key: {batch: median seconds}}, all the models timed together at each batch size."""
    out: dict[str, dict[str, float]] = {k: {} for k in models}
    for b in batches:
        for key, seconds in cost.latencies(models, b, budget_s=LATENCY_BUDGET_S).items():
            out[key][str(b)] = round(seconds, 6)
    return out


def remeasure_latency(root: Path, device: torch.device, keys: tuple[str, ...] = ALL_KEYS,
                      batches: tuple[int, ...] = LATENCY_BATCHES) -> dict[str, dict[str, float]]:
    """Time again, together, every network of `keys` whose analysis file exists, and update only its latency
    and the machine it names. The architecture and the device set latency, so no data is needed."""
    models, records = {}, {}
    for key in keys:
        record = analysisfile.read(root / key)
        if not record:
            continue
        try:
            model, _ = _load(root / key, key, device, list(CIFAR10_CLASSES))
        except ckpt.CheckpointError:
            continue  # a checkpoint that no longer loads keeps its old record; the page says it is stale
        models[key], records[key] = model or build(key).to(device), record
    found = _latencies(models, batches)
    for key, latency in found.items():
        records[key]["cost"] |= {"latency_s": latency, "latency_together": True}
        records[key]["device"] = machine_name(device)
        analysisfile.write(root / key, records[key])
    return found


def measure(key: str, model: torch.nn.Module | None, trained: CheckpointRecord | None, dataset: sources.Dataset,
            device: torch.device, probe: GradientProbe,
            photos: PhotoSplit | None = None) -> tuple[dict, torch.Tensor | None, torch.nn.Module]:
    """One network's record without its latency, its test-split probabilities when it is trained, and the
    model to time (the trained one, else the fresh one: latency depends on the architecture alone). `trained`:
    the checkpoint's record, None for an untrained network."""
    # The initial weights of the run itself: fit() seeds, then builds, exactly so.
    torch.manual_seed(trained.config.get("seed", 0) if trained else 0)
    fresh = build(key, num_classes=len(dataset.classes)).to(device)
    shape_model = model or fresh
    record = {"model": key, "label": label(key), "checkpoint": trained.test_split_key.as_dict() if trained else None,
              "device": machine_name(device),
              "data": {k: v for k, v in dataset.provenance().items() if k != "classes"},
              "cost": cost.static_cost(shape_model),
              "gradients": {"images": len(probe.y), "init": probe(fresh)}}
    if model is None:
        return record, None, shape_model
    record["gradients"]["trained"] = probe(model)
    p = quality.test_probs(model, dataset.test)
    record["quality"] = quality.measure(p, dataset.test.y)
    if photos is not None:
        record["quality_photos"] = photo_quality(model, photos)
    if se.has_se(model):
        record["se_class_means"] = se.class_means(model, dataset.test, len(dataset.classes))
    return record, p, shape_model


class PhotoSplit(NamedTuple):
    """Real photos prepared as uploads are (images.to_array), as a split the quality measures take."""
    split: sources.Split
    folders: list[str]  # the folders' names: a stored file never records a path of the machine


def photo_split(folders: list[Path], classes: list[str]) -> PhotoSplit | None:
    if not folders:
        return None
    pictures, labels, _ = images.read_photos(folders, classes)
    x = torch.from_numpy(np.stack([images.to_array(p) for p in pictures])).permute(0, 3, 1, 2).contiguous()
    return PhotoSplit(sources.Split(x, torch.from_numpy(labels)), [Path(f).name for f in folders])


def photo_quality(model: torch.nn.Module, photos: PhotoSplit) -> dict:
    """quality.measure on the photos, with each class's count and the class-balanced accuracy (the classes are
    uneven: 3 deer, 108 cars), and how they were prepared."""
    q = quality.measure(quality.test_probs(model, photos.split), photos.split.y)
    counts = torch.bincount(photos.split.y, minlength=len(q["per_class"])).tolist()
    present = [a for a, n in zip(q["per_class"], counts, strict=True) if n]
    return q | {"per_class_n": counts, "balanced": round(sum(present) / len(present), 4),
                "folders": photos.folders, "preparation": images.PREPARATION}


def remeasure_photos(root: Path, device: torch.device, photos: PhotoSplit,
                     keys: tuple[str, ...] = KEYS) -> dict[str, dict]:
    """Measure the real photos again for every network of `keys` whose analysis file exists and is of the
    checkpoint now in its folder, and update only that part of the file."""
    found = {}
    for key in keys:
        record = analysisfile.read(root / key)
        try:
            model, config = _load(root / key, key, device, list(CIFAR10_CLASSES))
        except ckpt.CheckpointError:
            continue  # a checkpoint that no longer loads keeps its old record; the page says it is stale
        if not record or model is None or CheckpointRecord(root / key, config).stale(record.get("checkpoint")):
            continue
        record["quality_photos"] = found[key] = photo_quality(model, photos)
        analysisfile.write(root / key, record)
    return found


def joint(probs: dict[str, torch.Tensor], dataset: sources.Dataset, results: dict[str, dict]) -> dict:
    gallery = quality.disagreement(probs, dataset.test.y, GALLERY)
    for item in gallery:
        item["png"] = analysisfile.png_b64(dataset.test.x[item["index"]].cpu().permute(1, 2, 0).numpy())
    return {"classes": dataset.classes, "networks": {k: results[k]["checkpoint"] for k in probs},
            "n_test": len(dataset.test), "agreement": quality.agreement(probs, dataset.test.y), "disagreement": gallery}
