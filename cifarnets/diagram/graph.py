"""A network's block diagram as a graph, built from the path one image takes through its own modules.

The traced dataflow (architecture.trace) has a node for every leaf module and for every torch function
called between them, so what modules alone cannot show is there too: the residual addition, DenseNet's
concatenation, the SE block's scaling. From it:
- steps that only reshape or alias a tensor (indexing, view) and identity modules are taken out; an
  identity shortcut becomes an edge from the fork straight to the addition;
- an activation or a flatten joins the node before it ("conv 5x5 · ReLU");
- at the "blocks" level, a chain of steps inside one module (a residual branch, a transition, an SE
  block's excitation) becomes one node with its parameter count.
Every edge carries the shape of the tensor on it, as traced. Nothing here is written for one network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..models import build, count_params
from .architecture import Op, Trace, inside, is_identity, trace

LEVELS = ("blocks", "every layer")
# Functions that only index, reshape or convert a tensor: drawn as nothing, their consumer reads the source.
PASS_THROUGH = {"getitem", "view", "reshape", "unsqueeze", "squeeze", "contiguous", "to", "float", "expand",
                "expand_as", "type_as", "clone", "detach"}
FOLDED = {"relu": "ReLU", "ReLU": "ReLU", "sigmoid": "sigmoid", "Sigmoid": "sigmoid", "flatten": "flatten",
          "Flatten": "flatten"}  # joins the node before it
JOINS = {"add": "+", "cat": "concat", "mul": "×"}  # functions that combine tensors
LISTS = (nn.Sequential, nn.ModuleList)  # containers with no logic of their own: never a block


@dataclass
class Node:
    id: str
    owner: str  # the module whose code ran the node's first step ("" is the network itself)
    parts: list[str]  # what each step does, in order ("conv 3x3, 16→32 /2", "BN", "ReLU")
    ops: list[int] = field(default_factory=list)  # the trace's op indices
    modules: list[str] = field(default_factory=list)  # every module drawn here, by dotted name
    params: int = 0
    join: str = ""  # "+", "concat" or "×" where the node combines tensors
    role: str = ""  # "squeeze", "excite", "scale", "projection": found from the graph's shape, not by name
    global_pool: bool = False
    cluster: tuple[str, ...] = ()  # the stage, then the blocks around it, outermost first

    @property
    def first(self) -> int:
        return self.ops[0] if self.ops else -1


@dataclass
class Edge:
    src: str
    dst: str
    shape: str  # C x H x W of the tensor on the edge, as traced
    skip: bool = False  # goes around a block: a shortcut, a concatenation's carried input, the SE gate's bypass
    via: str = ""  # the identity module the tensor passed unchanged, if any


@dataclass
class Cluster:
    path: tuple[str, ...]
    label: str  # its parts joined by " · ": what it is, the module it draws, its parameters
    kind: str  # "stage" | "block"
    module: str = ""  # the module it draws, where one holds all of it


@dataclass
class Diagram:
    key: str
    level: str
    image: str  # the input's shape
    nodes: dict[str, Node]
    edges: list[Edge]
    clusters: list[Cluster]

    def ins(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.dst == node_id]

    def outs(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.src == node_id]


def op_text(op: Op, module: nn.Module | None) -> str:
    """One step in a few words: 'conv 3x3 /2, 16→32', 'BN', 'fc 64→10', 'max pool 2x2', '+'."""
    spatial = op.shape.count("x") == 2
    if module is None:
        if op.name in JOINS:
            return JOINS[op.name]
        if "pool" in op.name:
            kind = "max" if "max" in op.name else "avg"
            return f"global {kind} pool" if op.shape.endswith("x1x1") else f"{kind} pool"
        return FOLDED.get(op.name, op.name)
    if isinstance(module, nn.Conv2d):
        k, s = module.kernel_size, module.stride[0]
        return f"conv {k[0]}x{k[1]}{f' /{s}' if s > 1 else ''}, {module.in_channels}→{module.out_channels}"
    if isinstance(module, nn.Linear):
        return f"fc {module.in_features}→{module.out_features}"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "BN"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k, s = module.kernel_size, module.stride
        kind = "max" if isinstance(module, nn.MaxPool2d) else "avg"
        return f"{kind} pool {k}x{k}{f' /{s}' if s != k else ''}" if isinstance(k, int) else f"{kind} pool"
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        kind = "avg" if isinstance(module, nn.AdaptiveAvgPool2d) else "max"
        return f"global {kind} pool" if op.shape.endswith("x1x1") and spatial else f"adaptive {kind} pool"
    return FOLDED.get(type(module).__name__, type(module).__name__)


def _from_trace(key: str, level: str, t: Trace, modules: dict[str, nn.Module]) -> Diagram:
    nodes = {"image": Node("image", "", ["image"])}
    edges: list[Edge] = []
    identities: list[Op] = []
    for op in t.ops:
        module = modules[op.name] if op.kind == "module" else None
        if module is not None and is_identity(module):
            identities.append(op)
            continue
        name = op.name if op.call == 1 else f"{op.name} (call {op.call})"
        node = Node(f"n{op.index}", op.owner, [op_text(op, module)], [op.index],
                    [name] if module is not None else [], op.params, join=JOINS.get(op.name, "") if not module else "")
        node.global_pool = "pool" in node.parts[0] and "global" in node.parts[0]
        nodes[node.id] = node
        edges += [Edge("image" if src < 0 else f"n{src}", node.id, shape) for src, shape in op.inputs]
    nodes["scores"] = Node("scores", "", ["class scores"])
    edges.append(Edge(f"n{t.logits}", "scores", t.ops[t.logits].shape))
    d = Diagram(key, level, t.image, nodes, edges, [])
    for ident in identities:  # the tensor an identity hands on is its input: mark the edge into the join
        for src, _shape in ident.inputs:
            for e in d.outs("image" if src < 0 else f"n{src}"):
                if d.nodes[e.dst].join and d.nodes[e.dst].owner == ident.owner:
                    e.via = ident.name
    return d


def _remove(d: Diagram, node_id: str, into: str | None = None) -> None:
    """Take a node out; its consumers read from `into` (its one source by default)."""
    (feed,) = d.ins(node_id) if into is None else [e for e in d.ins(node_id) if e.src == into]
    for e in d.outs(node_id):
        e.src = feed.src
    d.edges = [e for e in d.edges if e.dst != node_id]
    del d.nodes[node_id]


def _hide_pass_through(d: Diagram, t: Trace) -> None:
    for node in list(d.nodes.values()):
        if len(node.ops) == 1 and t.ops[node.first].kind == "function" and t.ops[node.first].name in PASS_THROUGH \
                and len(d.ins(node.id)) == 1:
            _remove(d, node.id)


def _absorb(d: Diagram, keep: Node, gone: Node) -> None:
    """`gone`, fed only by `keep`, becomes part of it."""
    keep.parts += gone.parts
    keep.ops += gone.ops
    keep.modules += gone.modules
    keep.params += gone.params
    keep.global_pool = keep.global_pool or gone.global_pool
    _remove(d, gone.id, into=keep.id)


def _chained(d: Diagram, node: Node) -> Node | None:
    """The node feeding `node` when it is its only input and `node` is that node's only consumer."""
    ins = d.ins(node.id)
    if len(ins) != 1 or ins[0].src in ("image", "scores") or len(d.outs(ins[0].src)) != 1:
        return None
    return d.nodes[ins[0].src]


