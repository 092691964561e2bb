"""Any image -> the 32x32 tensor the networks see -> every network's probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoints import Entry
from .data import normalize
from .images import MAX_BYTES, ImageError, decode_image, to_array


@dataclass
class Prepared:
    name: str
    image: Image.Image  # upright RGB, full size: what the user gave
    pixels: np.ndarray  # (32, 32, 3) uint8: what the networks see


def prepare(raw: bytes, name: str) -> Prepared:
    """Decode and shrink one uploaded file; raises ImageError with a one-line reason."""
    image = decode_image(raw, name)
    return Prepared(name, image, to_array(image))


def read_file(path: str | Path, max_bytes: int = MAX_BYTES) -> bytes:
    path = Path(path)
    try:
        if path.stat().st_size > max_bytes:
            raise ImageError(f"{path.name} is {path.stat().st_size / 2**20:.1f} MB, "
                             f"over the {max_bytes / 2**20:.0f} MB limit")
        return path.read_bytes()
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image") from None
    except FileNotFoundError:
        raise ImageError(f"{path} does not exist") from None
    except OSError as e:
        raise ImageError(f"{path} cannot be read ({e.strerror})") from None


def batch(pixels: list[np.ndarray]) -> torch.Tensor:
    """(N, 3, 32, 32) normalised float tensor from 32x32x3 uint8 arrays."""
    x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    return normalize(x)


@torch.no_grad()
def probabilities(entries: dict[str, Entry], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Softmax output (N, classes) of every loaded network; networks without a checkpoint are left out."""
    out = {}
    for key, entry in entries.items():
        if entry.ok:
            device = next(entry.model.parameters()).device
            out[key] = torch.softmax(entry.model(x.to(device)).float(), dim=1).cpu()
    return out


def top_k(probs: torch.Tensor, classes: list[str], k: int = 5) -> list[tuple[str, float]]:
    p, i = probs.topk(min(k, len(classes)))
    return [(classes[j], round(float(q), 4)) for q, j in zip(p, i)]


def predict_files(paths: list[str], entries: dict[str, Entry]) -> list[dict]:
    """One result per path, in order: predictions of every loaded network, or the reason it failed."""
    results: list[dict] = []
    ready: list[tuple[int, Prepared]] = []
    for path in paths:
        try:
            ready.append((len(results), prepare(read_file(path), Path(path).name)))
            results.append({"file": path})
        except ImageError as e:
            results.append({"file": path, "error": str(e)})
    if ready:
        probs = probabilities(entries, batch([p.pixels for _, p in ready]))
        for row, (i, _) in enumerate(ready):
            results[i]["predictions"] = {
                key: {"label": (top := top_k(p[row], entries[key].classes))[0][0], "prob": top[0][1], "top5": top}
                for key, p in probs.items()}
    return results
