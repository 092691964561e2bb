"""The `stress` command's measurements: checkpoints/stress.json, beside the checkpoint folders.

One small file for all the networks, because the transfer matrix needs all four at once. Each network's
numbers name the checkpoint they were measured on (its record's key: store/record.py), so the page can
say when a network in use is not the one measured.
"""

from __future__ import annotations

from pathlib import Path

from ..store.fileio import read_json, write_json

STRESS_FILE = "stress.json"
VERSION = 1


def read(path: str | Path) -> dict | None:
    """The stored record in a folder (or at a file path); None when absent, unreadable, of another version or
    malformed (a damaged or hand-edited file counts as absent)."""
    path = Path(path)
    path = path / STRESS_FILE if path.is_dir() else path
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("version") != VERSION:
        return None
    return record if _well_formed(record) else None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1


def _well_formed(record: dict) -> bool:
    try:
        nets = record["networks"]
        checks = [_number(n["clean"]) and all(_number(a) for rows in n["corruptions"].values() for a in rows)
                  for n in nets.values()]
        if "transfer" in record:
            t = record["transfer"]
            checks += [_number(r) for by_eps in t["fooled"].values() for row in by_eps.values() for r in row.values()]
            checks += [_number(a) for row in t["robust"].values() for a in row.values()]
        return bool(nets) and all(checks)
    except (AttributeError, KeyError, TypeError):
        return False


def write(folder: str | Path, record: dict) -> Path:
    path = Path(folder) / STRESS_FILE
    write_json(path, {"version": VERSION} | record)
    return path
