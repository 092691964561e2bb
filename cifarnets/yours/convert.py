"""A checked ONNX model -> something that answers like our networks: a torch module where onnx2torch converts
it (gradients flow, so attacks work as for the four), else onnxruntime behind a torch-shaped module.

onnx2torch 1.5 converts opset 13-17 and refuses 18+ (docs/yours.md); a newer file is first stepped down with
onnx's version converter where it can be, and otherwise answers through onnxruntime. A conversion that does
not answer like onnxruntime on the same probe images is not used.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..store.checkpoints import CheckpointError
from . import conversion, probe
from .onnxfile import CLASSES, INPUT_SHAPE, batch_fixed

if TYPE_CHECKING:  # onnx itself is imported where a graph is read (onnxfile.py says why)
    import onnx

TIME_LIMIT_S = 20.0  # for onnxruntime's first answer (probe.py)
CONVERT_LIMIT_S = TIME_LIMIT_S  # for the conversion to PyTorch and its first answer, enforced (conversion.py)
ANSWER_LIMIT_S = 60.0  # any later answer through onnxruntime: a page's work stays bounded (the probe was 4 images)
AGREE = 1e-3  # largest logit difference between the conversion and onnxruntime on the probe images
PROBE = 4  # images in the probe batch


class OnnxRuntime(nn.Module):
    """onnxruntime behind nn.Module's face, so the app's code that answers with a module answers with this too.
    No gradients: attacks and gradient maps are unavailable for it."""

    def __init__(self, raw: bytes, one_at_a_time: bool):
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one session per visitor: never every core of a shared server
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(raw, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.one_at_a_time = one_at_a_time
        # The app finds a network's device from its first parameter: an empty one, on the CPU.
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def run(self, x: np.ndarray, limit_s: float | None = None) -> np.ndarray:
        import onnxruntime as ort

        options = ort.RunOptions()
        timer = threading.Timer(limit_s, lambda: setattr(options, "terminate", True)) if limit_s else None
        if timer:
            timer.start()
        try:
            parts = np.split(x, len(x)) if self.one_at_a_time else [x]
            return np.concatenate([self.session.run(None, {self.input_name: p}, options)[0] for p in parts])
        except Exception as e:  # noqa: BLE001 -- onnxruntime raises its own Fail/RuntimeException classes
            if options.terminate:
                raise CheckpointError(f"the network took over {limit_s:.0f} s to answer {len(x)} images") from None
            raise CheckpointError(f"onnxruntime cannot run it ({str(e).strip().splitlines()[0][:160]})") from None
        finally:
            if timer:
                timer.cancel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.run(x.detach().float().cpu().numpy(), ANSWER_LIMIT_S)
        return torch.from_numpy(np.ascontiguousarray(out)).to(x.device)


def probe_images() -> np.ndarray:
    """A fixed batch of normalised-looking images for checking shapes and agreement."""
    return torch.randn(PROBE, *INPUT_SHAPE, generator=torch.Generator().manual_seed(0)).cpu().numpy()


def first_answer(raw: bytes, model: onnx.ModelProto, name: str) -> np.ndarray:
    """Its logits on probe_images(), from a capped child process (probe.py), checked to be PROBE x 10 finite
    numbers; what the conversion must then agree with."""
    out = probe.run(raw, probe_images(), batch_fixed(model), TIME_LIMIT_S)
    if isinstance(out, str):
        raise CheckpointError(f"{name} is refused: {out}")
    if out.shape != (PROBE, CLASSES):
        raise CheckpointError(f"{name} answers {PROBE} images with an output of shape "
                              f"{' x '.join(map(str, out.shape))}; it must give {CLASSES} logits per image")
    if not np.isfinite(out).all():
        raise CheckpointError(f"{name} answers with numbers that are not finite (NaN or infinity)")
    return out


def runtime(raw: bytes, model: onnx.ModelProto, name: str) -> OnnxRuntime:
    """onnxruntime in this process, for a graph that does not convert (made only then: a second copy of the
    weights per session otherwise)."""
    try:
        return OnnxRuntime(raw, batch_fixed(model))
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{name} cannot be loaded by onnxruntime ({str(e).strip().splitlines()[0][:160]})"
                              ) from None


def to_torch(model: onnx.ModelProto, raw: bytes, expected: np.ndarray) -> tuple[nn.Module | None, str]:
    """(the converted module in eval mode, "") or (None, why it answers through onnxruntime instead).

    The conversion and its first answer run first in a child process (conversion.py), stopped at
    CONVERT_LIMIT_S: only a graph shown there to convert in time is converted here, in the server."""
    tried = conversion.run(raw, probe_images(), CONVERT_LIMIT_S)
    if isinstance(tried, str):
        return None, tried
    stepped = conversion.step_down(model)
    module = conversion.torch_module(stepped) if not isinstance(stepped, str) else stepped
    if isinstance(module, str):
        return None, module
    try:
        with torch.no_grad():
            got = module(torch.from_numpy(probe_images())).float().cpu().numpy()
    except Exception as e:  # noqa: BLE001 -- whatever the converted module raises, it is the graph's fault
        return None, f"its conversion to PyTorch cannot answer ({type(e).__name__}: {str(e)[:120]})"
    if got.shape != expected.shape or not np.abs(got - expected).max() <= AGREE:
        return None, "its conversion to PyTorch does not answer like the file itself"
    for p in module.parameters():
        p.requires_grad_(False)  # gradients flow to the image, as for the four shared networks
    return module, ""
