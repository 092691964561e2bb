"""What a run folder and a checkpoint folder hold, by name, and whether the process writing one is alive.

No torch here: the app's job runner watches runs through these files without loading the trainer.
A checkpoint folder holds the public files; a run folder holds them too, beside the private resume
state, the live status and the lock.
"""

from __future__ import annotations

import os
from pathlib import Path

from .fileio import read_json

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
REPORT_HISTORY_FILE = "report_history.json"
STATE_FILE = "train_state.pt"  # private: weights, optimizer, position, history (never shipped or pushed)
STATUS_FILE = "status.json"
LOCK_FILE = ".lock"


def read_history(folder: str | Path, name: str = HISTORY_FILE) -> list[dict]:
    """The per-epoch rows, or [] when the file is absent or unreadable."""
    try:
        rows = read_json(Path(folder) / name)
    except (OSError, ValueError):
        return []
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def process_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie, killed and not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
