"""A network brought in as ONNX, drawn from its graph in the four's visual language (diagram/dot.py): a box per
layer, the shape of its output on every edge, skip connections (an Add, Concat or Mul of two tensors) in orange.
It reads only the graph and ONNX's shape inference, never runs it, so a graph only onnxruntime runs is drawn too.

From the graph:
- only the image's path is drawn: what is computed from weights or from a tensor's shape (Shape, Gather...)
  is not, and steps that only alias a tensor (Identity, Dropout, Cast...) are taken out;
- an activation, a normalisation, a flatten or arithmetic with a constant joins the box before it
  ("conv 3x3, 64→64 · ReLU"), as in our diagrams;
- of a join's inputs, the one with the shortest path back to where they part is the skip (an identity shortcut,
  a 1x1 projection, the input a concatenation carries, the branch an SE gate scales);
- at the "blocks" level, each branch into a join becomes one box, and a run of identical blocks (a residual
  block repeated with an identity shortcut) or of identical layers becomes one box marked "× N".
More than MAX_BOXES boxes at "every layer" are drawn block by block instead; more than that even then, or more
than MAX_LAYERS layers to begin with, not at all (one line says so).
PyTorch's exporter names each node after its module ("/layer1/layer1.0/conv1/Conv"): those names title the
boxes and group them in stages, as ours; a graph without them is drawn without.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..diagram import Cluster, Diagram, Edge, Node, to_dot

if TYPE_CHECKING:  # onnx itself is imported where a graph is read (onnxfile.py says why)
    import onnx

MAX_BOXES = 60  # boxes a drawing holds readably; a ResNet-18 draws about 30
# Layers past which collapsing is not tried: it is quadratic in them, and runs in the server (5,000 took 5 s).
MAX_LAYERS = 10 * MAX_BOXES
ALIASES = {"Identity", "Dropout", "Cast", "Squeeze", "Unsqueeze", "Transpose"}  # the same values, for a drawing
STATIC = {"Shape", "Constant"}  # their outputs say nothing about the image
WORDS = {"Relu": "ReLU", "LeakyRelu": "leaky ReLU", "PRelu": "PReLU", "Elu": "ELU", "Selu": "SELU",
         "Sigmoid": "sigmoid", "HardSigmoid": "hard sigmoid", "HardSwish": "hard swish", "Tanh": "tanh",
         "Softplus": "softplus", "Gelu": "GELU", "Mish": "mish", "Clip": "clip", "Softmax": "softmax",
         "LogSoftmax": "log softmax", "BatchNormalization": "BN", "InstanceNormalization": "instance norm",
         "LayerNormalization": "layer norm", "GroupNormalization": "group norm", "Flatten": "flatten",
         "Reshape": "flatten", "LpNormalization": "L2 norm"}
JOINS = {"Add": "+", "Sum": "+", "Concat": "concat", "Mul": "×", "Max": "max", "Mean": "mean"}
OWN_BOX = ("conv", "deconv", "fc", "max pool", "avg pool", "global")  # steps that start a box, never fold


@dataclass
class Box:
    """A drawn box while the graph is simplified: steps, where its input comes from, the shape it gives."""

    id: str
    parts: list[str]
    ins: list[str]  # the boxes feeding it, in the node's input order
    shape: str  # its output's C x H x W
    owner: str = ""  # the module whose code ran it (PyTorch's exporter names it), "" when unnamed
    modules: list[str] = field(default_factory=list)
    ops: list[int] = field(default_factory=list)
    params: int = 0
    join: str = ""
    role: str = ""


def dots(model: onnx.ModelProto) -> dict[str, str]:
    """{level: DOT} at "blocks" and "every layer"; a graph too large to draw even block by block is a ValueError
    with one line."""
    return {level: to_dot(diagram(model, level)) for level in ("blocks", "every layer")}


def diagram(model: onnx.ModelProto, level: str) -> Diagram:
    d = _as_diagram(model, level)
    if level == "every layer" and len(d.nodes) - 2 > MAX_BOXES:
        d = _as_diagram(model, "blocks")
    if len(d.nodes) - 2 > MAX_BOXES:
        raise ValueError(f"its graph makes {len(d.nodes) - 2} boxes even block by block, over the {MAX_BOXES} a "
                         "drawing holds readably")
    return d


def module_name(node: onnx.NodeProto) -> str:
    """The PyTorch module a node came from, dotted ("/layer1/layer1.0/conv1/Conv" -> "layer1.0.conv1"); "" for
    a node whose name has no scopes (other exporters, hand-made graphs)."""
    if not node.name.startswith("/"):
        return ""
    path: list[str] = []
    for part in node.name.strip("/").split("/")[:-1]:  # a scope repeats its parent's last name: "layer1.0"
        path[-1:] = [path[-1], part] if path and not part.startswith(path[-1] + ".") else [part]
    return ".".join(path)


def _shapes(model: onnx.ModelProto) -> dict[str, str]:
    """{tensor: "64x32x32"}, as our edges write shapes (no batch axis)."""
    import onnx

    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 -- a graph shape inference cannot follow is drawn without its shapes
        pass
    g = model.graph
    return {v.name: "x".join(str(d.dim_value) if d.HasField("dim_value") else "?"
                             for d in v.type.tensor_type.shape.dim[1:]) for v in [*g.input, *g.value_info, *g.output]}


def _text(node: onnx.NodeProto, dims: dict[str, list[int]]) -> str:
    """One step in a few words, as the four's diagrams write it: 'conv 3x3 /2, 64→128', 'fc 512→10'."""
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    w = dims.get(node.input[1]) if len(node.input) > 1 else None
    if node.op_type in ("Conv", "ConvTranspose"):
        kind = "conv" if node.op_type == "Conv" else "deconv"
        if not w or len(w) != 4:
            return kind
        stride, groups = max(attrs.get("strides", [1])), attrs.get("group", 1)
        ins, out = (w[1] * groups, w[0]) if kind == "conv" else (w[0], w[1] * groups)
        grouped = " depthwise" if 1 < groups == ins else f" in {groups} groups" if groups > 1 else ""
        return f"{kind} {w[2]}x{w[3]}{f' /{stride}' if stride > 1 else ''}, {ins}→{out}{grouped}"
    if node.op_type in ("Gemm", "MatMul") and w and len(w) == 2:
        ins, out = (w[1], w[0]) if attrs.get("transB", 0) else (w[0], w[1])
        return f"fc {ins}→{out}"
    if node.op_type in ("MaxPool", "AveragePool"):
        k, s = attrs.get("kernel_shape", [1])[0], max(attrs.get("strides", [1]))
        return f"{'max' if node.op_type == 'MaxPool' else 'avg'} pool {k}x{k}{f' /{s}' if s != k else ''}"
    if node.op_type in ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax"):
        return f"global {'max' if 'Max' in node.op_type else 'avg'} pool"
    return WORDS.get(node.op_type, node.op_type.lower())


