"""Every CIFARNETS_* environment variable is read here, and nowhere else; this module imports nothing of ours.

Folders default to places beside app.py (so `streamlit run app.py` works from any directory); each
variable moves one of them, which is also how the tests point the app at a tmp dir.

CIFARNETS_CHECKPOINTS  the shipped checkpoints (default checkpoints/)
CIFARNETS_RUNS         the app's training runs (default runs/)
CIFARNETS_DEVICE       the device the app classifies on (default auto: CUDA, then MPS, then the CPU)
CIFARNETS_DATA         the training data when --data is not given (default ./data)
CIFARNETS_CACHE        decoded data sets (default ~/.cache/cifarnets)
CIFARNETS_HUB          networks the app loads from the Hugging Face Hub (docs/hub.md)
CIFARNETS_BF16=0       train in fp32 even where the hardware has bf16
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CHECKPOINTS = "checkpoints"
DEFAULT_RUNS = "runs"
DEFAULT_DATA = "./data"  # torchvision downloads CIFAR-10 here when online


def project_root() -> Path:
    """The folder holding app.py: the repository in a checkout, else the working directory."""
    repo = Path(__file__).resolve().parents[1]
    return repo if (repo / "app.py").exists() else Path.cwd()


def checkpoints_dir() -> Path:
    return Path(os.environ.get("CIFARNETS_CHECKPOINTS") or project_root() / DEFAULT_CHECKPOINTS)


def runs_dir() -> Path:
    return Path(os.environ.get("CIFARNETS_RUNS") or project_root() / DEFAULT_RUNS)


def app_device() -> str:
    return os.environ.get("CIFARNETS_DEVICE") or "auto"


def data_env() -> str:
    """$CIFARNETS_DATA, or "" when unset."""
    return os.environ.get("CIFARNETS_DATA", "")


def cache_dir() -> Path:
    return Path(os.environ.get("CIFARNETS_CACHE") or Path.home() / ".cache" / "cifarnets")


def hub_spec() -> str:
    """$CIFARNETS_HUB, or "" when unset."""
    return os.environ.get("CIFARNETS_HUB", "")


def bf16_allowed() -> bool:
    return os.environ.get("CIFARNETS_BF16", "1") != "0"
