"""Builders for the hostile-input and fault tests: tiny data, throwaway checkpoints, crafted files.

Everything is generated on the fly; no binary fixture is shipped.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import struct
import sys
import threading
import zlib
from pathlib import Path

import torch
from conftest import make_image_folder
from PIL import Image

from cifarnets.models import KEYS, build
from cifarnets.store import checkpoints as ckpt

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("cat", "dog")


# ---------------------------------------------------------------- data and checkpoints

def image_folder(root: Path, n_train: int = 32, n_test: int = 8, size: int = 8, seed: int = 0) -> Path:
    """train/{cat,dog}/*.png and test/{cat,dog}/*.png: tiny, learnable pictures (conftest's generator)."""
    return make_image_folder(root, CLASSES, n_train, n_test, size, seed)


def write_checkpoint(folder: Path, key: str, classes=None, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised but complete checkpoint folder, as discover() expects it."""
    classes = list(classes or ckpt.CIFAR10_CLASSES)
    torch.manual_seed(seed)
    model = build(key, num_classes=len(classes)).eval()
    folder.mkdir(parents=True, exist_ok=True)
    ckpt.write_weights(folder / ckpt.MODEL_FILE, model)
    (folder / ckpt.CONFIG_FILE).write_text(json.dumps({"model": key, "classes": classes, "epochs": 0,
                                                       "metrics": {"test_acc": 0.1}}))
    return model


def write_all_checkpoints(root: Path, classes=None) -> Path:
    for i, key in enumerate(KEYS):
        write_checkpoint(root / key, key, classes, seed=i)
    return root


# ---------------------------------------------------------------- a pickle that acts when unpickled

class Payload:
    """Unpickling this creates `marker`: if the marker ever exists, something unpickled user data."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ---------------------------------------------------------------- crafted image files

def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_raw(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand: for what Pillow cannot write (16-bit RGB) or must not (a header-only bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A header claiming width x height 1-bit pixels, with one tiny IDAT: a few hundred bytes on disk."""
    return png_raw(width, height, 1, 0, b"\x00" * 64)


def gif_bomb(width: int = 65_535, height: int = 65_535) -> bytes:
    """A GIF whose logical screen and only frame are width x height."""
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00\x3b")


# ---------------------------------------------------------------- the CLI in a child process

def cli_process(args: list[str], cache: Path, log: Path) -> multiprocessing.Process:
    """`python -m cifarnets ARGS` in a process of its own, started from a fork server that has imported
    torch and cifarnets once: a fresh interpreter would spend seconds importing torch per start, and
    the kill tests start many. Its stdout and stderr go to `log`; `.kill()` sends SIGKILL."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "torchvision", "cifarnets.cli", "cifarnets.training.fit"])
    proc = ctx.Process(target=_cli_main, args=(args, str(cache), str(log)), daemon=True)
    proc.start()
    return proc


def _cli_main(args: list[str], cache: str, log: str) -> None:
    os.environ["CIFARNETS_CACHE"] = cache
    os.environ.pop("CIFARNETS_DATA", None)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    torch.set_num_threads(1)  # several of these may run beside pytest on a small machine
    from tqdm import tqdm

    # tqdm's default lock is a multiprocessing semaphore, which a SIGKILLed process cannot give back:
    # the resource tracker would then warn about each one at exit
    tqdm.set_lock(threading.RLock())

    from cifarnets import cli

    sys.exit(cli.main(args))
