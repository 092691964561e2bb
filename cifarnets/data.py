"""CIFAR-10 (or a user's own image folders) -> uint8 tensors, decoded once and cached -> batches on the device.

A source is one of:
  * an image-folder tree `train/<class>/*` + `test/<class>/*` (possibly inside one top folder),
  * a .tar / .tar.gz / .zip archive holding such a tree,
  * a torchvision CIFAR-10 root (`cifar-10-batches-py/`), downloaded into the default `./data` when online.
Decoded arrays are cached under $CIFARNETS_CACHE (default ~/.cache/cifarnets), keyed by the source's
fingerprint, so every later load is a single uint8 file read.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from . import CIFAR10_CLASSES
from .fileio import atomic_path
from .images import ImageError, decode_image, to_array
from .paths import DEFAULT_DATA, cache_dir, data_env

SPLITS = ("train", "test")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
CACHE_VERSION = 1  # bump when the decoded layout changes, so old caches are ignored


class DataError(Exception):
    """A problem with the data a user pointed us at, in one line that says what to do."""


@dataclass
class Split:
    x: torch.Tensor  # (N, 3, 32, 32) uint8
    y: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    train: Split
    test: Split
    classes: list[str]
    source: str  # what the user gave, resolved to an absolute path
    fingerprint: str  # sha256 of the source's content (archives, torchvision) or of its file listing (folders)

    def describe(self) -> dict:
        return {"source": self.source, "sha256": self.fingerprint,
                "n_train": len(self.train), "n_test": len(self.test), "classes": self.classes}


def resolve_source(data: str | os.PathLike | None = None) -> str:
    """--data beats $CIFARNETS_DATA beats ./data."""
    return str(data or data_env() or DEFAULT_DATA)


def load(data: str | os.PathLike | None = None, *, download: bool = True, verbose: bool = False) -> Dataset:
    """Load a data set from any source, through the on-disk cache of decoded arrays."""
    source = resolve_source(data)
    path = Path(source).expanduser().resolve()
    kind, root = _identify(path, source, download)
    fingerprint = _fingerprint(kind, root)
    cached = cache_dir() / f"{fingerprint[:32]}-v{CACHE_VERSION}.npz"
    if cached.exists():
        try:
            return _from_cache(cached, str(path), fingerprint)
        except (OSError, ValueError, KeyError) as e:  # a damaged cache is rebuilt, never trusted
            _say(verbose, f"cache {cached} unreadable ({e}); decoding again")
    _say(verbose, f"decoding {source} once (cached afterwards in {cache_dir()})")
    arrays = _decode(kind, root)
    _to_cache(cached, arrays)
    return _from_arrays(arrays, str(path), fingerprint)


# ---------------------------------------------------------------- identifying the source

def _identify(path: Path, given: str, download: bool) -> tuple[str, Path]:
    if path.is_file():
        if zipfile.is_zipfile(path):
            return "zip", path
        if _is_tar(path):
            return "tar", path
        raise DataError(f"{given} is not a readable .tar, .tar.gz or .zip archive (corrupt or another format)")
    if path.is_dir():
        root = _find_folder_root(path)
        if root is not None:
            return "folder", root
        if (path / "cifar-10-batches-py").is_dir():
            return "torchvision", path
    elif given != DEFAULT_DATA:
        raise DataError(f"data source {given} does not exist: pass --data PATH or set CIFARNETS_DATA "
                        "to an image-folder tree, an archive of one, or a torchvision CIFAR-10 folder")
    if download:
        return "torchvision", _download_cifar10(path, given)
    raise DataError(_missing_data_message(given))


def _missing_data_message(given: str) -> str:
    return (f"no CIFAR-10 data in {given}: put an image-folder tree there (train/<class>/*, test/<class>/*) "
            f"or an archive of one and pass --data PATH (or set CIFARNETS_DATA=PATH), or run once online "
            f"so torchvision can download CIFAR-10 into {DEFAULT_DATA}")


def _download_cifar10(path: Path, given: str) -> Path:
    from torchvision.datasets import CIFAR10

    try:
        path.mkdir(parents=True, exist_ok=True)
        CIFAR10(str(path), train=True, download=True)
    except Exception as e:  # offline: urllib raises URLError, socket errors, HTTP errors...
        raise DataError(f"{_missing_data_message(given)} (download failed: {str(e).splitlines()[0][:120]})") from None
    return path


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _find_folder_root(path: Path) -> Path | None:
    """The folder holding train/ and test/: `path` itself or its one sub-folder."""
    if any((path / s).is_dir() for s in SPLITS):
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1 and any((subdirs[0] / s).is_dir() for s in SPLITS):
        return subdirs[0]
    return None


def _fingerprint(kind: str, root: Path) -> str:
    h = hashlib.sha256(f"{kind}\n".encode())
    if kind == "folder":
        # Hashing 60,000 small files costs seconds; their names, sizes and mtimes change whenever they do.
        for f in sorted(p for s in SPLITS if (root / s).is_dir() for p in (root / s).rglob("*") if p.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        return h.hexdigest()
    files = [root] if kind in ("tar", "zip") else sorted((root / "cifar-10-batches-py").glob("*_batch*"))
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- decoding

ArchiveImage = tuple[str, str, str, bytes]  # split, class name, file name, encoded bytes


def _decode(kind: str, root: Path) -> dict[str, np.ndarray]:
    if kind == "torchvision":
        return _decode_torchvision(root)
    entries, class_dirs = {"tar": _tar_entries, "zip": _zip_entries, "folder": _folder_entries}[kind](root)
    return _decode_entries(entries, class_dirs, str(root))


def _decode_torchvision(root: Path) -> dict[str, np.ndarray]:
    from torchvision.datasets import CIFAR10

    out: dict[str, np.ndarray] = {"classes": np.array(CIFAR10_CLASSES)}
    for split in SPLITS:
        ds = CIFAR10(str(root), train=split == "train", download=False)
        out[f"{split}_x"] = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))
        out[f"{split}_y"] = np.asarray(ds.targets, dtype=np.int64)
    return out


def _split_path(name: str) -> tuple[str, str, str] | None:
    """(split, class, file) for `[top/]split/class/file`, None for anything else (READMEs, hidden files)."""
    parts = [p for p in PurePosixPath(name).parts if p not in (".", "")]
    if len(parts) == 4:
        parts = parts[1:]
    if len(parts) != 3 or parts[0] not in SPLITS or any(p.startswith(".") for p in parts):
        return None
    return parts[0], parts[1], parts[2]


def _class_dir(name: str) -> tuple[str, str] | None:
    parts = [p for p in PurePosixPath(name).parts if p not in (".", "")]
    if len(parts) == 3:
        parts = parts[1:]
    if len(parts) == 2 and parts[0] in SPLITS and not parts[1].startswith("."):
        return parts[0], parts[1]
    return None


def _tar_entries(path: Path):
    class_dirs: set[tuple[str, str]] = set()

    def gen() -> Iterator[ArchiveImage]:
        try:
            with tarfile.open(path, "r:*") as tar:
                for m in tar:
                    if m.isdir() and (cd := _class_dir(m.name)):
                        class_dirs.add(cd)
                    elif m.isfile() and (sp := _split_path(m.name)):
                        class_dirs.add(sp[:2])
                        yield (*sp, tar.extractfile(m).read())
        except (tarfile.TarError, EOFError, OSError, zlib_error()) as e:
            raise DataError(f"{path} is a damaged archive ({type(e).__name__}: {e}); "
                            "download or copy it again") from None

    return gen(), class_dirs


def _zip_entries(path: Path):
    class_dirs: set[tuple[str, str]] = set()

    def gen() -> Iterator[ArchiveImage]:
        try:
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if info.is_dir():
                        if cd := _class_dir(info.filename):
                            class_dirs.add(cd)
                    elif sp := _split_path(info.filename):
                        class_dirs.add(sp[:2])
                        yield (*sp, z.read(info))
        except (zipfile.BadZipFile, EOFError, OSError, zlib_error()) as e:
            raise DataError(f"{path} is a damaged archive ({type(e).__name__}: {e}); "
                            "download or copy it again") from None

    return gen(), class_dirs


def _folder_entries(root: Path):
    class_dirs = {(s, d.name) for s in SPLITS if (root / s).is_dir()
                  for d in (root / s).iterdir() if d.is_dir() and not d.name.startswith(".")}

    def gen() -> Iterator[ArchiveImage]:
        for split, cls in sorted(class_dirs):
            for f in sorted((root / split / cls).iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    yield split, cls, f.name, f.read_bytes()

    return gen(), class_dirs


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def _decode_entries(entries: Iterable[ArchiveImage], class_dirs: set[tuple[str, str]],
                    where: str) -> dict[str, np.ndarray]:
    images: dict[str, list[np.ndarray]] = defaultdict(list)
    names: dict[str, list[str]] = defaultdict(list)
    bad: list[str] = []
    for split, cls, fname, raw in entries:
        try:
            images[split].append(to_array(decode_image(raw, fname)))
        except ImageError as e:
            bad.append(f"{split}/{cls}/{fname}: {e}")
            continue
        names[split].append(cls)
    classes = _check_layout(class_dirs, names, where)
    if bad:
        print(f"warning: skipped {len(bad)} unreadable image(s) in {where}, e.g. {bad[0]}", file=sys.stderr)
    index = {c: i for i, c in enumerate(classes)}
    out: dict[str, np.ndarray] = {"classes": np.array(classes)}
    for split in SPLITS:
        out[f"{split}_x"] = np.ascontiguousarray(np.stack(images[split]).transpose(0, 3, 1, 2))
        out[f"{split}_y"] = np.array([index[c] for c in names[split]], dtype=np.int64)
    return out


def _check_layout(class_dirs: set[tuple[str, str]], names: dict[str, list[str]], where: str) -> list[str]:
    layout = "train/<class>/* and test/<class>/*"
    per_split = {s: {c for sp, c in class_dirs if sp == s} for s in SPLITS}
    for split in SPLITS:
        if not per_split[split]:
            raise DataError(f"{where} has no {split}/ split with class folders (expected {layout})")
        counts = {c: names[split].count(c) for c in per_split[split]}
        empty = sorted(c for c, n in counts.items() if n == 0)
        if empty:
            raise DataError(f"{where}: class folder {split}/{empty[0]} holds no readable images")
    if per_split["train"] != per_split["test"]:
        diff = sorted(per_split["train"] ^ per_split["test"])
        raise DataError(f"{where}: train/ and test/ must hold the same class folders; they differ in {', '.join(diff)}")
    classes = per_split["train"]
    if len(classes) < 2:
        raise DataError(f"{where}: a classifier needs at least 2 class folders, found {len(classes)}")
    return class_order(classes)


def class_order(names: Iterable[str]) -> list[str]:
    """The label order of these class folders: alphabetical, except that CIFAR-10's own folder names keep
    CIFAR-10's label order, so checkpoints agree with torchvision's labels."""
    names = set(names)
    return list(CIFAR10_CLASSES) if names == set(CIFAR10_CLASSES) else sorted(names)


def list_classes(source: str | os.PathLike | None = None) -> list[str] | None:
    """A source's classes in label order, where its folder names tell them without decoding an image: an
    image-folder tree or a zip. None for anything else (a .tar.gz would be decompressed whole to list it)."""
    path = Path(resolve_source(source)).expanduser()
    try:
        if path.is_dir():
            root = _find_folder_root(path)
            train = root / "train" if root else None
            names = {d.name for d in train.iterdir() if d.is_dir() and not d.name.startswith(".")} if train else set()
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = {sp[1] for n in z.namelist() if (sp := _split_path(n)) and sp[0] == "train"}
        else:
            return None
    except OSError:
        return None
    return class_order(names) if names else None


# ---------------------------------------------------------------- the cache

def _to_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    except OSError as e:  # a read-only home still trains, just without the cache
        print(f"warning: could not write the data cache {path}: {e}", file=sys.stderr)


def _from_cache(path: Path, source: str, fingerprint: str) -> Dataset:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return _from_arrays(arrays, source, fingerprint)


def _from_arrays(arrays: dict[str, np.ndarray], source: str, fingerprint: str) -> Dataset:
    def split(s: str) -> Split:
        return Split(torch.from_numpy(arrays[f"{s}_x"]), torch.from_numpy(arrays[f"{s}_y"]).long())

    return Dataset(split("train"), split("test"), [str(c) for c in arrays["classes"]], source, fingerprint)


def _say(verbose: bool, msg: str) -> None:
    if verbose:
        print(msg, file=sys.stderr)


# ---------------------------------------------------------------- batches on the device

def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N,3,H,W) -> float, standardised with CIFAR-10's channel statistics."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    # (x/255 - mean)/std as one multiply-add: a quarter of the passes over the batch, about 4x faster.
    return torch.addcmul(-mean / std, x.float(), 1 / (255 * std))


def _pad(x: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """(B, C, H, W) uint8 padded by `pad` on every side: zeros, or the image mirrored at its edges."""
    if mode == "constant":
        return torch.nn.functional.pad(x, (pad, pad, pad, pad))
    if mode != "reflect":
        raise ValueError(f"unknown padding {mode!r}: constant or reflect")
    # reflection by concatenation: PyTorch's reflect padding has no uint8 kernel
    x = torch.cat([x[..., 1:pad + 1].flip(-1), x, x[..., -pad - 1:-1].flip(-1)], -1)
    return torch.cat([x[..., 1:pad + 1, :].flip(-2), x, x[..., -pad - 1:-1, :].flip(-2)], -2)


def augment(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int = 4,
            mode: str = "constant") -> torch.Tensor:
    """Random crop of the padded image and horizontal flip, for a whole uint8 batch at once.

    offsets: (B, 2) ints in [0, 2*pad]; flips: (B,) bools. With zero padding, the same result as
    torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip applied per image, with no
    per-image Python; "reflect" pads with the mirrored edge instead of black, as fast CIFAR trainers do.
    """
    b, c, h, w = x.shape
    hp, wp = h + 2 * pad, w + 2 * pad
    padded = _pad(x, pad, mode).reshape(b, c, hp * wp)
    # One gather over each padded image's flattened pixels, with one index per output pixel shared by the
    # channels: about 4x faster on the CPU than indexing with four broadcast index tensors.
    cols = torch.arange(w, device=x.device)
    cols = torch.where(flips[:, None], cols.flip(0), cols).view(b, 1, w)
    rows = (torch.arange(h, device=x.device) * wp).view(1, h, 1)
    index = (offsets[:, 0] * wp + offsets[:, 1]).view(b, 1, 1) + rows + cols  # (B, H, W) into hp*wp
    return padded.gather(2, index.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)


def zoom_out(x: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Each uint8 image shrunk by its factor in `scales` (1: unchanged; 0.75: to 24 pixels across), centred
    with its edges reflected around it: the object smaller in the frame, as in a photo taken from further off."""
    theta = torch.zeros(len(x), 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scales
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection",
                                          align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def cut_out(x: torch.Tensor, centres: torch.Tensor, side: int) -> torch.Tensor:
    """Each normalised image with a `side`-pixel square around its (row, col) in `centres` set to zero, the
    data's mean; a square near an edge is clipped by it (Cutout: DeVries & Taylor 2017)."""
    h, w = x.shape[-2:]
    top_left = (centres - side // 2).view(len(x), 2, 1)
    rows = torch.arange(h, device=x.device).view(1, h) - top_left[:, 0]
    cols = torch.arange(w, device=x.device).view(1, w) - top_left[:, 1]
    inside = ((rows >= 0) & (rows < side))[:, :, None] & ((cols >= 0) & (cols < side))[:, None, :]
    return x.masked_fill(inside[:, None], 0.0)


class DeviceLoader:
    """A split moved to the device once; batches are index gathers there, augmentation included.

    With `world > 1` (DDP), every rank walks the same global permutation and takes its own
    disjoint slice of each global batch, so `batch_size` is the global batch. With `soft` (a row per
    image: the teachers' fixed answers), each batch also carries its images' rows: (x, y, soft).
    """

    def __init__(self, split: Split, batch_size: int, device: torch.device | str, *, train: bool,
                 augment: bool = False, pad: int = 4, pad_mode: str = "constant", flip: str = "random",
                 zoom: float = 0.0, cutout: int = 0, rank: int = 0, world: int = 1,
                 channels_last: bool = False, soft: torch.Tensor | None = None) -> None:
        self.x = split.x.to(device)
        self.y = split.y.to(device)
        self.soft = soft.to(device) if soft is not None else None
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.train, self.augment = train, augment and train
        if flip not in ("random", "alternate"):
            raise ValueError(f"unknown flip {flip!r}: random or alternate")
        self.pad, self.pad_mode, self.flip, self.zoom, self.cutout = pad, pad_mode, flip, zoom, cutout
        self.rank, self.world = rank, world
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def batches(self, epoch: int = 0, seed: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """Batches of one epoch, from step `start` on; the epoch's order depends only on (seed, epoch)."""
        n = len(self.y)
        if self.train:
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=g)
            offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=g)
            flips = torch.rand(n, generator=g) < 0.5
            if self.flip == "alternate":  # a fixed random half mirrored in even epochs, the other half in odd ones
                first = torch.rand(n, generator=torch.Generator().manual_seed(seed * 1_000_003 - 1)) < 0.5
                flips = first[order] ^ bool(epoch % 2)
            # drawn only when asked for, so recipes without it keep their exact sequence of crops and flips
            scales = 1 - self.zoom * torch.rand(n, generator=g) if self.zoom else None
            centres = torch.randint(0, self.x.shape[-1], (n, 2), generator=g) if self.cutout else None
            order, offsets, flips = order.to(self.device), offsets.to(self.device), flips.to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        for step in range(start, len(self)):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size][self.rank::self.world]
            xb = self.x[idx]
            if self.augment:
                sel = slice(step * self.batch_size, (step + 1) * self.batch_size)
                xb = augment(xb, offsets[sel][self.rank::self.world], flips[sel][self.rank::self.world],
                             self.pad, self.pad_mode)
                if scales is not None:
                    xb = zoom_out(xb, scales[sel][self.rank::self.world].to(self.device))
            xb = normalize(xb)
            if self.augment and centres is not None:
                xb = cut_out(xb, centres[sel][self.rank::self.world].to(self.device), self.cutout)
            xb = xb.contiguous(memory_format=self.memory_format)
            yield (xb, self.y[idx]) if self.soft is None else (xb, self.y[idx], self.soft[idx])
