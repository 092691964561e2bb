"""A check on real photos: full-size pictures of the ten classes, classified as an upload would be.

CIFAR-10's test split is 32x32; users upload photos. No labelled photos ship with the project
(licences, size), so `build` makes a set from packages that carry photos: GCompris's activity
photos, Tux Paint's stamps (photos cut out of their background), Scratch 1.4's media (photo
sprites and backgrounds) and scikit-image's cat. Each cut-out is pasted onto one of Scratch's
background photos that suits it (cars on a road, boats on water, aeroplanes in the sky, animals in
the country), at three framings, so every picture has a real scene around its object.

    python -m cifarnets photos --build ~/cifarnets-photos   # downloads ~230 MB of packages, once
    python -m cifarnets photos ~/cifarnets-photos           # each network, each way of preparing

`measure` answers the set once per way of turning a photo into 32x32 (`images.PREPARATIONS`) and
per number of views, so what moves real-photo accuracy is measured, not guessed. The set is small
(44 cut-outs at three framings and 12 photos: 144 pictures, 3 to 68 per class): each class counts
equally in the accuracy we report, and one picture more or less right in a class of six moves the
mean by 1.7 points. docs/photos.md has what it measured.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from ..cliargs import add_checkpoints_arg, add_device_arg
from ..data.images import read_labelled
from ..errors import UsageError
from ..store import hub
from .bootstrap import LEVEL, balanced_accuracy, interval, paired_interval

# Debian packages, and one wheel from PyPI (scikit-image's sample photos: Chelsea the cat)
PACKAGES = {"tux": "tuxpaint-stamps-default", "gc": "gcompris-qt-data", "scratch": "scratch", "skimage": "scikit-image"}
_TUX = "usr/share/tuxpaint/stamps/"
_GC = "usr/share/gcompris-qt/rcc/"
_SCRATCH = "usr/share/scratch/Media/"
_SKIMAGE = "skimage/data/"

# Scratch's background photos (480x360), by the scene they show; (left, top, right, bottom) crops
# a part of one (the sky above a field).
SCENES = {
    "sky": [("Outdoors/hay_field.jpg", (0, 0, 480, 150))],
    "road": [("Outdoors/route66.jpg", None), ("Outdoors/driveway.jpg", None), ("Outdoors/parking-ramp.jpg", None)],
    "water": [("Outdoors/city-with-water2.jpg", None), ("Outdoors/boardwalk.jpg", None), ("Nature/hill.jpg", None)],
    "country": [("Nature/lake.jpg", None), ("Outdoors/hay_field.jpg", None), ("Nature/pathway.jpg", None),
                ("Nature/forest.jpg", None), ("Nature/water-and-rocks.jpg", None)],
}
SCENE_OF = {"airplane": "sky", "automobile": "road", "truck": "road", "ship": "water"}  # else: country

# (package, file, class). Photos only, looked at one by one: drawings, renders, toys, silhouettes and
# pick-ups (in neither CIFAR-10 vehicle class) were left out. GCompris's files are activity:file, inside
# the activity's .rcc bundle.
PHOTOS = [
    ("tux", "vehicles/flight/planes/747.png", "airplane"),
    ("tux", "military/vehicles/f22_raptor.png", "airplane"),
    ("scratch", "Costumes/Transportation/airplane.gif", "airplane"),
    ("tux", "vehicles/auto/beetle.png", "automobile"),
    ("tux", "vehicles/auto/sedan.png", "automobile"),
    ("tux", "vehicles/auto/sportscar2.png", "automobile"),
    ("scratch", "Costumes/Transportation/car-blue.gif", "automobile"),
    ("scratch", "Costumes/Transportation/car-bug.gif", "automobile"),
    ("scratch", "Costumes/Transportation/car-cow.gif", "automobile"),
    *[("tux", f"animals/birds/{name}.png", "bird") for name in (
        "adelaide-rosella", "blackbird", "chicken_profile", "crow", "cuckoo", "drake", "duck", "gander", "hen",
        "lark", "magpie", "owl", "peacock", "pelican", "penguin", "pigeon", "rooster", "seagull", "silver-gull",
        "tucan", "turkey")],
    ("gc", "explore_world_animals:animals/scarlet_macaw.webp", "bird"),
    ("gc", "erase:penguin.webp", "bird"),
    ("gc", "explore_farm_animals:animals/owl.webp", "bird"),
    ("gc", "explore_farm_animals:animals/chicken.webp", "bird"),
    ("gc", "explore_farm_animals:animals/duck.webp", "bird"),
    ("gc", "erase:kitten.webp", "cat"),
    ("gc", "explore_farm_animals:animals/cat.webp", "cat"),
    ("skimage", "chelsea.png", "cat"),
    *[("tux", f"animals/mammals/deer/{name}.png", "deer") for name in ("caribou", "deer", "doe", "wapiti")],
    ("gc", "explore_world_animals:animals/moose.webp", "deer"),
    ("tux", "animals/mammals/dogs/dog.png", "dog"),
    ("tux", "animals/mammals/dogs/dingo.png", "dog"),
    ("gc", "explore_farm_animals:animals/dog.webp", "dog"),
    ("tux", "animals/amphibians/frog.png", "frog"),
    ("tux", "animals/amphibians/frog-1.png", "frog"),
    ("tux", "animals/mammals/equines/horse.png", "horse"),
    ("gc", "erase:horse.webp", "horse"),
    ("gc", "explore_farm_animals:animals/horse.webp", "horse"),
    ("scratch", "Costumes/Transportation/sail-boat.gif", "ship"),
    ("scratch", "Costumes/Transportation/tug-boat.gif", "ship"),
    ("scratch", "Costumes/Transportation/yacht.gif", "ship"),
    ("tux", "vehicles/emergency/firetruck.png", "truck"),
    ("tux", "vehicles/garbagetruck.png", "truck"),
]
MEAN = "all (mean)"  # summary's row for the networks together: each picture counts the share of them right

# A cut-out's larger side as a share of the scene's: how far the photographer stood off. Each cut-out is
# pictured at every one of these, so the set holds close-ups and wider shots as uploads do.
FRAMES = (0.5, 0.7, 0.9)
HOW = ("give a folder of real photos, FOLDER/<class>/<picture> (or set CIFARNETS_PHOTOS to one), "
       "or make the package set with --build DIR")


def read_rcc(path: Path, inner: str) -> bytes:
    """One file out of a Qt resource bundle (.rcc, format 1-3; zlib-compressed entries included)."""
    b = path.read_bytes()
    if b[:4] != b"qres":
        raise UsageError(f"{path} is not a Qt resource bundle")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    node = 22 if version >= 2 else 14

    def name(offset: int) -> str:
        (n,) = struct.unpack(">H", b[names + offset:names + offset + 2])
        return b[names + offset + 6:names + offset + 6 + 2 * n].decode("utf-16-be")

    index = 0
    for part in inner.split("/"):
        p = tree + index * node
        count, first = struct.unpack(">II", b[p + 6:p + 14])
        for child in range(first, first + count):
            if name(struct.unpack(">I", b[tree + child * node:tree + child * node + 4])[0]) == part:
                index = child
                break
        else:
            raise FileNotFoundError(f"{inner} is not in {path}")
    p = tree + index * node
    (flags,) = struct.unpack(">H", b[p + 4:p + 6])
    (offset,) = struct.unpack(">I", b[p + 10:p + 14])
    (size,) = struct.unpack(">I", b[data + offset:data + offset + 4])
    blob = b[data + offset + 4:data + offset + 4 + size]
    return zlib.decompress(blob[4:]) if flags & 1 else blob


def compose(cutout: Image.Image, scene: Image.Image, frame: float) -> Image.Image:
    """The cut-out (transparent around its object) in the middle of the scene, its larger side `frame` of it."""
    obj = cutout.convert("RGBA")
    box = obj.getchannel("A").getbbox() or (0, 0, *obj.size)
    obj = obj.crop(box)
    scale = frame * min(scene.width / obj.width, scene.height / obj.height)
    obj = obj.resize((max(1, round(obj.width * scale)), max(1, round(obj.height * scale))), Image.Resampling.LANCZOS)
    picture = scene.convert("RGB").copy()
    picture.paste(obj, ((scene.width - obj.width) // 2, (scene.height - obj.height) // 2), obj)
    return picture


def build(out: Path, debs: Path | None = None) -> list[tuple[Path, str]]:
    """Download the packages (or take them from `debs`), and write out/<class>/<name>.png."""
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for key, package in PACKAGES.items():
            roots[key] = Path(tmp) / key
            wheel = key == "skimage"
            pattern = "scikit_image-*.whl" if wheel else f"{package}_*.deb"
            found = sorted((debs or Path(tmp)).glob(pattern))
            if not found:
                _fetch([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", tmp,
                        package] if wheel else ["apt-get", "download", package], tmp)
                found = sorted(Path(tmp).glob(pattern))
            if wheel:
                zipfile.ZipFile(found[-1]).extractall(roots[key], [_SKIMAGE + "chelsea.png"])
            else:
                subprocess.run(["dpkg", "-x", str(found[-1]), str(roots[key])], check=True)
        scenes = {k: [_scene(roots["scratch"] / _SCRATCH / "Backgrounds" / f, crop) for f, crop in v]
                  for k, v in SCENES.items()}
        written, used = [], {}
        for package, path, label in PHOTOS:
            picture = _open(roots[package], package, path)
            name = f"{package}-{Path(path).with_suffix('').as_posix().replace('/', '-').replace(':', '-')}"
            pictures = {name: picture}
            if picture.mode in ("RGBA", "LA", "P"):  # a cut-out: give it a scene
                kind = SCENE_OF.get(label, "country")
                n = used[kind] = used.get(kind, -1) + 1
                scene = scenes[kind][n % len(scenes[kind])]
                pictures = {f"{name}-{frame:.0%}": compose(picture, scene, frame) for frame in FRAMES}
            for name, picture in pictures.items():
                target = out / label / f"{name}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                picture.convert("RGB").save(target)
                written.append((target, label))
    return written


def _fetch(command: list[str], where: str) -> None:
    try:
        subprocess.run(command, cwd=where, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        said = (getattr(e, "stderr", "") or str(e)).strip().splitlines()
        raise UsageError(f"{' '.join(command[:3])}... failed ({said[-1] if said else e}); "
                         "or pass --debs with the files already downloaded") from None


def _scene(path: Path, crop) -> Image.Image:
    img = Image.open(path).convert("RGB")
    return img.crop(crop).resize((480, 360), Image.Resampling.LANCZOS) if crop else img


def _open(root: Path, package: str, path: str) -> Image.Image:
    if package == "gc":  # activity:file, inside the activity's bundle
        activity, inner = path.split(":", 1)
        raw = read_rcc(root / _GC / f"{activity}.rcc", f"gcompris/src/activities/{activity}/resource/{inner}")
        return Image.open(io.BytesIO(raw))
    img = Image.open(root / {"tux": _TUX, "scratch": _SCRATCH, "skimage": _SKIMAGE}[package] / path)
    return img.convert("RGBA") if img.mode == "P" else img


def composite(name: str) -> bool:
    """A cut-out pasted onto a scene by `build` (named ...-50%.png): not a real photo."""
    return name.endswith("%.png")


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
    pictures, labels, names = [], [], []
    for folder in folders:
        p, y, n = read_labelled(Path(folder), classes, HOW)
        pictures += p
        labels += list(y)
        names += [f"{folder}/{name}" for name in n]
    labels = np.array(labels)
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
    return {"names": names, "labels": labels.tolist(), "composite": [composite(n) for n in names], "right": right,
            "detail": detail}


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
    """What a checkpoint records of the real-photo check (config.json's "photos"): the app's preparation and
    views, class-balanced, with the check's size and noise."""
    from .. import answering
    from ..data import images

    r = summary(measured)[key][images.PREPARATION][answering.VIEWS]
    real = ~np.array(measured["composite"])
    return {"accuracy": round(r["accuracy"], 4), "interval": [round(v, 4) for v in r["interval"]],
            "correct": r["correct"], "n": r["n"], "classes": len(set(np.array(measured["labels"])[real].tolist())),
            "preparation": images.PREPARATION, "views": answering.VIEWS,
            "folders": sorted({Path(n.rsplit("/", 2)[0]).name
                               for n, c in zip(measured["names"], measured["composite"], strict=True) if not c}),
            "date": dt.date.today().isoformat()}


def add_parser(sub) -> None:
    p = sub.add_parser("photos", help="accuracy on real photos, for each way of preparing a photo and views",
                       description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("folders", type=Path, nargs="*", metavar="FOLDER",
                   help="real photos, FOLDER/<class>/<picture>; several are pooled (default: $CIFARNETS_PHOTOS)")
    p.add_argument("--build", type=Path, metavar="DIR",
                   help="first make the package set in DIR (apt-get download; replaces DIR) and add it: its whole "
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
    add_device_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import answering
    from ..data import images
    from ..device import pick
    from ..paths import photos_folder
    from ..store.checkpoints import discover
    from ..store.fileio import read_json, write_json

    folders = list(args.folders) or [f for f in [photos_folder()] if f]
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
    measured = measure(folders, entries, args.preparations, args.views)
    if args.write:
        if args.hub or images.PREPARATION not in measured["right"][next(iter(measured["right"]))] \
                or answering.VIEWS not in next(iter(measured["right"].values()))[images.PREPARATION]:
            raise UsageError("--write stores the shipped checkpoints' figure: the app's preparation and views "
                             "must be among those measured, and no --hub")
        for key in measured["right"]:
            path = Path(args.checkpoints) / key / "config.json"
            write_json(path, read_json(path) | {"photos": figure(measured, key)})
            print(f"{key}: written to {path}", file=sys.stderr)
    parts = {part: summary(measured, part) for part in ("real", "composites")}
    if args.json:
        print(json.dumps({"pictures": measured, **parts}, indent=1))
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
    return 0
