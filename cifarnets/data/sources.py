"""CIFAR-10 (or a user's own image folders) -> uint8 tensors, decoded once and cached. batching.py turns
them into batches on the device.

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

from .. import CIFAR10_CLASSES
from ..errors import UserError
from ..paths import DEFAULT_DATA, cache_dir, data_env
from ..store.fileio import atomic_path
from .images import PREPARATION, ImageError, decode_image, to_array

SPLITS = ("train", "test")
CACHE_VERSION = 1  # bump when the decoded layout changes, so old caches are ignored


class DataError(UserError):
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

    def provenance(self) -> dict:
        """What the data was, for a config.json or a measurement's record: the data set's name (its file or
        folder name, never the path: a run's zip travels to whoever downloads it) and its content's hash."""
        return {"source": Path(self.source).name or self.source, "sha256": self.fingerprint,
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
    # A folder's full-size pictures are cached as prepared (to_array): a new preparation is a new cache, never the
    # old one's pixels. The preparation's name goes in as a hash, as the fingerprint does.
    prepared = hashlib.sha256(PREPARATION.encode()).hexdigest()[:8]
    cached = cache_dir() / f"{fingerprint[:32]}-v{CACHE_VERSION}-{prepared}.npz"
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


def present(data: str | os.PathLike | None = None) -> bool:
    """Whether `data` (resolved as load() resolves it) can be loaded here without a download: a look at the
    file or folder, nothing decoded."""
    source = resolve_source(data)
    try:
        _identify(Path(source).expanduser().resolve(), source, download=False)
    except DataError:
        return False
    return True


def _missing_data_message(given: str) -> str:
    return (f"no CIFAR-10 data in {given}: put an image-folder tree there (train/<class>/*, test/<class>/*) "
            f"or an archive of one and pass --data PATH (or set CIFARNETS_DATA=PATH), or run once online "
            f"so torchvision can download CIFAR-10 into {DEFAULT_DATA}")


CIFAR10_HOST = "www.cs.toronto.edu"  # where torchvision downloads CIFAR-10 from


def can_download(timeout_s: float = 2.0) -> bool:
    """Whether CIFAR-10's download server answers from here (a connection, nothing fetched)."""
    import socket

    try:
        socket.create_connection((CIFAR10_HOST, 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


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