def _fold_activations(d: Diagram) -> None:
    for node in list(d.nodes.values()):
        if len(node.parts) == 1 and node.parts[0] in FOLDED.values() and (src := _chained(d, node)):
            _absorb(d, src, node)


def _merge_chains(d: Diagram) -> None:
    """Blocks level: a chain of steps that one module runs becomes one node (not the network's own steps)."""
    changed = True
    while changed:
        changed = False
        for node in list(d.nodes.values()):
            src = _chained(d, node)
            if src and node.owner and src.owner == node.owner and not (node.join or src.join) \
                    and not (node.global_pool or src.global_pool):
                _absorb(d, src, node)
                changed = True


def _mark_skips_and_roles(d: Diagram) -> None:
    for e in d.edges:  # from a fork straight into a join: the path that goes around
        e.skip = bool(d.nodes[e.dst].join) and len(d.outs(e.src)) > 1
    for join in [n for n in d.nodes.values() if n.join]:
        ins = d.ins(join.id)
        if join.join == "×":
            gate = next((d.nodes[e.src] for e in ins if d.nodes[e.src].parts[-1] == "sigmoid"), None)
            while gate is not None and not gate.global_pool:  # back from the sigmoid to the pooling
                gate.role = "excite"
                gate = _chained(d, gate)
            if gate is not None:
                gate.role, join.role = "squeeze", "scale"
        if join.join == "+" and len(ins) == 2 and not any(e.skip for e in ins):
            # Neither input comes straight from the fork: the shorter way back to it is the projection.
            # Only a path of one-input steps back to a fork counts (not the SE scaling, which has two).
            paths = []
            for e in ins:
                path, node = [], d.nodes[e.src]
                while len(d.outs(node.id)) == 1 and len(feed := d.ins(node.id)) == 1:
                    path.append(node)
                    node = d.nodes[feed[0].src]
                if path and len(d.outs(node.id)) > 1:
                    paths.append(path)
            if not paths:
                continue
            for node in min(paths, key=lambda p: sum(len(n.ops) for n in p)):  # the one with fewer steps
                node.role = "projection"
                for e in d.ins(node.id) + d.outs(node.id):
                    e.skip = True


