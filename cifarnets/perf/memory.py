"""python -m cifarnets bench --memory: what a small file can cost the server to decode, as peak memory.

A PNG of one flat colour compresses to almost nothing, whatever its size in pixels: a 267 KB file can hold
64 million pixels. Each picture below goes through `python -m cifarnets predict FILE --json` in a fresh
process, beside a 64x64 picture of the same kind through the same command in its own fresh process; the
figure is the difference of the two processes' peak resident memory (the kernel's count, from wait4), so
torch, the networks and the interpreter cancel out. Locally and in public mode (CIFARNETS_PUBLIC=1), where
the pixel cap is lower and such a picture is refused before it is decoded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..device import machine_name

SIDE = 7999  # just under the local cap of 64 million pixels
# name -> (Pillow mode, how it is saved): the kinds a decoder copies most, each a small file when flat
PICTURES = {"RGBA PNG": ("RGBA", "PNG"), "palette PNG": ("P", "PNG"), "16-bit grey PNG": ("I;16", "PNG"),
            "RGB PNG": ("RGB", "PNG")}


def write_pictures(folder: Path, side: int = SIDE) -> dict[str, tuple[Path, Path]]:
    """{kind: (the large picture, its 64x64 counterpart)}: flat colour with a patch of noise, so each
    decoder does real work and the file stays small."""
    rng = np.random.default_rng(0)
    made = {}
    for kind, (mode, fmt) in PICTURES.items():
        pair = []
        for size in (side, 64):
            img = Image.new(mode, (size, size), 200 if mode in ("P", "I;16") else (200, 30, 30, 128)[:len(mode)])
            noise = Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8), "L").convert(mode)
            img.paste(noise, (8, 8))
            path = folder / f"{kind.replace(' ', '-')}-{size}.{fmt.lower()}"
            img.save(path, fmt, optimize=True)
            pair.append(path)
        made[kind] = (pair[0], pair[1])
    return made


def peak_mb(path: Path, public: bool) -> tuple[float, bool]:
    """(peak resident MB of `predict` on `path` in a fresh process, whether it was answered)."""
    env = dict(os.environ, CIFARNETS_PUBLIC="1" if public else "0")
    with subprocess.Popen([sys.executable, "-m", "cifarnets", "predict", str(path), "--json", "--device", "cpu"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as child:
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, b'"predictions"' in out


def measure(side: int = SIDE) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        pictures = write_pictures(Path(tmp), side)
        rows = {}
        for kind, (large, small) in pictures.items():
            for public in (False, True):
                big_mb, answered = peak_mb(large, public)
                small_mb, _ = peak_mb(small, public)
                rows[f"{kind}, {'public' if public else 'local'}"] = {
                    "file_kb": round(large.stat().st_size / 1024), "pixels": side * side,
                    "peak_mb": round(big_mb), "peak_mb_64x64": round(small_mb),
                    "above_64x64_mb": round(big_mb - small_mb), "answered": answered}
    return {"pictures": rows, "device": machine_name(torch.device("cpu")), "side": side}


def table(result: dict) -> str:
    lines = [f"predict's peak memory on a {result['side']}x{result['side']} picture, against a 64x64 one "
             f"({result['device']})", f"{'picture':<28} {'file':>7} {'peak':>8} {'64x64':>8} {'above':>8}  answered"]
    for name, r in result["pictures"].items():
        lines.append(f"{name:<28} {r['file_kb']:>5}KB {r['peak_mb']:>6}MB {r['peak_mb_64x64']:>6}MB "
                     f"{r['above_64x64_mb']:>6}MB  {'yes' if r['answered'] else 'refused'}")
    return "\n".join(lines)
