"""What each network is made of: its printout and the one tracer (trace) that follows a blank
32x32 image through a private copy, module by module and function by function; the layer table and the
block diagrams (diagram/) are read from it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..models import KEYS, build, count_params, label
from ..models.common import eval_mode


def overview(key: str) -> dict:
    """Label, class name, parameter count and the exact `print(model)` text of one network."""
    model = build(key)
    return {"key": key, "label": label(key), "class": type(model).__name__, "params": count_params(model),
            "printout": str(model)}


def param_counts() -> list[dict]:
    """One row per network, in the registry's order: what the parameter chart draws."""
    return [{"network": label(k), "params": count_params(build(k))} for k in KEYS]


def _type_name(module: nn.Module) -> str:
    # The identity shortcut of a ResNet block is an empty Sequential: say what it does.
    if is_identity(module):
        return "Identity (empty Sequential)" if isinstance(module, nn.Sequential) else "Identity"
    return type(module).__name__


def is_identity(module: nn.Module) -> bool:
    return isinstance(module, nn.Identity) or (isinstance(module, nn.Sequential) and len(module) == 0)


def shape_text(t: torch.Tensor) -> str:
    """'16x32x32' for one image's (C, H, W); the batch dimension is left out."""
    return "x".join(str(d) for d in t.shape[1:])


# ---------------------------------------------------------------- the one tracer

@dataclass
class Op:
    """One step an image takes: a leaf module's call, or a torch function called outside any leaf module
    (F.relu, the residual addition, DenseNet's concatenation, the SE block's scaling), which no module hook sees."""

    index: int
    kind: str  # "module" | "function"
    name: str  # a module's dotted name, or the function's name ("relu", "add", "cat", "mul", "flatten", ...)
    owner: str  # the module whose code made the call ("" is the network itself); for a module, its parent
    inputs: list[tuple[int, str]]  # (index of the op that made the tensor, -1 for the image; its shape)
    shape: str = "?"  # the output, C x H x W
    params: int = 0  # a module's own parameters, on its first call only
    call: int = 1  # the how-manieth call of this module (the CNN calls its max pool twice)


@dataclass
class ContainerCall:
    """A module with children, between its first and last op (end exclusive), and its output."""

    name: str
    start: int
    end: int
    shape: str


@dataclass
class Trace:
    image: str  # the input's shape
    ops: list[Op]
    containers: list[ContainerCall]
    stages: dict[str, int] = field(default_factory=dict)  # forward_intermediates' stage -> the op that made it
    logits: int = -1  # the op that made the class scores


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _tensors(item)]
    return []


def _function_name(func) -> str:
    name = getattr(func, "__name__", None) or str(func)
    return name.strip("_") if name.startswith("__") else name  # Tensor.__add__ -> add