def _stage_of(t: Trace, op_index: int) -> str:
    return next((s for s, end in t.stages.items() if op_index <= end), "head")


def _place(d: Diagram, t: Trace, modules: dict[str, nn.Module]) -> None:
    """Clusters: each stage of forward_intermediates (and the head after them), and inside, every module
    with logic of its own that holds two or more nodes (a residual block, a dense layer, an SE block)."""
    drawn = [n for n in d.nodes.values() if n.ops]
    stage_of = {n.id: _stage_of(t, max(n.ops)) for n in drawn}
    stages = list(dict.fromkeys(stage_of.values()))
    members = {s: {n for n, st in stage_of.items() if st == s} for s in stages}
    blocks: dict[str, set[str]] = {}
    for name, module in modules.items():
        if name and not isinstance(module, LISTS) and any(True for _ in module.children()):
            ids = {n.id for n in drawn if inside(n.owner, name)}
            if len(ids) >= 2 and len({stage_of[i] for i in ids}) == 1:
                blocks[name] = ids
    labels, holder_of = {}, {}
    for s in stages:
        for b in [b for b, ids in blocks.items() if ids == members[s]]:
            del blocks[b]  # the stage's own box says it
        # The stage names the module that holds it, where one does (DenseNet's block1 is features.2).
        holders = [name for name, module in modules.items() if name and not isinstance(module, LISTS)
                   and all(inside(d.nodes[i].owner, name) for i in members[s])]
        holder = holder_of[s] = max(holders, key=len) if holders else ""
        what = f" · {holder} ({type(modules[holder]).__name__})" if holder and holder != s else ""
        params = sum(d.nodes[i].params for i in members[s])
        # After the last stage come the pooling and the classifier; a network that names no stages is one box.
        head = "head: pooling and classifier" if t.stages else f"{type(modules['']).__name__}"
        title = head if s == "head" else f"stage {s}{what}"
        labels[s] = f"{title} · {params:,} params" if params else title
    kept = {}
    for name in sorted(blocks, key=len):  # outermost first; a block that draws what its parent does adds nothing
        if not any(blocks[name] == ids and inside(name, p) for p, ids in kept.items()):
            kept[name] = blocks[name]
    for n in drawn:
        n.cluster = (stage_of[n.id], *[b for b in kept if n.id in kept[b]])
    d.clusters = [Cluster((s,), labels[s], "stage", holder_of[s]) for s in stages]
    for name in kept:
        stage = stage_of[next(iter(kept[name]))]
        path = (stage, *[b for b in kept if b != name and inside(name, b)], name)
        outer = [holder_of[stage], *[b for b in kept if b != name and inside(name, b)]]
        base = max([o for o in outer if o and inside(name, o)], key=len, default="")
        short = name[len(base) + 1:] if base else name  # as the printout nests it: "se" in layer1.0
        label = f"{short} · {type(modules[name]).__name__} · {count_params(modules[name]):,} params"
        d.clusters.append(Cluster(path, label, "block", name))


def diagram(key: str, level: str = "blocks") -> Diagram:
    """The block diagram of network `key`, traced on a private copy that no one else holds."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    model = build(key)
    t = trace(model)
    modules = dict(model.named_modules())
    d = _from_trace(key, level, t, modules)
    _hide_pass_through(d, t)
    _fold_activations(d)
    if level == "blocks":
        _merge_chains(d)
    _mark_skips_and_roles(d)
    _place(d, t, modules)
    return d
