"""load_network: a network brought in, by any of the three ways, as one YourNetwork, or one line saying why not.

    an ONNX file             checked as data (onnxfile), converted to PyTorch or run by onnxruntime (convert)
    a checkpoint zip/folder  one of our four architectures, through the shipped checkpoints' strict loader
    hf://OWNER/NAME[@REV]    fetched as CIFARNETS_HUB's repositories are, then the same strict loader
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from .. import CIFAR10_CLASSES
from ..data.images import ImageError
from ..data.loader import MEAN, STD
from ..models import label
from ..predict import read_file
from ..store import hub
from ..store.checkpoints import CheckpointError, load_checkpoint
from ..store.runfolder import HISTORY_FILE, MODEL_FILE
from ..unfamiliar import calibration
from . import checkpointzip, convert, onnxdiagram, onnxfile
from .network import Adapted, YourNetwork, check_name, check_normalisation, class_order

META = "cifarnets."  # metadata_props keys our export writes: cifarnets.mean, cifarnets.std, cifarnets.classes
NO_HISTORY = "it came without a history.json (a cifarnets checkpoint brings one)"


def load_network(source: str | Path, name: str, *, raw: bytes | None = None, mean=None, std=None,
                 classes: list[str] | None = None, allow_local: bool = True, taken=()) -> YourNetwork:
    """`source`: a path (an .onnx file, a checkpoint .zip or folder), or hf://OWNER/NAME[@REV]; with `raw`, the
    uploaded bytes and `source` their file name. `mean`, `std`, `classes`: what an ONNX network expects, when
    not CIFAR-10's (its own metadata, as our export writes it, is read otherwise). `allow_local`: False in
    public mode, where a typed folder name must not reach the server's disk."""
    name = check_name(name, taken)
    text = str(source)
    if raw is None and text.startswith(hub.URI_PREFIX):
        return _from_hub(text, name, allow_local)
    if raw is None:
        path = Path(text).expanduser()
        if not allow_local:
            raise CheckpointError("only uploaded files and Hub repository ids are accepted here")
        if path.is_dir():
            return _from_folder(path, name, f"the folder {path}")
        if not path.exists() and "/" in text and not text.startswith((".", "/", "~")):
            return _from_hub(text, name, allow_local)
        try:
            raw = read_file(path, onnxfile.MAX_BYTES)
        except ImageError as e:  # read_file says it of images; the reasons fit any file
            raise CheckpointError(str(e).replace("an image", "a network")) from None
    if text.lower().endswith(".zip") or raw[:4] == b"PK\x03\x04" and not text.lower().endswith(".onnx"):
        return _from_zip(raw, name, Path(text).name)
    return _from_onnx(raw, name, Path(text).name, mean, std, classes)


def _meta(model, key: str):
    found = {p.key: p.value for p in model.metadata_props}.get(META + key)
    try:
        return json.loads(found) if found else None
    except ValueError:
        return None


def _from_onnx(raw: bytes, name: str, filename: str, mean, std, classes) -> YourNetwork:
    model = onnxfile.parse(raw, filename)
    onnxfile.check(model, filename)
    mean, std = check_normalisation(mean or _meta(model, "mean") or MEAN, std or _meta(model, "std") or STD)
    classes = list(classes or _meta(model, "classes") or CIFAR10_CLASSES)
    order = class_order(classes)
    module, why = convert.to_torch(model, raw, convert.first_answer(raw, model, filename))
    inner = module if module is not None else convert.runtime(raw, model, filename)
    unavailable = {"training curves": NO_HISTORY}
    try:
        diagrams = onnxdiagram.dots(model)  # drawn now, from the graph: the file's bytes are not kept
    except Exception as e:  # noqa: BLE001 -- a drawing is extra: a graph it cannot follow still answers
        why = str(e) if isinstance(e, ValueError) else f"its graph could not be drawn ({type(e).__name__})"
        diagrams, unavailable["block diagram"] = {}, why
    if module is None:
        unavailable |= {"attacks": f"it answers through onnxruntime, which gives no gradients: {why}",
                        "layer table": f"it answers through onnxruntime, which shows no layers: {why}",
                        "FLOPs": f"it answers through onnxruntime, which the compute counter cannot see into: {why}"}
    return YourNetwork(
        name, "onnx", f"the ONNX file {filename} (opset {onnxfile.opset(model)}, "
        + ("converted to PyTorch)" if module is not None else "run by onnxruntime)"),
        Adapted(inner, mean, std, order).eval(), module,
        mean=mean, std=std, classes=classes, config={"classes": list(CIFAR10_CLASSES)}, unavailable=unavailable,
        path=Path("yours") / hashlib.sha256(raw).hexdigest()[:16],
        file_params=sum(math.prod(t.dims) for t in model.graph.initializer), diagrams=diagrams)


def _checkpoint(model, config: dict, name: str, kind: str, source: str, history: list[dict], path: Path,
                calibrated: bool) -> YourNetwork:
    network = YourNetwork(name, kind, f"{source}, a {label(config['model'])} checkpoint", model, model,
                          architecture=config["model"], classes=list(config["classes"]), history=history,
                          config=config, path=path, unavailable={} if history else {"training curves": NO_HISTORY})
    if calibrated and not isinstance(calibration.load(network.entry()), str):
        network.no_calibration = ""
    return network


def _from_zip(raw: bytes, name: str, filename: str) -> YourNetwork:
    files = checkpointzip.unzip(raw, filename)
    model, config = checkpointzip.load(files)
    return _checkpoint(model, config, name, "checkpoint", f"the zip {filename}",
                       checkpointzip.history(files.get(HISTORY_FILE)),
                       Path("yours") / hashlib.sha256(raw).hexdigest()[:16], calibrated=False)


def _from_folder(folder: Path, name: str, source: str, kind: str = "checkpoint") -> YourNetwork:
    model, config = load_checkpoint(folder)
    history_file = folder / HISTORY_FILE
    raw = history_file.read_bytes() if history_file.is_file() else None
    return _checkpoint(model, config, name, kind, source, checkpointzip.history(raw), folder, calibrated=True)


def _from_hub(text: str, name: str, allow_local: bool) -> YourNetwork:
    ref = hub.parse_ref(text)
    if not allow_local and Path(ref.repo).expanduser().is_dir():
        raise CheckpointError("only Hub repository ids (OWNER/NAME) are accepted here, not folders of this server")
    if not allow_local and ref.repo.count("/") != 1:
        raise CheckpointError(f"{ref.repo!r} is not a Hub repository id (OWNER/NAME)")
    if not allow_local:
        _check_hub_sizes(ref)
    return _from_folder(hub.fetch(ref), name, f"the Hub repository {ref}", kind="hub")



def _check_hub_sizes(ref: hub.Ref) -> None:
    """In public mode, before a download: the repository's checkpoint files within the upload limits, so a
    visitor's Hub id cannot fill the server's disk. Where the Hub cannot say, the download itself reports it."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(ref.repo, revision=ref.revision, files_metadata=True)
    except Exception:  # noqa: BLE001 -- offline, missing or private: hub.fetch says which, in one line
        return
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or [] if s.rfilename in hub.HUB_FILES}
    if sum(sizes.values()) > checkpointzip.MAX_UNPACKED or sizes.get(MODEL_FILE, 0) > onnxfile.MAX_BYTES:
        raise CheckpointError(f"{ref} holds {sum(sizes.values()) / 2**20:.0f} MB of checkpoint files, over the "
                              f"{onnxfile.MAX_BYTES / 2**20:.0f} MB limit")
