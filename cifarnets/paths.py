"""Every CIFARNETS_* environment variable is read here, and nowhere else; this module imports nothing of ours.

Folders default to places beside app.py (so `streamlit run app.py` works from any directory); each
variable moves one of them, which is also how the tests point the app at a tmp dir.

CIFARNETS_CHECKPOINTS  the shipped checkpoints (default checkpoints/)
CIFARNETS_RUNS         the app's training runs (default runs/)
CIFARNETS_DEVICE       the device the app classifies on (default auto: CUDA, then MPS, then the CPU)
CIFARNETS_DATA         the training data when --data is not given (default ./data)
CIFARNETS_PHOTOS       real photos of the ten classes, FOLDER/<class>/<picture>, for `photos` and `calibrate`;
                       several folders separated by os.pathsep (default: the development set, photos-real and
                       photos-more in ../shared/data/ beside the project, where they are)
CIFARNETS_CACHE        decoded data sets (default ~/.cache/cifarnets)
CIFARNETS_HUB          networks the app loads from the Hugging Face Hub (docs/hub.md)
CIFARNETS_BF16=0       train in fp32 even where the hardware has bf16
CIFARNETS_DEADLINE     set by the app, not by people: when (Unix time) a public run's trainer stops itself
CIFARNETS_ENGINE       redis://... : the training queue's Redis, whose workers the operator starts (`python -m
                       cifarnets worker`); default: the app starts its own in runs/.engine, with its workers
CIFARNETS_WORKERS      locally, the workers the app starts: runs that train at once (default 4)
CIFARNETS_WORKER_CPUS  the cores the app's workers train on, e.g. 1-3 (default: in public mode all but the first,
                       which the pages keep, on a machine of two or more; locally all)
CIFARNETS_PUBLIC=1     public mode, for a deployment anyone can open (docs/deploy.md); its limits:
  CIFARNETS_MAX_TRAINERS   the workers the app starts: runs that train at once (default 1; 0: no training)
  CIFARNETS_PER_VISITOR    runs a visitor may have waiting or training at once (default 1)
  CIFARNETS_MAX_EPOCHS     epochs a visitor may ask for (default 10)
  CIFARNETS_MAX_BATCH      the largest batch size (default 256)
  CIFARNETS_MIN_BATCH      the smallest batch size (default 32, or the largest if that is smaller)
  CIFARNETS_MAX_RUN_MIN    the longest run or race a visitor may start, in minutes by the app's estimate (default 30)
  CIFARNETS_OVERRUN        a run or race is stopped once it has run this many times its estimate, or 10 min if
                           that is longer (default 3)
  CIFARNETS_RUN_HOURS      hours a finished or stopped run is kept (default 2)
  CIFARNETS_RUNS_MB        the runs folder's size past which the oldest runs go (default 200)
  CIFARNETS_UPLOAD_MB      the largest file a visitor uploads, on any page (default 10)
  CIFARNETS_MAX_IMAGES     files a visitor uploads at once (default 20)
  CIFARNETS_MAX_MEGAPIXELS the largest picture, in millions of pixels as decoded (default 16)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


# The development set (docs/photos.md): 783 real photos of the ten classes, in the shared data folder beside the
# project; every choice made on photos is made on them. PHOTOS_OTHER: photos of none of the ten classes.
PHOTO_FOLDERS = ("photos-real", "photos-more")
PHOTOS_OTHER = "photos-other"


def shared_data() -> Path:
    """../shared/data beside the project: the data sets no checkout carries (never committed)."""
    return project_root().parent / "shared" / "data"


def photos_folders() -> list[Path]:
    """The folders of real photos of the ten classes (`photos`, `calibrate`): those $CIFARNETS_PHOTOS names
    (several separated by os.pathsep), else those of the development set that are there; [] when neither."""
    named = [Path(f) for f in os.environ.get("CIFARNETS_PHOTOS", "").split(os.pathsep) if f]
    return named or [f for f in (shared_data() / name for name in PHOTO_FOLDERS) if f.is_dir()]


def other_photos_folder() -> Path | None:
    """The photos of none of the ten classes the unfamiliar-input check must flag, where they are."""
    folder = shared_data() / PHOTOS_OTHER
    return folder if folder.is_dir() else None


def cache_dir() -> Path:
    return Path(os.environ.get("CIFARNETS_CACHE") or Path.home() / ".cache" / "cifarnets")


def hub_spec() -> str:
    """$CIFARNETS_HUB, or "" when unset."""
    return os.environ.get("CIFARNETS_HUB", "")


def bf16_allowed() -> bool:
    return os.environ.get("CIFARNETS_BF16", "1") != "0"


def public() -> bool:
    return os.environ.get("CIFARNETS_PUBLIC", "0") not in ("", "0")


@dataclass(frozen=True)
class PublicLimits:
    """What a visitor may do in public mode; each field has its CIFARNETS_* variable (above)."""

    trainers: int = 1  # workers the app starts for its queue (0: training off)
    per_visitor: int = 1  # runs a visitor may have waiting or training at once
    epochs: int = 10
    batch_size: int = 256
    min_batch: int = 32  # below it a step's fixed cost dominates: per image, batch 1 costs 4x to 15x batch 32 on a CPU
    run_min: float = 30.0
    overrun: float = 3.0
    run_hours: float = 2.0
    runs_mb: float = 200.0
    upload_mb: float = 10.0
    images: int = 20
    megapixels: float = 16.0


_LIMIT_VARS = {"trainers": "CIFARNETS_MAX_TRAINERS", "per_visitor": "CIFARNETS_PER_VISITOR",
               "epochs": "CIFARNETS_MAX_EPOCHS",
               "batch_size": "CIFARNETS_MAX_BATCH", "min_batch": "CIFARNETS_MIN_BATCH",
               "run_min": "CIFARNETS_MAX_RUN_MIN", "overrun": "CIFARNETS_OVERRUN", "run_hours": "CIFARNETS_RUN_HOURS",
               "runs_mb": "CIFARNETS_RUNS_MB", "upload_mb": "CIFARNETS_UPLOAD_MB", "images": "CIFARNETS_MAX_IMAGES",
               "megapixels": "CIFARNETS_MAX_MEGAPIXELS"}


def public_limits() -> PublicLimits:
    """The public mode's limits, each from its variable or its default; a value that is not a positive number,
    or a smallest batch above the largest, raises ValueError naming the variable."""
    given = {}
    for name, var in _LIMIT_VARS.items():
        text = os.environ.get(var, "").strip()
        if not text:
            continue
        kind = type(getattr(PublicLimits, name))
        least = 0 if name == "trainers" else 1  # 0 trainers: training off
        try:
            value = kind(text)
        except ValueError:
            value = -1
        if not (value > 0 if kind is float else value >= least):
            raise ValueError(f"{var} must be a {'whole ' if kind is int else ''}number "
                             f"{'of 0 or more' if least == 0 else 'above 0'}, not {text!r}")
        given[name] = value
    largest = given.get("batch_size", PublicLimits.batch_size)
    if given.get("min_batch", 0) > largest:
        raise ValueError(f"CIFARNETS_MIN_BATCH must not be above CIFARNETS_MAX_BATCH ({largest}), not "
                         f"{given['min_batch']}")
    given.setdefault("min_batch", min(PublicLimits.min_batch, largest))  # an operator's small largest batch wins
    return PublicLimits(**given)


def run_deadline() -> float | None:
    """$CIFARNETS_DEADLINE as a time (seconds since the epoch), or None when unset or not a number."""
    try:
        return float(os.environ["CIFARNETS_DEADLINE"])
    except (KeyError, ValueError):
        return None
