"""`python -m cifarnets stress`: the Stress test page's test-split measurements, computed once.

On a fixed sample of the test split (--images, drawn with seed 0, the same for every network) it
measures every network in --checkpoints, the four and our plain ResNet, under each corruption of our
reimplementation of CIFAR-10-C at each severity; then, for the four, how often an FGSM perturbation
made against one changes the answer of each (the transfer matrix) on --transfer-images images, and
each network's accuracy under an attack made against itself (robust accuracy). It writes
<checkpoints>/stress.json after each corruption and after the transfer, so a long run stopped half way
keeps what it finished (the page and its text say how many corruptions were measured).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..cliargs import measuring_command
from ..data import sources
from ..device import machine_name, pick
from ..errors import UsageError
from ..models import ALL_KEYS, KEYS, label
from ..store import checkpoints as ckpt
from ..store.record import CheckpointRecord
from . import attacks, corruptions, stressfile

CHUNK = 50  # images per forward: with 10 views each, more overflow a CPU's caches (answering.split_batch)
IMAGES = 100  # default samples: what fits in about half an hour on 2 cores shared with five others
TRANSFER_IMAGES = 200
PARTS = ("corruptions", "transfer")


def add_parser(sub) -> None:
    s = measuring_command(sub, "stress", __doc__,
                          "measure the networks under corruptions and attacks for the Stress test page")
    s.add_argument("--images", type=int, default=IMAGES,
                   help=f"test images for the corruptions (default {IMAGES}; 10000: the whole split)")
    s.add_argument("--transfer-images", type=int, default=TRANSFER_IMAGES,
                   help=f"test images for the transfer matrix (default {TRANSFER_IMAGES}; 0 skips it)")
    s.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: the machine is shared)")
    s.add_argument("--corruptions", nargs="+", choices=corruptions.NAMES, metavar="NAME",
                   help="measure only these corruptions (default all 14): for splitting a long run across processes")
    s.add_argument("--part", choices=PARTS, nargs="+", default=list(PARTS),
                   help="measure only these parts (default both); a part not measured keeps what the file holds")
    s.set_defaults(func=cmd_stress)


def cmd_stress(args) -> int:
    if args.images < 1 or args.transfer_images < 0:
        raise UsageError("--images must be at least 1 and --transfer-images at least 0")
    device = pick(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    dataset = sources.load(args.data, verbose=True)
    record = run(Path(args.checkpoints), dataset, device, args.images, args.transfer_images,
                 say=lambda m: print(m, file=sys.stderr), parts=tuple(args.part),
                 names=tuple(args.corruptions or corruptions.NAMES))
    print(f"{'network':<32} {'clean':>7} {'corrupted':>9} {'drop':>6}")
    for key, n in record["networks"].items():
        mean = mean_accuracy(n)
        print(f"{label(key):<32} {n['clean']:>7.1%} {mean:>9.1%} {n['clean'] - mean:>6.1%}")
    print(f"-> {Path(args.checkpoints) / stressfile.STRESS_FILE}")
    return 0


def sample(n: int, size: int) -> torch.Tensor:
    """The first n of a fixed shuffle of the test split: every run, and every network, sees the same images."""
    if n >= size:
        return torch.arange(size)
    return torch.randperm(size, generator=torch.Generator().manual_seed(0))[:n].sort().values


def accuracy_of(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(accuracy, predicted classes) of the app's answers to uint8 images."""
    device = next(model.parameters()).device
    pred = torch.cat([attacks.answers(model, chunk.to(device)).argmax(1).cpu() for chunk in images.split(CHUNK)])
    return float((pred == labels).float().mean()), pred


