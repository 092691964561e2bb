"""Where the `analyze` command's results live: analysis.json beside each checkpoint, and one joint file.

checkpoints/<key>/analysis.json  one network: cost, gradient norms, quality on the test split, SE means
checkpoints/analysis.json         what needs all four at once: the images they disagree on (as small PNGs)
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..fileio import read_json, write_json

ANALYSIS_FILE = "analysis.json"
VERSION = 1


def read(path: str | Path) -> dict | None:
    """The stored results in a folder (or at a file path), or None when absent, unreadable or of another version."""
    path = Path(path)
    path = path / ANALYSIS_FILE if path.is_dir() else path
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("version") == VERSION else None


def write(folder: str | Path, record: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / ANALYSIS_FILE, {"version": VERSION} | record)
    return folder / ANALYSIS_FILE


def stamp(config: dict | None) -> dict | None:
    """What identifies the checkpoint a record was computed from."""
    return {"date": config.get("date"), "epochs": config.get("epochs")} if config else None


def is_stale(record: dict | None, config: dict | None) -> bool:
    """True when the record was computed from another checkpoint than the one now in the folder."""
    return bool(record) and record.get("checkpoint") != stamp(config)


def png_b64(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


def png_pixels(text: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(text))) as img:
        return np.asarray(img.convert("RGB"))
