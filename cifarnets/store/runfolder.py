"""What a run folder and a checkpoint folder hold, by name, and whether the process writing one is alive.

No torch here: the app's job runner watches runs through these files without loading the trainer.
A checkpoint folder holds the public files; a run folder holds them too, beside the private resume
state, the live status and the lock.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import UserError
from .fileio import read_json_or, write_json

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
REPORT_HISTORY_FILE = "report_history.json"
UNFAMILIAR_FILE = "unfamiliar.safetensors"  # the statistics the unfamiliar-input check compares with
STATE_FILE = "train_state.pt"  # private: weights, optimizer, position, history (never shipped or pushed)
STATUS_FILE = "status.json"
LOCK_FILE = ".lock"


def read_history(folder: str | Path, name: str = HISTORY_FILE) -> list[dict]:
    """The per-epoch rows, or [] when the file is absent or unreadable."""
    return [r for r in read_json_or(Path(folder) / name, list) if isinstance(r, dict)]


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


class TrainingError(UserError):
    """A run that cannot go on, and why, in one line."""


class RunLock:
    """One run per folder. A lock whose process is gone (killed run) is stale and taken over."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE

    def __enter__(self) -> RunLock:
        # The lock appears with our pid already in it (written aside, then hard-linked into place): a run
        # that reads it a moment later must never see an empty file and take it for a stale lock.
        fd, pidfile = tempfile.mkstemp(prefix=f"{LOCK_FILE}.", suffix=".pid", dir=self.path.parent)
        try:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            for _ in range(2):
                try:
                    self._place(pidfile)
                except FileExistsError:
                    pid = _read_pid(self.path)
                    if pid and pid != os.getpid() and process_alive(pid):
                        raise TrainingError(f"another run (pid {pid}) is writing to {self.path.parent}; "
                                            "wait for it, cancel it, or choose another --out") from None
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                # A killed run leaves the temporary files of the writes it was in (never the files
                # themselves: those are renamed into place whole). Only ours: others write here too.
                for name in (STATE_FILE, STATUS_FILE, MODEL_FILE, CONFIG_FILE, HISTORY_FILE):
                    for tmp in self.path.parent.glob(f".{name}.*.tmp"):
                        tmp.unlink(missing_ok=True)
                return self
        finally:
            os.unlink(pidfile)
        raise TrainingError(f"could not take the lock {self.path}")

    def _place(self, pidfile: str) -> None:
        """Create the lock holding our pid, or raise FileExistsError."""
        try:
            os.link(pidfile, self.path)
        except FileExistsError:
            raise
        except OSError:  # no hard links on this file system (FAT, some network shares): create, then write
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))

    def __exit__(self, *exc) -> None:
        if _read_pid(self.path) == os.getpid():
            self.path.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _count(value) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number == number and abs(number) != float("inf") else None


def _text(value) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class RunStatus:
    """status.json, typed: what the trainer (Status below) last said about its run. Defined once, here beside its
    writer; every reader takes it from read(), which gives a field missing, of the wrong type or in a damaged file
    (an older version's, one half-written) its default. `epoch` counts the epochs begun (1-based) while running
    or testing, the epochs done once stopped or between epochs (`step` 0)."""

    state: str = ""  # running | testing | stopped | finished | failed; "" before the trainer wrote any
    model: str = ""
    recipe: str = ""
    device: str = ""
    epoch: int = 0
    epochs: int | None = None
    step: int = 0
    steps: int | None = None
    loss: float | None = None  # the running loss and accuracy of the epoch in progress
    acc: float | None = None
    images_per_s: float | None = None
    eta_s: float | None = None  # seconds to the end of the run, by the trainer's own pace
    test_acc: float | None = None  # the last epoch's, on the test split
    error: str = ""  # why it failed, in one line
    pid: int | None = None
    updated: float | None = None  # time.time() of the write
    written: bool = False  # whether the trainer (or its race) has written one at all

    @classmethod
    def from_json(cls, data) -> RunStatus:
        if not isinstance(data, dict) or not data:
            return cls()
        counts = {k: _count(data.get(k)) for k in ("epochs", "steps", "pid")}
        numbers = {k: _number(data.get(k)) for k in ("loss", "acc", "images_per_s", "eta_s", "test_acc", "updated")}
        texts = {k: _text(data.get(k)) for k in ("state", "model", "recipe", "device", "error")}
        return cls(**texts, **counts, **numbers, epoch=_count(data.get("epoch")) or 0,
                   step=_count(data.get("step")) or 0, written=True)

    @classmethod
    def read(cls, folder: str | Path) -> RunStatus:
        return cls.from_json(read_json_or(Path(folder) / STATUS_FILE, dict))


STATUS_FIELDS = frozenset(f.name for f in fields(RunStatus)) - {"written"}


class Status:
    """status.json in the run folder: what a watcher (the app) polls, RunStatus's fields. Throttled to one write a
    second."""

    def __init__(self, folder: Path, enabled: bool) -> None:
        self.path, self.enabled, self.last, self.data = folder / STATUS_FILE, enabled, 0.0, {}

    def update(self, force: bool = False, **fields) -> None:
        unknown = set(fields) - STATUS_FIELDS
        if unknown:
            raise TypeError(f"status.json has no field {', '.join(sorted(unknown))} (RunStatus)")
        self.data.update(fields, updated=time.time(), pid=os.getpid())
        if self.enabled and (force or time.monotonic() - self.last >= 1.0):
            write_json(self.path, self.data)
            self.last = time.monotonic()