def _boxes(model: onnx.ModelProto) -> tuple[dict[str, Box], str]:
    """Every layer on the image's path as a Box, in the graph's (topological) order, and the box that gives
    the scores."""
    shapes = _shapes(model)
    dims = {t.name: list(t.dims) for t in model.graph.initializer}
    dims |= {n.output[0]: list(a.t.dims) for n in model.graph.node if n.op_type == "Constant"
             for a in n.attribute if a.name == "value"}
    image = next(i.name for i in model.graph.input if i.name not in dims)
    boxes = {"image": Box("image", ["image"], [], shapes.get(image, "3x32x32"))}
    made_by = {image: "image"}  # tensor -> the box that gives it
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for t in set(node.input):
            readers[t] = readers.get(t, 0) + 1
    for i, node in enumerate(model.graph.node):
        data = list(dict.fromkeys(t for t in node.input if t in made_by))
        if not data or node.op_type in STATIC:
            continue  # computed from weights, or from a tensor's shape: not the image's path
        src = boxes[made_by[data[0]]]
        if node.op_type in ALIASES:
            made_by[node.output[0]] = src.id
            continue
        module = module_name(node)
        params = sum(math.prod(dims[t]) for t in node.input if t in dims and t not in made_by)
        join = JOINS.get(node.op_type, "") if len(data) > 1 else ""
        text = join or _text(node, dims)
        shape = shapes.get(node.output[0], "")
        if not join and len(data) == 1 and src.id != "image" and readers.get(data[0]) == 1 \
                and not text.startswith(OWN_BOX):
            src.parts.append(text)  # ReLU, BN, flatten: the step joins the box before it
            src.ops.append(i)
            src.params += params
            src.shape = shape or src.shape
            src.modules += [module] if module and params else []
            made_by[node.output[0]] = src.id
            continue
        boxes[f"n{i}"] = Box(f"n{i}", [text], [made_by[t] for t in data], shape, module,
                             [module] if module and params else [], [i], params, join)
        made_by[node.output[0]] = f"n{i}"
    return boxes, made_by.get(model.graph.output[0].name, "image")


