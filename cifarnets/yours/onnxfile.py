"""An uploaded ONNX file, checked as data before anything runs it.

A stranger's file on a public server is data, never code. What is refused, and why:
- over MAX_BYTES (50 MB): memory, and the time to convert it;
- external data (an initializer whose bytes live in another file): its `location` can name any file on the
  server, which a loader would read into the network, and answers could leak it;
- any operator domain but the default one (custom ops run native code that onnxruntime would have to load),
  model-local functions, and control flow (Loop, Scan, If: a loop's trip count is the uploader's to choose);
- operators outside ALLOWED, the ones CIFAR-10 classifiers are made of: a shape- or size-building op such as
  ConstantOfShape, Tile or Resize can ask for gigabytes from a few bytes;
- an input that is not (1 or N) x 3 x 32 x 32 floats, or an output that is not 10 logits per image.
Every refusal is a CheckpointError with one line; the file itself is never written to disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store.checkpoints import CheckpointError

# onnx is imported where a graph is read, not with this module: with ml_dtypes it takes 1.4 s, which the first
# page in a server to import the visitor's-network code (Classify, Architecture, Why they differ) paid even when
# no visitor had a network.
if TYPE_CHECKING:
    import onnx

MAX_BYTES = 50 * 2**20
MAX_NODES = 5000  # ResNet-18 exports to about 70 nodes, our DenseNet to about 90: room for far deeper ones
DEFAULT_DOMAINS = ("", "ai.onnx")
# What CNN classifiers are made of, as PyTorch, Keras (tf2onnx) and others export them.
ALLOWED = frozenset("""
Conv ConvTranspose BatchNormalization InstanceNormalization LayerNormalization GroupNormalization
Relu LeakyRelu PRelu Elu Selu Sigmoid HardSigmoid HardSwish Tanh Softplus Softsign Gelu Mish Clip Erf Softmax
LogSoftmax Add Sub Mul Div Pow Sqrt Reciprocal Neg Abs Exp Log Max Min Mean Sum MatMul Gemm
MaxPool AveragePool GlobalAveragePool GlobalMaxPool ReduceMean ReduceMax ReduceSum LpNormalization
Flatten Reshape Squeeze Unsqueeze Transpose Concat Split Slice Gather Shape Identity Dropout Constant Cast Pad
""".split())
INPUT_SHAPE = (3, 32, 32)
CLASSES = 10


def parse(raw: bytes, name: str = "the file") -> onnx.ModelProto:
    """The model in `raw`, from memory (external data is never followed), or a CheckpointError."""
    if len(raw) > MAX_BYTES:
        raise CheckpointError(f"{name} is {len(raw) / 2**20:.1f} MB, over the {MAX_BYTES / 2**20:.0f} MB limit")
    if raw[:2] == b"\x80\x02" or raw[:1] == b"\x80" and raw[1:2] in (b"\x03", b"\x04", b"\x05"):
        raise CheckpointError(f"{name} is a Python pickle (torch.save), which can run code when loaded: "
                              "export the network to ONNX instead")
    if raw[:4] == b"PK\x03\x04":
        raise CheckpointError(f"{name} is a zip archive, not an ONNX file (a TorchScript or torch.save file is "
                              "one, and is refused: loading it can run code)")
    import onnx

    try:
        model = onnx.load_model_from_string(raw)
    except Exception:  # noqa: BLE001 -- protobuf's decode errors have no common class worth naming
        raise CheckpointError(f"{name} is not an ONNX file (it does not decode as an ONNX model)") from None
    if not model.graph.node:
        raise CheckpointError(f"{name} is not an ONNX model: its graph has no operators")
    return model


def check(model: onnx.ModelProto, name: str = "the file") -> None:
    """Refuse anything on the list in the module docstring; one line each."""
    import onnx
    from onnx import TensorProto
    from onnx.external_data_helper import _get_all_tensors

    external = [t.name for t in _get_all_tensors(model)
                if t.data_location == TensorProto.EXTERNAL or len(t.external_data)]
    external += [s.values.name for s in model.graph.sparse_initializer
                 if s.values.data_location == TensorProto.EXTERNAL or len(s.values.external_data)]
    if external:
        raise CheckpointError(f"{name} keeps tensor {external[0]!r} in external data: refused, since an external "
                              "file could name any file on this server; save the model as one file")
    domains = {o.domain for o in model.opset_import} | {n.domain for n in model.graph.node}
    custom = sorted(d for d in domains if d not in DEFAULT_DOMAINS)
    if custom or len(model.functions):
        what = f"the custom operator domain {custom[0]!r}" if custom else "model-local functions"
        raise CheckpointError(f"{name} uses {what}: only standard ONNX operators are accepted")
    if len(model.graph.node) > MAX_NODES:
        raise CheckpointError(f"{name} has {len(model.graph.node):,} operators, over the {MAX_NODES:,} accepted")
    unknown = sorted({n.op_type for n in model.graph.node} - ALLOWED)
    if unknown:
        raise CheckpointError(f"{name} uses the operator {unknown[0]}, which is not among those accepted for a "
                              "CIFAR-10 classifier (convolutions, pooling, normalisation, activations, linear layers)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise CheckpointError(f"{name} is not a valid ONNX model ({str(e).strip().splitlines()[0][:160]})") from None
    _check_shapes(model, name)


def opset(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), default=0)


def _dims(value_info) -> list[int | str]:
    """A graph input's or output's shape: a number per fixed axis, the name (or "?") of a free one."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def _check_shapes(model: onnx.ModelProto, name: str) -> None:
    from onnx import TensorProto

    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]  # old exports list weights as inputs
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise CheckpointError(f"{name} has {len(inputs)} input(s) and {len(model.graph.output)} output(s); a "
                              "classifier here takes one image batch and gives one set of logits")
    given, out = inputs[0], model.graph.output[0]
    dims = _dims(given)
    if given.type.tensor_type.elem_type != TensorProto.FLOAT or len(dims) != 4 or tuple(dims[1:]) != INPUT_SHAPE \
            or dims[0] not in (1,) and isinstance(dims[0], int):
        raise CheckpointError(f"{name} takes {_shape_text(given)}; it must take float images of "
                              "N x 3 x 32 x 32 (or 1 x 3 x 32 x 32)")
    dims = _dims(out)
    if out.type.tensor_type.elem_type != TensorProto.FLOAT or len(dims) != 2 or dims[1] not in (CLASSES, "?") \
            and isinstance(dims[1], int):
        raise CheckpointError(f"{name} gives {_shape_text(out)}; it must give {CLASSES} float logits per image")


def _shape_text(value_info) -> str:
    from onnx import TensorProto

    kind = TensorProto.DataType.Name(value_info.type.tensor_type.elem_type).lower()
    return f"{kind} {' x '.join(str(d) for d in _dims(value_info)) or 'of unknown shape'}"


def batch_fixed(model: onnx.ModelProto) -> bool:
    """True when the file takes one image at a time (a fixed batch of 1)."""
    initializers = {t.name for t in model.graph.initializer}
    given = next(i for i in model.graph.input if i.name not in initializers)
    return _dims(given)[0] == 1
