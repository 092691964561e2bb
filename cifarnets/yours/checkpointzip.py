"""A cifarnets checkpoint as a zip (what Training curves' download gives), read from memory and loaded strictly.

Only the checkpoint's own files are accepted, at the top or under one folder: model.safetensors (weights,
never unpickled), config.json, history.json and the optional ones. A zip holding anything else (a .pt, a
TorchScript archive's code/ and data.pkl) is refused, since the only way to use such a file is to run it.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from ..store.checkpoints import CARD_FILE, LOADED_FILES, OPTIONAL_FILES, REQUIRED_FILES, CheckpointError
from ..store.runfolder import HISTORY_FILE
from .onnxfile import MAX_BYTES

ACCEPTED = REQUIRED_FILES + OPTIONAL_FILES + (CARD_FILE,)
MAX_UNPACKED = 4 * MAX_BYTES  # a zip bomb stops here, before anything is inflated
PICKLED = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib", ".npy", ".npz")


def unzip(raw: bytes, name: str = "the zip") -> dict[str, bytes]:
    """{file name: bytes} of a checkpoint zip's accepted files, or a CheckpointError naming what is wrong."""
    if len(raw) > MAX_BYTES:
        raise CheckpointError(f"{name} is {len(raw) / 2**20:.1f} MB, over the {MAX_BYTES / 2**20:.0f} MB limit")
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, ValueError, OSError):
        raise CheckpointError(f"{name} is not a readable zip archive") from None
    if sum(i.file_size for i in infos) > MAX_UNPACKED:
        raise CheckpointError(f"{name} unpacks to over {MAX_UNPACKED / 2**20:.0f} MB")
    files = {}
    for info in infos:
        path = PurePosixPath(info.filename)
        if path.suffix.lower() in PICKLED or path.name in ("data.pkl", "constants.pkl"):
            raise CheckpointError(f"{name} holds {path.name}, a pickled PyTorch file, which can run code when "
                                  "loaded: weights are accepted as model.safetensors only")
        if path.name not in ACCEPTED or len(path.parts) > 2 or ".." in path.parts or path.is_absolute():
            raise CheckpointError(f"{name} holds {info.filename!r}; a checkpoint zip holds only "
                                  f"{', '.join(ACCEPTED)}, at its top or in one folder")
        if path.name in files:
            raise CheckpointError(f"{name} holds {path.name} twice")
        try:
            files[path.name] = archive.read(info)
        except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError):
            raise CheckpointError(f"{name}: {info.filename} cannot be unpacked") from None
    missing = [f for f in LOADED_FILES if f not in files]
    if missing:
        raise CheckpointError(f"{name} is not a cifarnets checkpoint: {' and '.join(missing)} missing")
    return files


def load(files: dict[str, bytes], device="cpu"):
    """(model in eval mode, config) through the same strict loader as the shipped checkpoints. The loader reads
    a folder, so the two files live in a private temporary one for the moment it reads them, then go."""
    from ..store.checkpoints import load_checkpoint

    with tempfile.TemporaryDirectory(prefix="cifarnets-yours-") as tmp:
        for fname in LOADED_FILES:
            Path(tmp, fname).write_bytes(files[fname])
        return load_checkpoint(tmp, device)


def history(raw: bytes | None, name: str = HISTORY_FILE) -> list[dict]:
    """The per-epoch rows of a history.json, [] when there is none; a malformed one is a CheckpointError."""
    if raw is None:
        return []
    try:
        rows = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{name} is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise CheckpointError(f"{name} should be a JSON list of per-epoch rows")
    return rows
