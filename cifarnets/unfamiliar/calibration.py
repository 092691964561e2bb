"""A network's stored calibration, and the verdict it gives on new inputs.

`python -m cifarnets calibrate --write` stores two things beside each checkpoint's weights:
  config.json, key "unfamiliar": the method, the threshold, the rate of test images it keeps under,
      the AUROC of every method compared, the per-kind results, the data, the machine and the date;
  unfamiliar.safetensors: the training-split statistics the Mahalanobis methods need.
Both name the weights they were measured on (the weights file's SHA-256): a retrained network is not
judged by its predecessor's threshold, it is classified without the flag and says why.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ..answering import VIEWS
from ..paths import checkpoints_dir, public
from ..store.checkpoints import Entry
from ..store.fileio import write_bytes
from ..store.record import UNFAMILIAR, CheckpointRecord, file_sha256
from ..store.runfolder import UNFAMILIAR_FILE
from .scores import FITTED, METHODS, Gaussians, ViewOutputs, score

RATE = 0.95  # the share of the test split's held-out images the threshold keeps under: 1 in 20 is flagged
# The share of real photos of the ten classes it keeps under, where calibrate is given some: issue 28's aim of
# at most 10% of them flagged (uploads are photos, and photos score further from CIFAR-10 than its test split)
PHOTO_RATE = 0.9


def redo_command(folder: Path | str | None = None) -> str:
    elsewhere = folder and Path(folder).parent.resolve() != checkpoints_dir().resolve()
    # A public deployment's visitors see this line: it never names a folder of the server.
    where = (" --checkpoints RUN_FOLDER" if public() else f" --checkpoints {Path(folder).parent}") if elsewhere else ""
    return f"python -m cifarnets calibrate --write{where} --data PATH"


@dataclass(frozen=True)
class Calibration:
    method: str
    threshold: float
    rate: float
    fitted: dict[str, Gaussians] | None  # None for the methods that need no statistics
    record: dict  # everything config.json holds under "unfamiliar", for display


@dataclass(frozen=True)
class Verdict:
    score: float
    threshold: float
    method: str
    rate: float  # the share of CIFAR-10 test images under the threshold
    plain: bool = False  # no structure at all (structure.py): one flat colour or noise, whatever the score

    @property
    def unfamiliar(self) -> bool:
        return self.plain or self.score > self.threshold

    def as_dict(self) -> dict:
        return {"flag": self.unfamiliar, "score": round(self.score, 6), "threshold": round(self.threshold, 6),
                "method": self.method, "rate": self.rate, "structureless": self.plain}


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def save_stats(path: Path, fitted: dict[str, Gaussians]) -> None:
    tensors = {}
    for name, g in fitted.items():
        tensors |= {f"{name}.means": g.means.float(), f"{name}.precision": g.precision.float(),
                    f"{name}.scale": torch.tensor(g.scale, dtype=torch.float64)}
    write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}))


@functools.lru_cache(maxsize=32)
def _load_stats(path: str, mtime_ns: int, size: int) -> dict[str, Gaussians]:
    tensors = load_file(path)
    names = sorted({k.rsplit(".", 1)[0] for k in tensors})
    out = {}
    for name in names:
        means, precision, scale = (tensors.get(f"{name}.{part}") for part in ("means", "precision", "scale"))
        if means is None or precision is None or scale is None or means.ndim != 2 or \
                precision.shape != (means.shape[1],) * 2 or scale.shape != (2,):
            raise ValueError(f"layer {name!r} is incomplete or mis-shaped")
        out[name] = Gaussians(means.double(), precision.double(), (float(scale[0]), float(scale[1])))
    return out


def load_stats(path: Path) -> dict[str, Gaussians]:
    return _load_stats(str(path), *_identity(path))


def write(folder: Path, calibration: dict, fitted: dict[str, Gaussians]) -> None:
    """Statistics first, then the record that names them: a config.json never points at missing statistics."""
    save_stats(folder / UNFAMILIAR_FILE, fitted)
    stats = {"stats_sha256": file_sha256(folder / UNFAMILIAR_FILE)}
    CheckpointRecord.read(folder).write_unfamiliar(calibration | stats)


def load(entry: Entry, views: int = VIEWS) -> Calibration | str:
    """The network's calibration for answers made from `views` views of each image (answering.VIEWS), or one
    line saying why it has none (and what to run)."""
    record = replace(entry.record, views=views)
    stored = record.unfamiliar
    redo = redo_command(entry.path)
    if UNFAMILIAR not in record.config:
        return f"not calibrated: run `{redo}` to measure when it meets something unfamiliar"
    if stored is None or not all(m in METHODS for m in (stored.method, *stored.raw["auroc"])):
        return f"its calibration in config.json is damaged; redo it with `{redo}`"
    why = record.why_stale(stored.key)
    if why == "views":
        return (f"calibrated on answers from {stored.key.views} views of each image, but answers now take {views}; "
                f"redo it with `{redo}`")
    if why == "preparation":
        return (f"calibrated on photos prepared {stored.key.preparation!r}, but they are now prepared "
                f"{record.preparation!r}; redo it with `{redo}`")
    if why:
        return f"calibrated on other weights than these (retrained?); redo it with `{redo}`"
    fitted = None
    if stored.method in FITTED:
        stats = entry.path / UNFAMILIAR_FILE
        if not stats.is_file():
            return f"its calibration statistics ({UNFAMILIAR_FILE}) are missing; redo them with `{redo}`"
        if stored.stats_sha256 != file_sha256(stats):
            return f"{UNFAMILIAR_FILE} does not match config.json; redo the calibration with `{redo}`"
        try:
            fitted = load_stats(stats)
        except (OSError, SafetensorError, ValueError, RuntimeError) as e:
            return f"its calibration cannot be read ({str(e)[:100]}); redo it with `{redo}`"
    return Calibration(stored.method, stored.threshold, stored.rate, fitted, stored.raw)


def verdicts(calibration: Calibration, v: ViewOutputs, plain: list[bool] | None = None,
             together: torch.Tensor | None = None) -> list[Verdict]:
    """One verdict per image of `v`; `plain`: which images have no structure (structure.structureless);
    `together`: the answers of the networks answering together, averaged (scores.TOGETHER). Raises ValueError
    when the statistics do not fit this network."""
    fitted = calibration.fitted
    if fitted is not None and (set(fitted) != set(v.layers) or
                               any(g.means.shape[1] != v.layers[k].shape[-1] for k, g in fitted.items())):
        raise ValueError(f"{UNFAMILIAR_FILE} was fitted on another network's layers")
    scores = score(calibration.method, v, fitted, together)
    plain = plain or [False] * len(scores)
    return [Verdict(float(s), calibration.threshold, calibration.method, calibration.rate, p)
            for s, p in zip(scores, plain, strict=True)]