def corrupted(images: torch.Tensor, indices: torch.Tensor, name: str, severity: int) -> torch.Tensor:
    """Every image under one corruption; each image's random draws seeded by its place in the test split."""
    pixels = images.cpu().permute(0, 2, 3, 1).numpy()
    out = [corruptions.corrupt(p, name, severity, seed=int(i)) for p, i in zip(pixels, indices, strict=True)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def mean_accuracy(network: dict) -> float:
    """The mean over every corruption and severity measured: CIFAR-10-C's headline number (one minus its error)."""
    rows = [a for accs in network["corruptions"].values() for a in accs]
    return sum(rows) / len(rows)


def load_networks(root: Path, device: torch.device, classes: list[str]) -> dict[str, tuple[torch.nn.Module, str]]:
    """{key: (model, its record's key)} for every network in `root` with a checkpoint trained on these classes."""
    out = {}
    for key in ALL_KEYS:
        folder = root / key
        if not (folder / ckpt.MODEL_FILE).exists():
            continue
        model, config = ckpt.load_checkpoint(folder, device, expected_key=key)
        if config["classes"] == classes:
            out[key] = (model, CheckpointRecord.read(folder).test_split_key.as_dict())
    return out


def run(root: Path, dataset: sources.Dataset, device: torch.device, n_images: int, n_transfer: int,
        say=lambda m: None, parts: tuple[str, ...] = PARTS, names: tuple[str, ...] | None = None) -> dict:
    networks = load_networks(root, device, dataset.classes)
    if not networks:
        raise ckpt.CheckpointError(f"no checkpoint in {root} was trained on this data's classes")
    test = dataset.test
    idx = sample(n_images, len(test))
    images, labels = test.x[idx], test.y[idx]
    record = {"images": len(idx), "of": len(test), "sample": "the first N of a seed-0 shuffle of the test split",
              "data": {k: v for k, v in dataset.provenance().items() if k != "classes"}, "device": machine_name(device),
              "left_out": corruptions.LEFT_OUT, "seconds": {}, "networks": {}}
    if "corruptions" not in parts:  # keep the corruptions the file holds, measure the rest
        old = stressfile.read(root)
        record = (old or record) | {"seconds": (old or {}).get("seconds", {})}
    tick = time.perf_counter()
    for key, (model, fp) in networks.items():
        if "corruptions" not in parts and key in record["networks"]:
            continue
        clean, _ = accuracy_of(model, images, labels)
        record["networks"][key] = {"label": label(key), "checkpoint": fp, "clean": round(clean, 4), "corruptions": {}}
    for name in (names or corruptions.NAMES) if "corruptions" in parts else ():
        for severity in range(1, corruptions.SEVERITIES + 1):
            batch = corrupted(images, idx, name, severity)
            for key, (model, _) in networks.items():
                acc, _ = accuracy_of(model, batch, labels)
                record["networks"][key]["corruptions"].setdefault(name, []).append(round(acc, 4))
        record["seconds"]["corruptions"] = round(time.perf_counter() - tick, 1)
        stressfile.write(root, record)  # after each corruption: a run stopped half way keeps what it measured
        say(f"{corruptions.title(name)}: " + ", ".join(
            f"{label(k)} {mean(record['networks'][k]['corruptions'][name]):.1%}" for k in networks)
            + f" ({time.perf_counter() - tick:.0f}s)")
    four = {k: m for k, (m, _) in networks.items() if k in KEYS}
    if "transfer" in parts and n_transfer and len(four) >= 2:
        tick = time.perf_counter()
        t_idx = sample(n_transfer, len(test))
        record["transfer"] = transfer(four, test.x[t_idx], test.y[t_idx], say)
        record["seconds"]["transfer"] = round(time.perf_counter() - tick, 1)
        stressfile.write(root, record)
    return record


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def transfer(models: dict[str, torch.nn.Module], images: torch.Tensor, labels: torch.Tensor,
             say=lambda m: None, budgets=attacks.TRANSFER_EPS) -> dict:
    """FGSM against each network (its own clean answer as the label attacked) at each budget, handed to every
    network: {"fooled": {source: {eps: {target: share whose answer changed}}}, "robust": {network: {eps: accuracy
    under the attack made against itself}}}."""
    clean = {k: accuracy_of(m, images, labels)[1] for k, m in models.items()}
    fooled: dict = {}
    robust: dict = {k: {} for k in models}
    for source, model in models.items():
        device = next(model.parameters()).device
        chunks = [attacks.fgsm_ladder(model, x.to(device), y.to(device), budgets)
                  for x, y in zip(images.split(CHUNK), clean[source].split(CHUNK), strict=True)]
        fooled[source] = {}
        for i, eps in enumerate(budgets):
            adv = torch.cat([c[i].cpu() for c in chunks])
            fooled[source][str(eps)] = {}
            for target, other in models.items():
                acc, pred = accuracy_of(other, adv, labels)
                fooled[source][str(eps)][target] = round(float((pred != clean[target]).float().mean()), 4)
                if target == source:
                    robust[source][str(eps)] = round(acc, 4)
        say(f"transfer from {label(source)}: " + ", ".join(
            f"{e}/255 {fooled[source][str(e)][source]:.0%}" for e in budgets))
    return {"attack": "fgsm", "images": len(images), "eps": list(budgets),
            "clean": {k: round(float((p == labels).float().mean()), 4) for k, p in clean.items()},
            "fooled": fooled, "robust": robust}
