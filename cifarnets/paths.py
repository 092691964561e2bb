"""Where the app finds the shipped checkpoints and keeps the user's training runs.

Both default to folders beside app.py (so `streamlit run app.py` works from any directory) and
can be moved with an environment variable, which is also how the tests point the app at a tmp dir.
"""

from __future__ import annotations

import os
from pathlib import Path

from .checkpoints import DEFAULT_DIR

CHECKPOINTS_ENV = "CIFARNETS_CHECKPOINTS"
RUNS_ENV = "CIFARNETS_RUNS"
DEVICE_ENV = "CIFARNETS_DEVICE"


def project_root() -> Path:
    """The folder holding app.py: the repository in a checkout, else the working directory."""
    repo = Path(__file__).resolve().parents[1]
    return repo if (repo / "app.py").exists() else Path.cwd()


def checkpoints_dir() -> Path:
    return Path(os.environ.get(CHECKPOINTS_ENV) or project_root() / DEFAULT_DIR)


def runs_dir() -> Path:
    return Path(os.environ.get(RUNS_ENV) or project_root() / "runs")


def app_device() -> str:
    """The device the app classifies on: auto (CUDA, then MPS, then CPU) unless CIFARNETS_DEVICE says otherwise."""
    return os.environ.get(DEVICE_ENV) or "auto"