def _outs(boxes: dict[str, Box], box_id: str) -> list[str]:
    return [b.id for b in boxes.values() if box_id in b.ins]


def _fork(boxes: dict[str, Box], join: Box, order: dict[str, int], forks: dict[str, str]) -> str:
    """Where a join's inputs part: its immediate dominator (every path from the image to it passes there)."""
    def up(a: str, b: str) -> str:
        while a != b:
            while order[a] > order[b]:
                a = forks[a]
            while order[b] > order[a]:
                b = forks[b]
        return a

    found = join.ins[0]
    for other in join.ins[1:]:
        found = up(found, other)
    return found


def _steps_back(boxes: dict[str, Box], start: str, fork: str) -> int:
    """Boxes on the single-input path from `start` back to `fork`; a long number where the path branches."""
    steps, at = 0, start
    while at != fork:
        if len(boxes[at].ins) != 1 or steps > len(boxes):
            return len(boxes) + 1
        at, steps = boxes[at].ins[0], steps + 1
    return steps


def _skips(boxes: dict[str, Box]) -> dict[tuple[str, str], bool]:
    """{(source, join): whether it carries the input unchanged} for the edges that go around a block; each
    projection gets its role."""
    order = {b: i for i, b in enumerate(boxes)}
    forks: dict[str, str] = {}
    skips = {}
    for b in boxes.values():
        if not b.ins:
            continue
        forks[b.id] = b.ins[0] if len(b.ins) == 1 else _fork(boxes, b, order, forks)
        if b.join and len(b.ins) > 1:
            shortest = min(b.ins, key=lambda i: _steps_back(boxes, i, forks[b.id]))
            skips[shortest, b.id] = shortest == forks[b.id]
            if shortest != forks[b.id] and boxes[shortest].params and len(_outs(boxes, shortest)) == 1:
                boxes[shortest].role = "projection"
    return skips


def _merge(boxes: dict[str, Box], keep: Box, gone: list[Box], role: str = "") -> None:
    """`gone` into `keep`, which takes their steps, parameters and output; whoever read the last now reads it."""
    for g in gone:
        keep.parts += g.parts
        keep.ops += g.ops
        keep.modules += g.modules
        keep.params += g.params
        keep.shape = g.shape
        del boxes[g.id]
    for b in boxes.values():
        b.ins = [keep.id if i == gone[-1].id else i for i in b.ins]
    owners = [keep.owner, *(g.owner for g in gone)]
    while keep.owner and not all(o == keep.owner or o.startswith(keep.owner + ".") for o in owners):
        keep.owner = keep.owner.rpartition(".")[0]  # the module holding them all, as ours name a merged box
    keep.role = role or keep.role


def _branches(boxes: dict[str, Box], skips: dict) -> None:
    """Each chain of single-input boxes into a join, one box."""
    for join in [b for b in boxes.values() if b.join]:
        for start in list(join.ins):
            chain, at = [], start
            while at in boxes and len(boxes[at].ins) == 1 and not boxes[at].join and at != "image" \
                    and _outs(boxes, at) == [chain[-1] if chain else join.id]:
                chain.append(at)
                at = boxes[at].ins[0]
            if len(chain) > 1:
                first, *rest = [boxes[c] for c in reversed(chain)]
                _merge(boxes, first, rest, boxes[chain[0]].role)
                if (chain[0], join.id) in skips:
                    skips[first.id, join.id] = False


