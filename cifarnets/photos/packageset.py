"""The package set: real scenes with cut-out objects pasted in, and a few whole photos, from packages this
machine can install (GCompris's activity photos, Tux Paint's stamps, Scratch 1.4's media, scikit-image's cat).

Each cut-out is pasted onto one of Scratch's background photos that suits it (cars on a road, boats on water,
aeroplanes in the sky, animals in the country), at three framings, so every picture has a real scene around
its object. `python -m cifarnets photos --build DIR` makes it (downloads ~230 MB of packages, once); its
composites are reported apart from real photos, and nothing is chosen on them (docs/photos.md).
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

from PIL import Image

from ..errors import UsageError

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

# A cut-out's larger side as a share of the scene's: how far the photographer stood off. Each cut-out is
# pictured at every one of these, so the set holds close-ups and wider shots as uploads do.
FRAMES = (0.5, 0.7, 0.9)


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
