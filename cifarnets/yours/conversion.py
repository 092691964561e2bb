"""The conversion to PyTorch, first tried in a child process with a deadline and a memory cap, so a graph whose
conversion never ends (or asks for unbounded memory) is stopped there, at the limit, and the server goes on.

The child is this file, run as a script (nothing of the cifarnets package is imported into it). The parent sends
the ONNX bytes and the probe images on stdin; the child imports torch and onnx2torch, says it is ready with one
byte, and from then on has `limit_s` to step the opset down if needed, convert, and answer the probe images. It
writes their logits as one .npy on stdout, or one line saying why not on stderr. Only after the child has shown
the conversion ends in time does the server convert the graph itself (convert.to_torch): the same work, now
known to be bounded. The module never comes back from the child, since that would mean unpickling it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import numpy as np

TORCH_OPSETS = range(7, 18)  # what onnx2torch 1.5 converts
# Address space of the child. torch's libraries alone map about 3 GB of it (under 3 GB its import fails).
MEMORY_BYTES = 6 * 2**30
IMPORT_LIMIT_S = 120.0  # torch's import on a busy machine: not the graph's time, so not in the limit
READY = b"R"
WHY = 3  # the child's exit status when it says why on stderr
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CHILD = [sys.executable, __file__]  # the command; a test swaps in one that never finishes


def step_down(model):
    """The model as onnx2torch reads it: at an opset it reads (stepped down by onnx's version converter), with
    no Identity of a weight; or why it cannot be."""
    import onnx

    model = _weights_named_once(model)
    found = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if found in TORCH_OPSETS:
        return model
    try:
        return onnx.version_converter.convert_version(model, TORCH_OPSETS[-1])
    except Exception:  # noqa: BLE001 -- the converter raises bare RuntimeErrors from C++
        return (f"it is written at ONNX opset {found}, which the conversion to PyTorch does not read (it reads "
                f"opsets up to {TORCH_OPSETS[-1]}; export with opset_version=17)")


def _weights_named_once(model):
    """A copy where each Identity of a weight is that weight under the Identity's name. PyTorch's exporter
    shares equal tensors through Identity nodes (an untrained network's zero biases, once BN is folded), and
    onnx2torch looks a convolution's bias up among the weights only, so it could not convert those."""
    import onnx

    weights = {t.name: t for t in model.graph.initializer}
    shared = [n for n in model.graph.node if n.op_type == "Identity" and n.input[0] in weights]
    if not shared:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    outputs = {o.name for o in copy.graph.output}
    for n in shared:
        if n.output[0] in outputs:
            continue
        tensor = copy.graph.initializer.add()
        tensor.CopyFrom(weights[n.input[0]])
        tensor.name = n.output[0]
        copy.graph.node.remove(next(c for c in copy.graph.node if c == n))
    return copy


def torch_module(model):
    """onnx2torch's module for the (stepped-down) model, in eval mode; any failure is one line, as a str."""
    from onnx2torch import convert

    try:
        return convert(model).eval()
    except Exception as e:  # noqa: BLE001 -- onnx2torch raises NotImplementedError, KeyError, RuntimeError...
        return f"its graph does not convert to PyTorch ({type(e).__name__}: {str(e)[:120]})"


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def run(raw: bytes, images: np.ndarray, limit_s: float) -> np.ndarray | str:
    """The converted graph's logits for `images`, from the child, or one line saying why there are none."""
    buf = io.BytesIO()
    np.save(buf, images.astype(np.float32))
    payload = len(raw).to_bytes(8, "little") + raw + buf.getvalue()
    child = subprocess.Popen(CHILD, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=os.environ | THREADS,
                             preexec_fn=_limit_memory if sys.platform != "win32" else None)
    ready = threading.Event()
    got: dict[str, bytes] = {}

    def read_stdout():
        first = child.stdout.read(1)
        ready.set()  # set on EOF too: a child that died before it was ready ends the wait at once
        got["out"] = first + child.stdout.read()

    readers = [threading.Thread(target=read_stdout, daemon=True),
               threading.Thread(target=lambda: got.update(err=child.stderr.read()), daemon=True)]
    for r in readers:
        r.start()
    try:
        child.stdin.write(payload)  # the child reads all of it before anything else
        child.stdin.close()
        # The clock starts once torch is imported: the graph's own time is what the limit is about.
        if not ready.wait(IMPORT_LIMIT_S):
            raise subprocess.TimeoutExpired(CHILD, IMPORT_LIMIT_S)
        child.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return f"converting it to PyTorch and answering {len(images)} images took over {limit_s:.0f} s"
    except BrokenPipeError:
        child.wait()
    finally:
        for r in readers:
            r.join(timeout=5)
    err = got.get("err", b"").decode(errors="replace").strip().splitlines() or ["no detail"]
    if child.returncode == WHY:
        return err[-1]
    if child.returncode != 0:
        if child.returncode < 0 or "alloc" in err[-1].lower() or "memory" in err[-1].lower():
            return f"converting it to PyTorch needed more than {MEMORY_BYTES / 2**30:.0f} GB of memory"
        return f"its conversion to PyTorch failed ({err[-1][:160]})"
    try:
        return np.load(io.BytesIO(got.get("out", b"")[len(READY):]), allow_pickle=False)
    except (ValueError, EOFError, OSError):
        return "its conversion's answer could not be read"


def _child() -> None:
    data = sys.stdin.buffer.read()
    size = int.from_bytes(data[:8], "little")
    raw, rest = data[8:8 + size], data[8 + size:]
    images = np.load(io.BytesIO(rest), allow_pickle=False)
    import onnx
    import torch
    from onnx2torch import convert  # noqa: F401 -- imported before READY, so its import is not the graph's time

    torch.set_num_threads(1)
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    model = step_down(onnx.load_model_from_string(raw))
    module = torch_module(model) if not isinstance(model, str) else model
    if isinstance(module, str):
        print(module, file=sys.stderr)
        sys.exit(WHY)
    try:
        with torch.no_grad():
            out = module(torch.from_numpy(images)).float().cpu().numpy()
    except Exception as e:  # noqa: BLE001 -- whatever the converted module raises, it is the graph's fault
        print(f"its conversion to PyTorch cannot answer ({type(e).__name__}: {str(e)[:120]})", file=sys.stderr)
        sys.exit(WHY)
    buf = io.BytesIO()
    np.save(buf, np.asarray(out, dtype=np.float32))
    sys.stdout.buffer.write(buf.getvalue())


if __name__ == "__main__":
    _child()
