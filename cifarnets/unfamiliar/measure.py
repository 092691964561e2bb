"""`python -m cifarnets calibrate`: which score tells CIFAR-10 from unfamiliar inputs best, and where to cut.

For every network in --checkpoints, on fixed seeded parts of the data:
  training split: 5,000 images fit the class statistics, 2,000 others give each layer's scale;
  test split: 2,000 images set the threshold (the RATE quantile of their scores) and choose the
      method, 2,000 others are held out and judge it;
  unfamiliar inputs (inputs.generate): seed 0 to choose the method, seed 1 to judge it;
  real photos of the ten classes (--photos, default $CIFARNETS_PHOTOS, else the development set), when given:
      the threshold is raised where needed so that at most 1 - PHOTO_RATE of them is flagged, since an upload
      is a photo, not a CIFAR-10 image (docs/unfamiliar.md). Two folds of them, each threshold set on one and
      counted on the other, estimate what that share is on photos the threshold has not seen;
  photos of none of the ten classes (--other, default ../shared/data/photos-other), with those: every method
      is judged photo against photo (onphotos.py), and the share of them flagged counted the same way.
Every method is scored; the one with the highest mean AUROC over the networks is used for all of them, so their
AUROCs compare like with like: photo against photo where both kinds of photo are given, else the test split's
choosing half against made-up unfamiliar inputs. --write stores each network's result in
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
from ..data.images import read_photos, to_array
from ..data.loader import batch, normalize
from ..device import machine_name, pick
from ..errors import UsageError
from ..models import KEYS, label
from ..paths import other_photos_folder, photos_folders
from ..store import checkpoints as ckpt
from ..store.record import file_sha256
from . import calibration, inputs, onphotos
from .scores import METHODS, Gaussians, ViewOutputs, auroc, fit, score, view_outputs

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
    c.add_argument("--photos", type=Path, nargs="+", default=None, metavar="FOLDER",
                   help="real photos of the ten classes, FOLDER/<class>/<picture>, that the threshold keeps "
                        "at --photo-rate (default: $CIFARNETS_PHOTOS, else the development set where it is "
                        "there; none: the test split alone)")
    c.add_argument("--other", type=Path, default=None, metavar="FOLDER",
                   help="photos of none of the ten classes, all in FOLDER, that the check should flag: the methods "
                        "are judged and chosen photo against photo (default: ../shared/data/photos-other where it "
                        "is there)")
    c.add_argument("--photo-rate", type=float, default=calibration.PHOTO_RATE,
                   help=f"share of the real photos to keep under the threshold (default {calibration.PHOTO_RATE})")
    c.add_argument("--write", action="store_true", help="store the result in each checkpoint folder")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> int:
    if not (0.5 <= args.rate < 1 and 0.5 <= args.photo_rate < 1):
        raise UsageError("--rate and --photo-rate are shares of familiar images kept under the threshold: "
                         "between 0.5 and 1")
    photo_folders = args.photos or photos_folders()
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
    photos = None
    if photo_folders:
        pictures, labels, _ = read_photos(photo_folders, dataset.classes)
        other_folder = args.other or other_photos_folder()
        other = batch([to_array(p) for p in onphotos.read_other(other_folder)]) if other_folder else None
        photos = Photos(batch([to_array(p) for p in pictures]), labels, "+".join(f.name for f in photo_folders),
                        args.photo_rate, other, other_folder.name if other_folder else None)
        say(f"{len(labels)} real photos from {', '.join(map(str, photo_folders))}"
            + (f"; {len(other)} of other things from {other_folder}" if other_folder else ""))
    results = calibrate(found, dataset, args.rate, say, photos=photos)
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


def view_outputs_in_batches(model: torch.nn.Module, x: torch.Tensor) -> ViewOutputs:
    """scores.view_outputs() of a large (N, 3, 32, 32) tensor, with the views every answer is made from, in batches."""
    device = next(model.parameters()).device
    size = split_batch(device)
    return ViewOutputs.cat([view_outputs(model, x[i:i + size].to(device)) for i in range(0, len(x), size)])


class Photos(NamedTuple):
    """Real photos of the ten classes, prepared as uploads are, that the threshold must keep at `rate`."""
    x: torch.Tensor  # normalised (N, 3, 32, 32)
    labels: np.ndarray
    name: str  # the folders' names: config.json never records a path of the machine
    rate: float
    other: torch.Tensor | None = None  # normalised photos of none of the ten classes, that should be flagged
    other_name: str | None = None


def folds(labels: np.ndarray) -> np.ndarray:
    """0 or 1 for each photo, alternating within each class: two halves with every class in both."""
    out = np.zeros(len(labels), int)
    for c in np.unique(labels):
        out[labels == c] = np.arange((labels == c).sum()) % 2
    return out


class Network(NamedTuple):
    model: torch.nn.Module
    config: dict
    folder: Path


def calibrate(networks: dict[str, Network], dataset: sources.Dataset, rate: float = calibration.RATE,
              say=lambda m: None, sizes: Sizes = SIZES,
              counts: dict[str, int] | None = None,
              photos: Photos | None = None) -> dict[str, tuple[dict, dict[str, Gaussians]]]:
    """{key: (record for config.json, fitted statistics)} for every network given; `counts`: how many unfamiliar
    inputs of each kind (default inputs.COUNTS); `photos`: real photos the threshold must keep at their rate."""
    tick = time.perf_counter()
    p = parts(dataset, sizes)
    strange = {seed: inputs.generate(seed, counts) for seed in (0, 1)}
    say(f"{sum(len(k) for _, k in strange.values()):,} unfamiliar inputs made in {time.perf_counter() - tick:.0f}s")
    seen = {}
    for key, (model, _, _) in networks.items():
        tick = time.perf_counter()
        v = {name: view_outputs_in_batches(model, normalize(x)) for name, (x, _) in p.items()}
        v |= {f"strange{seed}": view_outputs_in_batches(model, batch(list(pixels)))
              for seed, (pixels, _) in strange.items()}
        if photos is not None:
            v["photos"] = view_outputs_in_batches(model, photos.x)
            if photos.other is not None:
                v["other"] = view_outputs_in_batches(model, photos.other)
        seen[key] = v
        say(f"{label(key)}: answered in {time.perf_counter() - tick:.0f}s")
    # the networks' answers averaged, as Classify averages the four it shows (scores.TOGETHER)
    together = {n: torch.stack([v[n].answer for v in seen.values()]).mean(0) for n in next(iter(seen.values()))}
    measured = {}
    for key, v in seen.items():
        fitted = fit(v["fit"], p["fit"][1], v["scale"], len(networks[key].config["classes"]))
        measured[key] = (fitted, {m: {n: score(m, x, fitted, together[n]).cpu().numpy() for n, x in v.items()
                                      if n not in ("fit", "scale")} for m in METHODS})
    if photos is not None and photos.other is not None:  # the question a user asks: is my photo one of the ten?
        judge, on = ("photos", "other"), "photos of the ten classes against photos of other things"
    else:
        judge, on = ("choose", "strange0"), "the choosing half"
    each = {m: [auroc(s[m][judge[0]], s[m][judge[1]]) for _, s in measured.values()] for m in METHODS}
    choosing = {m: float(np.mean(a)) for m, a in each.items()}
    # On photos, the highest mean among the methods that do at least as well as the top probability for every
    # network: a check no better than the bars' own number would only add a badge
    method = max((m for m in METHODS if judge[1] != "other" or all(a >= b for a, b in zip(each[m], each["msp"],
                                                                                       strict=True))),
                 key=choosing.get)
    say(f"method: {METHODS[method]} (mean AUROC on {on}: " + ", ".join(f"{m} {a:.3f}" for m, a in choosing.items())
        + ")")
    machine = machine_name(next(next(iter(networks.values())).model.parameters()).device)
    return {key: (record(method, rate, s, strange[1][1], dataset, machine, sizes,
                         file_sha256(networks[key].folder / ckpt.MODEL_FILE), photos), fitted)
            for key, (fitted, s) in measured.items()}


def record(method: str, rate: float, s: dict[str, dict[str, np.ndarray]], kinds: list[str], dataset: sources.Dataset,
           machine: str, sizes: Sizes, weights_sha256: str, photos: Photos | None = None) -> dict:
    """What config.json keeps: the choice, the threshold, and what they were measured on. `rate` is what the
    threshold keeps of the choosing half: the rate asked for, or more where the photos raised it."""
    chosen = s[method]
    # The smallest threshold that keeps `rate` of the choosing half at or under it.
    test_only = float(np.quantile(chosen["choose"], rate, method="higher"))
    threshold = test_only if photos is None else _raised(test_only, chosen["photos"], photos.rate)
    kinds_ = np.array(kinds)
    over = chosen["strange1"] > threshold
    found = {}
    if photos is not None:
        # Each fold's flags counted against the threshold set with the other fold's photos: an estimate for
        # photos the threshold has not seen, which the share on the photos that set it (at most 1 - rate) is not.
        fold, scores_ = folds(photos.labels), chosen["photos"]
        unseen = sum(int((scores_[fold == k] > _raised(test_only, scores_[fold != k], photos.rate)).sum())
                     for k in (0, 1))
        found["photos"] = {"folder": photos.name, "n": len(photos.labels), "rate": photos.rate,
                           "flagged": float((scores_ > threshold).mean()),
                           "flagged_unseen": unseen / len(photos.labels),
                           "flagged_at_test_rate": float((scores_ > test_only).mean())}
        if "other" in chosen:
            # each half of the other photos against the threshold the photos of the ten set without the fold
            # counted with it: no photo is counted against a threshold it helped set
            other, half = chosen["other"], onphotos.halves(len(chosen["other"]))
            caught = sum(int((other[half == k] > _raised(test_only, scores_[fold != k], photos.rate)).sum())
                         for k in (0, 1))
            found["photos"] |= {
                "other_folder": photos.other_name, "other_n": len(other),
                "other_flagged": float((other > threshold).mean()), "other_flagged_unseen": caught / len(other),
                "auroc": onphotos.judged({m: (x["photos"], x["other"]) for m, x in s.items()}, photos.labels)}
    return found | {
        "method": method, "method_name": METHODS[method], "threshold": threshold,
        "rate": float((chosen["choose"] <= threshold).mean()), "rate_asked": rate, "views": VIEWS,
        "held_out_rate": float((chosen["held_out"] <= threshold).mean()),
        "auroc": {m: round(auroc(x["held_out"], x["strange1"]), 4) for m, x in s.items()},
        "auroc_choosing": {m: round(auroc(x["choose"], x["strange0"]), 4) for m, x in s.items()},
        "flagged": {k: round(float(over[kinds_ == k].mean()), 4) for k in dict.fromkeys(kinds)},
        "n": sizes._asdict() | {"unfamiliar": len(kinds)},
        "seed": SEED, "data": {k: v for k, v in dataset.provenance().items() if k != "classes"},
        "weights_sha256": weights_sha256, "machine": machine,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _raised(threshold: float, photo_scores: np.ndarray, rate: float) -> float:
    """`threshold`, raised where needed to keep `rate` of the photos' scores at or under it; never lowered (nor
    by an empty half of a folder of one photo)."""
    return max(threshold, float(np.quantile(photo_scores, rate, method="higher"))) if len(photo_scores) else threshold


def table(records: dict[str, dict]) -> str:
    first = next(iter(records.values()))
    lines = [f"AUROC on held-out test images against fresh unfamiliar inputs (chosen: {first['method_name']}, "
             f"threshold at {first['rate_asked']:.0%} of the test split; {first['machine']})",
             f"{'network':<10} " + " ".join(f"{m:>12}" for m in METHODS) + f" {'threshold':>10} {'held out':>9}"]
    for key, r in records.items():
        lines.append(f"{label(key):<10} " + " ".join(f"{r['auroc'][m]:>12.3f}" for m in METHODS)
                     + f" {r['threshold']:>10.4g} {r['held_out_rate']:>9.1%}")
    kinds = list(first["flagged"])
    lines += ["", "share of fresh unfamiliar inputs over the threshold",
              f"{'network':<10} " + " ".join(f"{k:>13}" for k in kinds)]
    for key, r in records.items():
        lines.append(f"{label(key):<10} " + " ".join(f"{r['flagged'][k]:>13.0%}" for k in kinds))
    if "photos" in first:
        p = first["photos"]
        lines += ["", f"real photos of the ten classes flagged ({p['n']} in {p['folder']}/, threshold kept at "
                      f"{p['rate']:.0%} of them where the test split's would flag more)",
                  f"{'network':<10} {'test split only':>16} {'shipped':>9} {'unseen half':>12} {'test kept':>10}"]
        for key, r in records.items():
            p = r["photos"]
            lines.append(f"{label(key):<10} {p['flagged_at_test_rate']:>16.1%} {p['flagged']:>9.1%} "
                         f"{p['flagged_unseen']:>12.1%} {r['held_out_rate']:>10.1%}")
    if "auroc" in first.get("photos", {}):
        p = first["photos"]
        lines += ["", f"photo against photo: AUROC of {p['other_n']} photos of other things ({p['other_folder']}/) "
                      f"against the {p['n']} of the ten classes [paired 90% interval against msp]; the unseen "
                      "halves flagged at the shipped threshold",
                  f"{'network':<10} " + " ".join(f"{m:>24}" for m in METHODS) + f" {'ten':>6} {'other':>6}"]
        for key, r in records.items():
            a = r["photos"]["auroc"]
            cells = [f"{a[m]['auroc']:.3f}" + (" [{:+.3f},{:+.3f}]".format(*a[m]["against_msp"])
                                               if "against_msp" in a[m] else " " * 17) for m in METHODS]
            lines.append(f"{label(key):<10} " + " ".join(f"{c:>24}" for c in cells)
                         + f" {r['photos']['flagged_unseen']:>6.1%} {r['photos']['other_flagged_unseen']:>6.1%}")
    return "\n".join(lines)
