"""A network of ours (or any torch classifier) as an ONNX file that comes back answering the same.

Opset 17 with the TorchScript exporter: onnx2torch 1.5 reads opsets up to 17 only, and onnx cannot step a
newer file down (docs/yours.md), while a file it converts keeps gradients (attacks, gradient maps). The
batch axis is left free. What the network expects is written into the file's metadata (mean, std, class
order), so loading it back needs no settings.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path

import onnx
import torch

from .. import CIFAR10_CLASSES
from ..data.loader import MEAN, STD
from ..store.checkpoints import load_checkpoint
from ..store.fileio import write_bytes
from .load import META

OPSET = 17


def onnx_bytes(model: torch.nn.Module, classes=CIFAR10_CLASSES, mean=MEAN, std=STD) -> bytes:
    """The model as ONNX bytes: input `input` N x 3 x 32 x 32, output `logits` N x classes, opset 17."""
    private = copy.deepcopy(model).cpu().eval()  # tracing must not touch a model others may hold
    buf = io.BytesIO()
    with warnings.catch_warnings():  # "legacy TorchScript-based exporter": chosen on purpose, see above
        warnings.simplefilter("ignore")
        torch.onnx.export(private, (torch.zeros(1, 3, 32, 32),), buf, opset_version=OPSET, dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load_model_from_string(buf.getvalue())
    for key, value in (("mean", list(mean)), ("std", list(std)), ("classes", list(classes))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = META + key, json.dumps(value)
    return proto.SerializeToString()


def export_checkpoint(folder: str | Path, out: str | Path) -> int:
    """Write the checkpoint in `folder` as an ONNX file at `out` (whole or not at all); returns its size."""
    model, config = load_checkpoint(folder)
    raw = onnx_bytes(model, config["classes"])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_bytes(out, raw)
    return len(raw)