def _repeats(boxes: dict[str, Box], skips: dict) -> None:
    """Runs of identical blocks (an identity shortcut around one box into the same join) and of identical plain
    layers, each one box marked × N."""
    for a in list(boxes.values()):
        if a.id not in boxes or a.id == "image" or a.join:
            continue
        run = []
        while True:
            outs = _outs(boxes, a.id)  # a has taken in the repeats so far
            if len(outs) != 1:
                break
            nxt = boxes[outs[0]]
            if nxt.join:  # the block's join: an identity-shortcut block, when another like it follows
                fork, after = a.ins[0], _outs(boxes, nxt.id)
                twin = next((boxes[o] for o in after if not boxes[o].join), None)
                twin_join = next((boxes[o] for o in after if boxes[o].join), None)
                if not (twin and twin_join and (fork, nxt.id) in skips and (nxt.id, twin_join.id) in skips
                        and twin.parts == a.parts and twin.shape == a.shape and twin_join.parts == nxt.parts
                        and boxes[fork].shape == nxt.shape and twin.ins == [nxt.id]
                        and set(twin_join.ins) == {twin.id, nxt.id} and len(after) == 2):
                    break
                del boxes[nxt.id]
                twin_join.ins = [a.id if i == twin.id else fork for i in twin_join.ins]
                skips[fork, twin_join.id] = True
                run.append(twin)
                _merge_run(boxes, a, twin)
                continue
            if nxt.ins != [a.id] or nxt.parts != a.parts or nxt.shape != a.shape or boxes[a.ins[0]].shape != a.shape:
                break
            run.append(nxt)
            _merge_run(boxes, a, nxt)
        if run:
            a.role = f"× {len(run) + 1}"


def _merge_run(boxes: dict[str, Box], keep: Box, twin: Box) -> None:
    """A repeat folded into the first: its parameters and modules, not its steps (they are the same)."""
    keep.params += twin.params
    keep.modules += twin.modules
    keep.ops += twin.ops
    del boxes[twin.id]
    for b in boxes.values():
        b.ins = [keep.id if i == twin.id else i for i in b.ins]


def _as_diagram(model: onnx.ModelProto, level: str) -> Diagram:
    boxes, last = _boxes(model)
    if len(boxes) - 1 > MAX_LAYERS:
        raise ValueError(f"its graph has {len(boxes) - 1:,} layers on the image's path, over the {MAX_LAYERS} a "
                         "drawing is made from")
    skips = _skips(boxes)
    if level == "blocks":
        _branches(boxes, skips)
        _repeats(boxes, skips)
        last = last if last in boxes else next(b for b in reversed(boxes) if not _outs(boxes, b))
    stages = {b.owner.partition(".")[0] for b in boxes.values() if "." in b.owner}
    nodes = {"image": Node("image", "", ["image"]), "scores": Node("scores", "", ["class scores"])}
    clusters = []
    for s in sorted(stages, key=lambda s: min(i for i, b in enumerate(boxes.values()) if b.owner.startswith(s))):
        params = sum(b.params for b in boxes.values() if b.owner.partition(".")[0] == s and "." in b.owner)
        clusters.append(Cluster((s,), f"stage {s} · {params:,} params", "stage", s))
    for b in boxes.values():
        if b.id != "image":
            stage = b.owner.partition(".")[0] if "." in b.owner and len(stages) > 1 else ""
            nodes[b.id] = Node(b.id, b.owner, b.parts, b.ops or [0], b.modules, b.params, b.join, b.role,
                               cluster=(stage,) if stage else ())
    edges = [Edge(i, b.id, boxes[i].shape, skip=(i, b.id) in skips,
                  via="identity" if skips.get((i, b.id)) else "")
             for b in boxes.values() for i in b.ins]
    edges.append(Edge(last, "scores", boxes[last].shape))
    return Diagram("yours", level, boxes["image"].shape, nodes, edges, clusters if len(stages) > 1 else [])
