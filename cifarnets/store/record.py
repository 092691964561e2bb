"""One checkpoint folder's config.json as a typed record, like torchvision's `Weights`: the one place that
reads or writes config.json, the sections stored in it, and the one rule for whether a stored figure is
still this checkpoint's.

A figure (the metrics, the real-photo check, the unfamiliar calibration, analysis.json, stress.json) is
measured on particular weights, with images prepared one way and answers averaged over some views. It
names them by a `Key`; the record knows its own (`CheckpointRecord.key`: the weights file's SHA-256, and
the preparation and views the app answers with now), and `stale` compares the two. A section that is
missing reads as None; one that is damaged or hand-edited reads as None too, and `damaged` tells the two
apart where the app says which.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import CIFAR10_CLASSES
from ..data.images import PREPARATION
from ..errors import UserError
from ..models import KEYS, MODELS
from .fileio import read_json, write_json
from .runfolder import CONFIG_FILE, MODEL_FILE

MAX_CLASSES = 1000  # a config.json asking for a 10**9-way classifier would exhaust memory before failing
METRICS, PHOTOS, UNFAMILIAR = "metrics", "photos", "unfamiliar"  # config.json's measured sections


class CheckpointError(UserError):
    """A checkpoint that cannot be used, and why, in one line."""


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def file_sha256(path: str | Path) -> str | None:
    """The SHA-256 of a file in hex, None when it cannot be read; re-read only when its time or size changes."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    try:
        return _sha256(str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        return None


@functools.lru_cache(maxsize=64)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Key:
    """What a stored figure was computed from. None: not recorded (a record from before the field was kept, or a
    figure that does not depend on it), and then not compared. `trained`: the (date, epochs) analysis.json named
    its checkpoint by before it kept the weights' hash."""

    weights_sha256: str | None = None  # a prefix of at least 16 hex digits compares too (stress.json kept 16)
    preparation: str | None = None
    views: int | None = None
    trained: tuple | None = None

    def as_dict(self) -> dict:
        return {"weights_sha256": self.weights_sha256, "preparation": self.preparation, "views": self.views}

    @classmethod
    def of(cls, stored) -> Key | None:
        """The key a section or a record's "checkpoint" holds, in any form it was ever written in; None when it
        holds none that can be read."""
        if isinstance(stored, str) and len(stored) >= 16:  # stress.json: the first 16 hex digits of the weights'
            return cls(weights_sha256=stored)
        if not isinstance(stored, dict):
            return None
        if "weights_sha256" not in stored and {"date", "epochs"} <= set(stored):  # analysis.json, version 1
            return cls(trained=(stored["date"], stored["epochs"]))
        weights, preparation, views = (stored.get(k) for k in ("weights_sha256", "preparation", "views"))
        if not (weights is None or isinstance(weights, str) and len(weights) >= 16) or \
                not (preparation is None or isinstance(preparation, str)) or \
                not (views is None or isinstance(views, int) and not isinstance(views, bool)):
            return None
        return cls(weights, preparation, views)


@dataclass(frozen=True)
class Metrics:
    """config.json's "metrics": the test split as the app answers it (`evaluate`, and training's last epoch)."""

    test_acc: float
    views: int | None
    raw: dict  # everything stored (per class, confusion, single view, what it was measured on), for display

    @classmethod
    def of(cls, raw) -> Metrics | None:
        if not isinstance(raw, dict) or not _number(raw.get("test_acc")):
            return None
        views = raw.get("views")
        return cls(float(raw["test_acc"]), views if isinstance(views, int) and not isinstance(views, bool) else None,
                   raw)


@dataclass(frozen=True)
class Photos:
    """config.json's "photos": the real-photo check (`photos --write`), class-balanced, with its noise."""

    accuracy: float
    interval: tuple[float, float]
    correct: float
    n: int
    classes: int
    key: Key
    raw: dict

    @classmethod
    def of(cls, raw) -> Photos | None:
        try:
            interval = tuple(float(v) for v in raw["interval"])
            ok = _number(raw["accuracy"]) and len(interval) == 2 and _number(raw["correct"]) and \
                isinstance(raw["n"], int) and isinstance(raw["classes"], int)
        except (KeyError, TypeError, ValueError):
            return None
        key = Key.of(raw)
        if not (ok and key):
            return None
        return cls(float(raw["accuracy"]), interval, raw["correct"], raw["n"], raw["classes"], key, raw)


@dataclass(frozen=True)
class Unfamiliar:
    """config.json's "unfamiliar": the calibration of the unfamiliar-input check (`calibrate --write`). Which
    methods exist is the unfamiliar package's to say; here only the types the app reads are checked. It always
    names its weights: one that does not is damaged."""

    method: str
    threshold: float
    rate: float
    held_out_rate: float
    stats_sha256: str | None
    key: Key
    raw: dict  # everything stored (AUROCs, per kind, on photos, data, machine, date), for display

    @classmethod
    def of(cls, raw) -> Unfamiliar | None:
        try:
            ok = (isinstance(raw["method"], str) and _number(raw["threshold"]) and 0 < raw["rate"] <= 1
                  and _number(raw["held_out_rate"]) and isinstance(raw["views"], int)
                  and raw["method"] in raw["auroc"] and all(_number(a) for a in raw["auroc"].values())
                  and isinstance(raw["flagged"], dict) and all(_number(v) for v in raw["flagged"].values())
                  and all(isinstance(raw["n"][k], int) for k in ("fit", "choose", "held_out", "unfamiliar"))
                  and all(isinstance(raw[k], str) for k in ("machine", "date", "weights_sha256")))
        except (KeyError, TypeError, AttributeError):
            return None
        key = Key.of(raw)
        stats = raw.get("stats_sha256")
        return cls(raw["method"], float(raw["threshold"]), float(raw["rate"]), float(raw["held_out_rate"]),
                   stats if isinstance(stats, str) else None, key, raw) if ok and key else None


def _classes(config: dict, path: Path) -> list[str]:
    classes = config.get("classes", list(CIFAR10_CLASSES))
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise CheckpointError(f"{path}: 'classes' must be a list of at least 2 names")
    if len(classes) > MAX_CLASSES:  # the classifier head is built from it before any weight is read
        raise CheckpointError(f"{path} names {len(classes):,} classes, more than the {MAX_CLASSES:,} we build")
    return classes


@dataclass
class CheckpointRecord:
    """A checkpoint folder's config.json, and the preparation and views its figures are compared against (the
    app's: images.PREPARATION, answering.VIEWS). `config` is the whole file, for what is not typed here
    (recipe, data, versions: read for display)."""

    folder: Path
    config: dict = field(default_factory=dict)
    preparation: str = PREPARATION
    views: int | None = None  # None: the app's, answering.VIEWS, read only when compared (answering imports
    # torch, and the job runners read records without it)

    @classmethod
    def read(cls, folder: str | Path) -> CheckpointRecord:
        """The record in `folder`: a CheckpointError when config.json is missing, not JSON, names no known
        network or impossible classes."""
        path = Path(folder) / CONFIG_FILE
        if not path.exists():
            raise CheckpointError(f"{path} is missing")
        try:
            config = read_json(path)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path} is not valid JSON ({e})") from None
        if not isinstance(config, dict) or config.get("model") not in MODELS:
            raise CheckpointError(f"{path} names no known network (expected model: one of {', '.join(KEYS)})")
        config["classes"] = _classes(config, path)
        return cls(Path(folder), config)

    @property
    def path(self) -> Path:
        return self.folder / CONFIG_FILE

    @classmethod
    def read_or_empty(cls, folder: str | Path) -> CheckpointRecord:
        """The record in `folder`, or an empty one when it cannot be read (a run still writing its first)."""
        try:
            return cls.read(folder)
        except CheckpointError:
            return cls(Path(folder))

    # ---- the one staleness rule

    @property
    def key(self) -> Key:
        """What a figure measured now on this checkpoint would be computed from."""
        if self.views is None:
            from ..answering import VIEWS
        return Key(file_sha256(self.folder / MODEL_FILE), self.preparation, VIEWS if self.views is None else self.views)

    @property
    def test_split_key(self) -> Key:
        """The key of a figure measured on the test split alone (analysis.json, stress.json): how a photo is
        prepared does not bear on it. Photos measured beside it name their preparation themselves."""
        return replace(self.key, preparation=None)

    def why_stale(self, stored) -> str | None:
        """Why a figure named by `stored` (a Key, or the form it is stored in) is not this checkpoint's as the
        app answers now: "views", "preparation" or "weights", the first that differs; None when it is. A key
        that cannot be read is another checkpoint's."""
        key = stored if isinstance(stored, Key) else Key.of(stored)
        if key is None:
            return "weights"
        now = self.key
        if key.views is not None and key.views != now.views:
            return "views"
        if key.preparation is not None and key.preparation != now.preparation:
            return "preparation"
        if key.trained is not None:
            return "weights" if key.trained != (self.config.get("date"), self.config.get("epochs")) else None
        if key.weights_sha256 is not None and not (now.weights_sha256 or "").startswith(key.weights_sha256):
            return "weights"
        return None

    def stale(self, stored) -> bool:
        return self.why_stale(stored) is not None

    # ---- the sections

    def damaged(self, section: str) -> bool:
        """Whether config.json holds `section` in a form that cannot be read (as against not at all)."""
        typed = {METRICS: Metrics, PHOTOS: Photos, UNFAMILIAR: Unfamiliar}[section]
        return section in self.config and typed.of(self.config[section]) is None

    @property
    def metrics(self) -> Metrics | None:
        return Metrics.of(self.config.get(METRICS))

    @property
    def test_acc(self) -> float | None:
        """The test accuracy this checkpoint claims (the answers users get), None when it claims none."""
        return self.metrics.test_acc if self.metrics else None

    @property
    def photos(self) -> Photos | None:
        """The real-photo figure, when it was measured on these weights as the app answers now."""
        photos = Photos.of(self.config.get(PHOTOS))
        return photos if photos and not self.stale(photos.key) else None

    @property
    def unfamiliar(self) -> Unfamiliar | None:
        """The stored calibration, current or not (the check says which, and what to redo)."""
        return Unfamiliar.of(self.config.get(UNFAMILIAR))

    # ---- writing: each reads the file afresh, changes its section, writes it whole

    def write_metrics(self, metrics: dict, measured_on: dict) -> None:
        """Replace the metrics with new measurements, naming the data they came from."""
        self._write(METRICS, metrics | {"measured_on": {k: v for k, v in measured_on.items() if v is not None}})

    def write_photos(self, figure: dict) -> None:
        """Store the real-photo figure, measured on these weights with this record's preparation and views."""
        self._write(PHOTOS, figure | self.key.as_dict())

    def write_unfamiliar(self, calibration: dict) -> None:
        """Store the calibration; what it names itself (the weights and views it measured) wins over the key."""
        self._write(UNFAMILIAR, self.key.as_dict() | calibration)

    def _write(self, section: str, value: dict) -> None:
        config = read_json(self.path)
        config[section] = value
        write_json(self.path, config)
        self.config[section] = value


def written(folder: str | Path) -> bool:
    """Whether a checkpoint's record (config.json) is in `folder`: a run has finished at least one epoch."""
    return (Path(folder) / CONFIG_FILE).is_file()


def modified(folder: str | Path) -> tuple[float, float]:
    """The modification times of a checkpoint's weights and record (0 for a missing one): a change means reload."""
    out = []
    for name in (MODEL_FILE, CONFIG_FILE):
        try:
            out.append((Path(folder) / name).stat().st_mtime)
        except OSError:
            out.append(0.0)
    return tuple(out)
