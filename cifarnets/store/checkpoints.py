"""The on-disk format: checkpoints/<key>/{model.safetensors, config.json, history.json}.

It is the layout of a Hugging Face model repository. Weights are safetensors only: nothing is
ever unpickled from a checkpoint. Loading is strict: every tensor must be there, with its shape.
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .. import CIFAR10_CLASSES, __version__
from ..models import KEYS, MODELS, build, count_params, label
from ..paths import checkpoints_dir
from ..prose import duration, listing, plural
from .fileio import write_bytes, write_json
from .record import CheckpointError, CheckpointRecord
from .runfolder import CONFIG_FILE, HISTORY_FILE, MODEL_FILE, REPORT_HISTORY_FILE, UNFAMILIAR_FILE

# What a checkpoint is, file by file: `push` uploads exactly these, the Training curves page zips exactly
# these. Never a run's resume state, status, lock or a write's temporary file.
REQUIRED_FILES = (MODEL_FILE, CONFIG_FILE, HISTORY_FILE)
LOADED_FILES = (MODEL_FILE, CONFIG_FILE)  # what load_checkpoint reads: the weights and their record
OPTIONAL_FILES = (REPORT_HISTORY_FILE, UNFAMILIAR_FILE)
CARD_FILE = "README.md"  # the model card: push writes one to the Hub; a folder may hold one of its own


def checkpoint_files(folder: str | Path) -> list[Path]:
    """The files that make the checkpoint in `folder`: the required ones, then those of the optional ones
    and the model card that are there. A missing required file is a CheckpointError naming it."""
    folder = Path(folder)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a complete checkpoint folder: {', '.join(missing)} missing")
    return [folder / name for name in REQUIRED_FILES + OPTIONAL_FILES + (CARD_FILE,) if (folder / name).is_file()]


def write_weights(path: str | Path, model: torch.nn.Module) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes(path, save(tensors, metadata={"format": "pt"}))


def save_checkpoint(folder: str | Path, model: torch.nn.Module, config: dict, history: list[dict]) -> None:
    """Write the three files, each atomically; weights first so a config never names missing weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_weights(folder / MODEL_FILE, model)
    write_json(folder / HISTORY_FILE, history)
    write_json(folder / CONFIG_FILE, config)


def make_config(key: str, model: torch.nn.Module, *, classes: list[str], recipe: dict, data: dict,
                metrics: dict, device: str, epochs_done: int, seed: int) -> dict:
    import torchvision

    return {
        "model": key, "label": label(key), "class": type(model).__name__, "params": count_params(model),
        "classes": list(classes), "recipe": recipe, "epochs": epochs_done, "seed": seed, "data": data,
        "metrics": metrics, "device": device,
        "versions": {"cifarnets": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                     "python": platform.python_version()},
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def training_summary(config: dict) -> str:
    """How a checkpoint was trained, in one line from its config.json: "modern recipe, 60 epochs in 7m 02s on
    cpu (...)", naming a teacher it was distilled from. Whatever the config holds, a line comes back."""
    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
    epochs, wall, device = config.get("epochs"), config.get("wall_s"), config.get("device")
    line = f"{recipe.get('name', 'an unrecorded')} recipe, " + (plural(epochs, "epoch") if isinstance(epochs, int)
                                                                  else "? epochs")
    if isinstance(wall, (int, float)) and not isinstance(wall, bool) and wall >= 0:
        line += f" in {duration(wall)}"
    if isinstance(device, str) and device:
        line += f" on {device}"
    teacher = config.get("teacher")
    if isinstance(teacher, dict) and isinstance(teacher.get("model"), str) and teacher["model"]:
        names = [label(key) if key in MODELS else key for key in teacher["model"].split("+")]  # "+": an ensemble
        line += f", distilled from {listing(['the ' + name for name in names])}"
        if teacher.get("targets") == "fixed":
            line += f", {'their' if len(names) > 1 else 'its'} answers fixed before training"
    return line


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load safetensors weights strictly: a missing, unexpected or mis-shaped tensor is an error."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} is missing")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({str(e)[:100]})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = ([f"missing {len(missing)} tensor(s), e.g. {missing[0]}"] if missing else []) + \
                ([f"{len(unexpected)} unexpected tensor(s), e.g. {unexpected[0]}"] if unexpected else [])
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: {'; '.join(parts)}")
    for name, t in tensors.items():
        if t.shape != expected[name].shape:
            raise CheckpointError(f"{path}: tensor {name} has shape {tuple(t.shape)}, "
                                  f"{type(model).__name__} needs {tuple(expected[name].shape)}")
    model.load_state_dict(tensors, strict=True)


def load_checkpoint(folder: str | Path, device: torch.device | str = "cpu",
                    expected_key: str | None = None) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode on `device`, config) from a checkpoint folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a checkpoint folder")
    config = CheckpointRecord.read(folder).config
    if expected_key and config["model"] != expected_key:
        raise CheckpointError(f"{folder / CONFIG_FILE} holds a {config['model']!r} network, not {expected_key!r}")
    model = build(config["model"], num_classes=len(config["classes"]))
    load_weights(model, folder / MODEL_FILE)
    return model.to(device).eval(), config


@dataclass
class Entry:
    """One network as the app and the CLI see it: loaded, or unavailable with the reason."""

    key: str
    path: Path
    model: torch.nn.Module | None = None
    config: dict = field(default_factory=dict)
    reason: str = ""

    @property
    def label(self) -> str:
        return label(self.key)

    @property
    def ok(self) -> bool:
        return self.model is not None

    @property
    def classes(self) -> list[str]:
        return self.config.get("classes", list(CIFAR10_CLASSES))

    @property
    def record(self) -> CheckpointRecord:
        """Its config.json, typed: the stored figures, and whether each is still this checkpoint's."""
        return CheckpointRecord(Path(self.path), self.config)

    @property
    def test_acc(self) -> float | None:
        return self.record.test_acc


def discover(folder: str | Path | None = None, device: torch.device | str = "cpu",
             overrides: dict[str, str | Path] | None = None) -> dict[str, Entry]:
    """Every registered network: loaded from `folder/<key>` (default paths.checkpoints_dir(): where the app
    looks) or an override folder, or why not."""
    folder = checkpoints_dir() if folder is None else folder
    entries = {}
    for key in KEYS:
        path = Path((overrides or {}).get(key) or Path(folder) / key)
        try:
            model, config = load_checkpoint(path, device, expected_key=key)
            entries[key] = Entry(key, path, model, config)
        except CheckpointError as e:
            reason = (f"no checkpoint in {path}: train one (sidebar, or python -m cifarnets train --model {key})"
                      if not path.exists() else str(e))
            entries[key] = Entry(key, path, reason=reason)
    return entries
