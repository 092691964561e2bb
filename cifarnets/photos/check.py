"""A check on real photos: full-size pictures of the ten classes, classified as an upload would be.

CIFAR-10's test split is 32x32; users upload photos. The development set is 783 real photos of the ten
classes beside the project (../shared/data/photos-real and photos-more: never committed, never trained
on), read by default; CIFARNETS_PHOTOS or the arguments name others. `--build DIR` adds the package set
(packageset.py): its whole photos join the real ones, its composites are reported apart.

    python -m cifarnets photos                       # the development set, each network, each preparation
    python -m cifarnets photos FOLDER --preparations "crop, box" --views 10 --write

`measure` answers the set once per way of turning a photo into 32x32 (`images.PREPARATIONS`) and per number
of views, so what moves real-photo accuracy is measured, not guessed. The classes are uneven (3 to 108 photos),
so each class counts equally in the accuracy reported, with bootstrap intervals (bootstrap.py); it is also
reported per class and per source (the folder, and within it the source a file's name starts with,
<source>__<name>), since the sources differ in kind (side-view airplanes, white-background frogs).
docs/photos.md has what it measured.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from ..cliargs import add_checkpoints_arg, add_device_arg
from ..data.images import read_photos
from ..errors import UsageError
from ..store import hub
from ..yours.commands import add_network_arg
from ..yours.commands import entries as networks
from .bootstrap import LEVEL, balanced_accuracy, interval, paired_interval
from .packageset import build, composite

MEAN = "all (mean)"  # summary's row for the networks together: each picture counts the share of them right
HOW = ("give folders of real photos, FOLDER/<class>/<picture> (or set CIFARNETS_PHOTOS to them, separated by "
       f"{os.pathsep!r}), put the development set in ../shared/data/photos-real and photos-more beside the project, "
       "or make the package set with --build DIR")


def measure(folders: list[Path], entries: dict, preparations=None, views=None) -> dict:
    """Every loaded network in `entries` (checkpoints.discover's) answers every picture in `folders`, once per
    way of preparing it (images.PREPARATIONS) and number of views. {"names", "labels", "composite": per picture;
    "right": {key: {preparation: {views: [1/0 per picture]}}}}."""
    import torch

    from .. import answering
    from ..data import images
    from ..data.loader import batch

    views = views or (1, answering.MIRRORED, answering.VIEWS)
    loaded = {k: e for k, e in entries.items() if e.ok}
    if not loaded:
        raise UsageError("no network could be loaded: " + "; ".join(e.reason for e in entries.values()))
    classes = next(iter(loaded.values())).classes
    pictures, labels, names = read_photos(folders, classes, HOW)
    right, detail = {}, {}
    for name in preparations or images.PREPARATIONS:
        pixels = [images.to_array(p, preparation=name) for p in pictures]
        real = [x for x, n in zip(pixels, names, strict=True) if not composite(n)]
        detail[name] = float(np.median(fine_detail(np.stack(real)))) if real else None
        x = batch(pixels)
        for key, entry in loaded.items():
            for n in views:
                with torch.no_grad():
                    on = x.to(next(entry.model.parameters()).device)
                    guess = answering.answer(entry.model, on, n)[1].argmax(1).cpu().numpy()
                right.setdefault(key, {}).setdefault(name, {})[n] = (guess == labels).astype(int).tolist()
    return {"names": names, "labels": labels.tolist(), "classes": list(classes),
            "composite": [composite(n) for n in names], "right": right, "detail": detail}


def source(name: str) -> str:
    """Where a picture (read_photos's name: folder/class/file) comes from: its folder, and the source its file's
    name starts with where it has one (photos-more's <source>__<name>, SOURCES.md): "photos-more: c101"."""
    folder, file = name.split("/", 1)[0], name.rsplit("/", 1)[-1]
    return f"{folder}: {file.split('__', 1)[0]}" if "__" in file else folder


def by_group(measured: dict, key: str, group: str) -> dict[str, dict]:
    """The app's choice (images.PREPARATION, answering.VIEWS) for one network (or MEAN) on the real photos, per
    class (group "class") or per source ("source", and per folder): {name: {"accuracy", "correct", "n",
    "classes"}}, the accuracy class-balanced over the classes present."""
    from .. import answering
    from ..data import images

    real = ~np.array(measured["composite"])
    labels = np.array(measured["labels"])[real]
    if key == MEAN:
        right = np.mean([measured["right"][k][images.PREPARATION][answering.VIEWS] for k in measured["right"]], 0)
    else:
        right = np.array(measured["right"][key][images.PREPARATION][answering.VIEWS], float)
    right = right[real]
    names = [n for n, c in zip(measured["names"], measured["composite"], strict=True) if not c]
    if group == "class":
        groups = {measured["classes"][c]: labels == c for c in np.unique(labels)}
    else:
        sources = np.array([source(n) for n in names])
        folders = np.array([n.split("/", 1)[0] for n in names])
        groups = {f: folders == f for f in dict.fromkeys(folders)}
        groups |= {s: sources == s for s in dict.fromkeys(sources) if s not in groups}
    return {g: {"accuracy": balanced_accuracy(right[m], labels[m]), "correct": round(float(right[m].sum()), 2),
                "n": int(m.sum()), "classes": len(np.unique(labels[m]))} for g, m in sorted(groups.items())}


def fine_detail(pixels: np.ndarray) -> np.ndarray:
    """How much fine detail each (N, H, W, 3) uint8 picture holds: the share of its brightness spectrum's energy
    (its mean removed) above half the highest frequency, across or down. Needs no labels, so a preparation can
    be matched to CIFAR-10's own images on it without looking at any answer."""
    grey = pixels.astype(np.float64).mean(-1)
    power = np.abs(np.fft.fft2(grey - grey.mean((1, 2), keepdims=True))) ** 2
    fy, fx = (np.abs(np.fft.fftfreq(n)) for n in grey.shape[1:])
    high = np.maximum(fy[:, None], fx[None, :]) > 0.25
    return power[:, high].sum(1) / np.maximum(power.sum((1, 2)), 1e-12)


def summary(measured: dict, part: str = "real") -> dict:
    """{key: {preparation: {views: {"accuracy", "interval", "correct", "n", "against_shipped"}}}} for the
    real photos (part "real") or the composites ("composites"); against_shipped: the paired interval of
    this choice minus the shipped one (images.PREPARATION, answering.VIEWS), where both were measured."""
    from .. import answering
    from ..data import images

    keep = np.array(measured["composite"]) == (part == "composites")
    labels = np.array(measured["labels"])[keep]
    out = {}
    right_by_key = dict(measured["right"])
    if len(right_by_key) > 1:  # per picture, the share of the networks right: how a choice does for them all
        right_by_key[MEAN] = {prep: {n: np.mean([right_by_key[k][prep][n] for k in measured["right"]], axis=0)
                                     for n in by_views} for prep, by_views in next(iter(right_by_key.values())).items()}
    for key, by_prep in right_by_key.items():
        shipped = by_prep.get(images.PREPARATION, {}).get(answering.VIEWS)
        shipped = np.array(shipped)[keep] if shipped is not None else None
        for prep, by_views in by_prep.items():
            for n, right in by_views.items():
                right = np.array(right)[keep]
                if not len(right):
                    continue
                r = {"accuracy": balanced_accuracy(right, labels), "interval": interval(right, labels),
                     "correct": int(right.sum()) if right.dtype.kind in "iub" else round(float(right.sum()), 2),
                     "n": len(right)}
                if shipped is not None and (prep, n) != (images.PREPARATION, answering.VIEWS):
                    r["against_shipped"] = paired_interval(right, shipped, labels)
                out.setdefault(key, {}).setdefault(prep, {})[n] = r
    return out


def figure(measured: dict, key: str) -> dict:
    """What a checkpoint records of the real-photo check (its record's `Photos`, store/record.py): the app's
    preparation and views, class-balanced, with the check's size and noise."""
    from .. import answering
    from ..data import images

    r = summary(measured)[key][images.PREPARATION][answering.VIEWS]
    real = ~np.array(measured["composite"])
    return {"accuracy": round(r["accuracy"], 4), "interval": [round(v, 4) for v in r["interval"]],
            "correct": r["correct"], "n": r["n"], "classes": len(set(np.array(measured["labels"])[real].tolist())),
            "preparation": images.PREPARATION, "views": answering.VIEWS,
            "folders": sorted({n.split("/", 1)[0] for n, c in zip(measured["names"], measured["composite"], strict=True)
                               if not c}),
            "date": dt.date.today().isoformat()}


def add_parser(sub) -> None:
    p = sub.add_parser("photos", help="accuracy on real photos, for each way of preparing a photo and views",
                       description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("folders", type=Path, nargs="*", metavar="FOLDER",
                   help="real photos, FOLDER/<class>/<picture>; several are pooled (default: $CIFARNETS_PHOTOS, "
                        "else the development set, ../shared/data/photos-real and photos-more)")
    p.add_argument("--build", type=Path, metavar="DIR",
                   help="first make the package set in DIR (packageset.py; apt-get download; replaces DIR) and add "
                        "it: its whole "
                        "photos join the real ones, its composites are reported apart")
    p.add_argument("--debs", type=Path, help="with --build: take the .deb files from this folder")
    p.add_argument("--preparations", nargs="+", metavar="NAME",
                   help="ways of preparing a photo to try (default: all of images.PREPARATIONS)")
    p.add_argument("--views", type=int, nargs="+",
                   help="views per answer to try (default: 1, 2 and the app's number, answering.VIEWS)")
    p.add_argument("--data", help="also the fine detail of this CIFAR-10's test split, which the preparations' "
                                   "is compared with (image-folder tree or archive)")
    p.add_argument("--write", action="store_true",
                   help="store the app's figure (its preparation and views) in each checkpoint's config.json")
    add_checkpoints_arg(p)
    hub.add_hub_arg(p)  # KEY=FOLDER takes a network from a run folder
    add_network_arg(p)
    add_device_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import answering
    from ..data import images
    from ..device import pick
    from ..paths import photos_folders
    from ..store.checkpoints import discover
    from ..store.record import CheckpointRecord

    folders = list(args.folders) or photos_folders()
    if args.build:
        if args.build.exists():
            shutil.rmtree(args.build)
        print(f"wrote {len(build(args.build, args.debs))} pictures to {args.build}", file=sys.stderr)
        folders.append(args.build)
    if not folders:
        raise UsageError(f"no photos given; {HOW}")
    unknown = [p for p in args.preparations or () if p not in images.PREPARATIONS]
    if unknown:
        raise UsageError(f"unknown preparation {unknown[0]!r}; choose from: {', '.join(images.PREPARATIONS)}")
    entries = discover(args.checkpoints, pick(args.device), overrides=hub.cli_overrides(args.hub))
    entries |= networks(args.network, pick(args.device))  # --network: yours beside the four
    measured = measure(folders, entries, args.preparations, args.views)
    if args.write:
        if args.hub or images.PREPARATION not in measured["right"][next(iter(measured["right"]))] \
                or answering.VIEWS not in next(iter(measured["right"].values()))[images.PREPARATION]:
            raise UsageError("--write stores the shipped checkpoints' figure: the app's preparation and views "
                             "must be among those measured, and no --hub")
        for key in measured["right"]:
            record = CheckpointRecord.read(Path(args.checkpoints) / key)
            record.write_photos(figure(measured, key))
            print(f"{key}: written to {record.path}", file=sys.stderr)
    parts = {part: summary(measured, part) for part in ("real", "composites")}
    shipped = images.PREPARATION in next(iter(measured["right"].values())) and \
        answering.VIEWS in next(iter(measured["right"].values()))[images.PREPARATION]
    keys = [*measured["right"], MEAN] if len(measured["right"]) > 1 else list(measured["right"])
    groups = {g: {k: by_group(measured, k, g) for k in keys} for g in ("class", "source")} \
        if shipped and not all(measured["composite"]) else {}
    if args.json:
        print(json.dumps({"pictures": measured, **parts, "by": groups}, indent=1))
        return 0
    labels = np.array(measured["labels"])
    cifar = ""
    if args.data:
        from ..data import sources

        test = sources.load(args.data, verbose=False).test.x.permute(0, 2, 3, 1).cpu().numpy()
        cifar = f"; CIFAR-10's test split {np.median(fine_detail(test)):.1%}"
    print("fine detail of the real photos, the median share of the spectrum above half its highest frequency: "
          + ", ".join(f"{prep} {share:.1%}" for prep, share in measured["detail"].items() if share is not None)
          + cifar + "\n")
    for part, title in (("real", "real photos"),
                        ("composites", "composites (cut-outs pasted onto scenes; not real photos: a separate check)")):
        if not parts[part]:
            continue
        keep = np.array(measured["composite"]) == (part == "composites")
        sizes = np.bincount(labels[keep], minlength=10)
        print(f"{title}: {keep.sum()} pictures, {np.count_nonzero(sizes)} classes ({sizes[sizes > 0].min()} to "
              f"{sizes.max()} a class)\nclass-balanced accuracy [{LEVEL:.0%} bootstrap interval], correct/all; "
              f"vs shipped: the paired {LEVEL:.0%} interval of the difference from the app's choice "
              f"({images.PREPARATION}, {answering.VIEWS} views), in points")
        for key, by_prep in parts[part].items():
            for prep, by_views in by_prep.items():
                for n, r in by_views.items():
                    lo, hi = r["interval"]
                    vs = (f"  vs shipped [{r['against_shipped'][0] * 100:+5.1f}, {r['against_shipped'][1] * 100:+5.1f}]"
                          if "against_shipped" in r else "  (shipped)")
                    print(f"{key:10} {prep:24} {n:2} view{'s' * (n > 1)} {r['accuracy']:6.1%} "
                          f"[{lo:5.1%}, {hi:5.1%}] {r['correct']:3}/{r['n']}{vs}")
        print()
    for group, table in groups.items():
        print(f"real photos per {group}, the app's choice ({images.PREPARATION}, {answering.VIEWS} views): "
              "class-balanced accuracy, correct/all")
        rows = next(iter(table.values()))
        print(f"{group:32} " + " ".join(f"{k[:16]:>16}" for k in table))
        for name in rows:
            print(f"{name[:32]:32} " + " ".join(f"{t[name]['accuracy']:6.1%} {t[name]['correct']:>4g}/{t[name]['n']:<4}"
                                             for t in table.values()))
        print()
    return 0