class _Recorder(TorchFunctionMode):
    """Hooks on every module and a torch-function mode, on a private model: the image's whole path."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.names = {id(m): n for n, m in model.named_modules()}
        self.ops: list[Op] = []
        self.containers: list[ContainerCall] = []
        self.made_by: dict[int, int] = {}  # id(tensor) -> op index
        self.keep: list[torch.Tensor] = []  # every tensor seen stays alive, so no id is reused mid-trace
        self.inside_leaf = 0
        self.open: list[tuple[str, int]] = []
        self.calls: dict[str, int] = {}

    def made(self, t: torch.Tensor, index: int) -> None:
        self.made_by[id(t)] = index
        self.keep.append(t)

    def inputs(self, args) -> list[tuple[int, str]]:
        return [(self.made_by[id(t)], shape_text(t)) for t in _tensors(args) if id(t) in self.made_by]

    def before(self, module: nn.Module, args) -> None:
        name = self.names[id(module)]
        if any(True for _ in module.children()):
            self.open.append((name, len(self.ops)))
            return
        self.calls[name] = self.calls.get(name, 0) + 1
        first = self.calls[name] == 1
        self.ops.append(Op(len(self.ops), "module", name, name.rpartition(".")[0], self.inputs(args),
                           params=count_params(module) if first else 0, call=self.calls[name]))
        self.inside_leaf += 1

    def after(self, module: nn.Module, args, output) -> None:
        outs = _tensors(output)
        if any(True for _ in module.children()):
            name, start = self.open.pop()
            self.containers.append(ContainerCall(name, start, len(self.ops), shape_text(outs[0]) if outs else "?"))
            return
        self.inside_leaf -= 1
        op = next(o for o in reversed(self.ops) if o.kind == "module" and o.name == self.names[id(module)])
        if outs:
            op.shape = shape_text(outs[0])
            # An identity (an empty Sequential) hands back its input: that tensor stays its maker's, so the
            # addition it feeds is drawn straight from the fork, as the shortcut it is.
            if not any(outs[0] is t for t in _tensors(args)):
                self.made(outs[0], op.index)

    def owner(self) -> str:
        """The innermost module whose own code is running: any method of it (forward, forward_with_gate, gate)."""
        frame = sys._getframe(2)
        while frame is not None:
            obj = frame.f_locals.get("self")
            if isinstance(obj, nn.Module) and id(obj) in self.names:
                return self.names[id(obj)]
            frame = frame.f_back
        return ""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.inside_leaf or not isinstance(out, torch.Tensor):
            return out
        inputs = self.inputs((args, kwargs or {}))
        if not inputs or any(out is t for t in _tensors(args)):  # constants, or an op that hands back its input
            return out
        op = Op(len(self.ops), "function", _function_name(func), self.owner(), inputs, shape_text(out))
        self.ops.append(op)
        self.made(out, op.index)
        return out


def trace(model: nn.Module, size: int = 32) -> Trace:
    """Follow one blank size x size image through `model`, which must be private: hooks go on it for the
    trace (and come off after), and it runs in eval mode. Stage outputs come from forward_intermediates."""
    recorder = _Recorder(model)
    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(recorder.before))
            handles.append(module.register_forward_hook(recorder.after))
    image = torch.zeros(1, 3, size, size, device=next(model.parameters()).device)
    recorder.made(image, -1)
    try:
        with eval_mode(model), torch.no_grad(), recorder:
            out = model.forward_intermediates(image) if hasattr(model, "forward_intermediates") else model(image)
    finally:
        for h in handles:
            h.remove()
    result = Trace(shape_text(image), recorder.ops, recorder.containers)
    logits = out.logits if hasattr(out, "logits") else out
    result.logits = recorder.made_by.get(id(logits), len(recorder.ops) - 1)
    for stage, t in getattr(out, "stages", {}).items():
        if id(t) in recorder.made_by:
            result.stages[stage] = recorder.made_by[id(t)]
    return result


def inside(name: str, container: str) -> bool:
    return not container or name == container or name.startswith(container + ".")


def op_module(op: Op) -> str:
    """The module an op belongs to: itself for a module, the module whose code called it for a function."""
    return op.name if op.kind == "module" else op.owner


def container_spans(t: Trace, name: str) -> list[ContainerCall]:
    """Each call of a container; one whose own forward was bypassed (ResNet's forward_intermediates walks
    its stages' blocks itself) spans its first to its last op, and outputs what its last op made."""
    spans = [c for c in t.containers if c.name == name]
    if spans:
        return spans
    mine = [op for op in t.ops if inside(op_module(op), name)]
    return [ContainerCall(name, mine[0].index, mine[-1].index + 1, mine[-1].shape)] if mine else []


def layer_table(model: nn.Module, depth: int | None = None, size: int = 32) -> list[dict]:
    """The modules an image passes through, in the order it meets them, traced on one size x size image.

    Rows: layer (dotted name), type, output (C x H x W), params (the module's own, counted once: a
    module called twice, like the CNN's shared max pool, gets a second row with 0). With `depth`, the
    table stops at that nesting level (1: the top-level blocks). Operations written as functions in
    forward() (F.relu, additions, concatenation) are not modules and have no row.
    """
    t = trace(model, size)
    modules = dict(model.named_modules())
    units: list[tuple[int, dict]] = []  # (first op, row)
    folded = []  # containers at `depth`: their insides have no rows of their own
    if depth is not None:
        for name, module in modules.items():
            if name and name.count(".") + 1 == depth and any(True for _ in module.children()):
                for i, span in enumerate(container_spans(t, name)):
                    folded.append(name)
                    units.append((span.start, {"layer": name if i == 0 else f"{name} (call {i + 1})",
                                               "type": _type_name(module), "output": span.shape,
                                               "params": count_params(module) if i == 0 else 0}))
    for op in t.ops:
        if op.kind == "module" and not any(inside(op.name, c) for c in folded):
            units.append((op.index, {"layer": op.name if op.call == 1 else f"{op.name} (call {op.call})",
                                     "type": _type_name(modules[op.name]), "output": op.shape,
                                     "params": op.params}))
    return [row for _, row in sorted(units, key=lambda u: u[0])]
