"""The `analyze` command's results: analysis.json beside each checkpoint, and one joint file. Each names the
checkpoint it was measured on (its record's key: store/record.py), so the page can say when it is stale.

checkpoints/<key>/analysis.json  one network: cost, gradient norms, quality on the test split and on real
                                 photos, SE means
checkpoints/analysis.json         what needs all four at once: the images they disagree on (as small PNGs)
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..store.fileio import read_json_or, write_json

ANALYSIS_FILE = "analysis.json"
VERSION = 1


def read(path: str | Path) -> dict | None:
    """The stored results in a folder (or at a file path), or None when absent, unreadable or of another version."""
    path = Path(path)
    path = path / ANALYSIS_FILE if path.is_dir() else path
    record = read_json_or(path, dict)
    return record if record.get("version") == VERSION and _well_formed(record) else None


def _numbers(d) -> bool:
    return isinstance(d, dict) and all(isinstance(v, (int, float)) for v in d.values())


def _well_formed(record: dict) -> bool:
    """The fields the page reads have the types it reads them as; a damaged or hand-edited file counts as absent."""
    try:
        grads = record.get("gradients", {})
        checks = [isinstance(grads, dict), all(_numbers(grads[m]) for m in ("init", "trained") if m in grads),
                  _numbers(record.get("cost", {}).get("latency_s", {}))]
        for q in (record[k] for k in ("quality", "quality_photos") if k in record):
            checks += [isinstance(q["accuracy"], (int, float)), isinstance(q["ece"], (int, float)),
                       isinstance(q["overconfidence"], (int, float)),
                       all(isinstance(v, (int, float)) for v in q["per_class"]),
                       all(isinstance(n, int) for row in q["confusion"] for n in row),
                       all(_numbers(b) for b in q["reliability"])]
        if "se_class_means" in record:
            checks += [all(isinstance(v, (int, float)) for m in record["se_class_means"].values() for row in m
                           for v in row)]
        if "disagreement" in record:
            checks += [all(isinstance(i["png"], str) and isinstance(i["label"], int) and
                           all(isinstance(p["class"], int) for p in i["predictions"].values())
                           for i in record["disagreement"])]
        return all(checks)
    except (AttributeError, KeyError, TypeError):
        return False


def write(folder: str | Path, record: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / ANALYSIS_FILE, {"version": VERSION} | record)
    return folder / ANALYSIS_FILE


def png_b64(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


def png_pixels(text: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(text))) as img:
        return np.asarray(img.convert("RGB"))
