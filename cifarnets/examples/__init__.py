"""The example images that ship with the app: a few CIFAR-10 test images and a few real photos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class Example:
    path: Path
    caption: str  # what a person reads in the picker

    @property
    def name(self) -> str:
        return self.path.name


def caption(path: Path) -> str:
    """'cat (CIFAR-10 test image)' for cifar10-test-cat.jpg, 'cat (photo)' for photo-cat.jpg."""
    stem = path.stem
    if stem.startswith("cifar10-test-"):
        return f"{stem.removeprefix('cifar10-test-')} (CIFAR-10 test image)"
    if stem.startswith("photo-"):
        return f"{stem.removeprefix('photo-')} (photo)"
    return stem


def list_examples(folder: Path = FOLDER) -> list[Example]:
    """Photos first (they are the more surprising ones), then the CIFAR-10 images, each group by name."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    files.sort(key=lambda p: (not p.name.startswith("photo-"), p.name))
    return [Example(p, caption(p)) for p in files]


def subject(name: str) -> str | None:
    """What a bundled example shows, from its file name ('frog' for cifar10-test-frog.jpg, 'cat' for
    photo-cat.jpg); None for any other name (an upload, the camera)."""
    example = next((e for e in list_examples() if e.name == name), None)
    return example.caption.split(" (")[0] if example else None
