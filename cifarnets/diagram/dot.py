"""Diagrams as Graphviz DOT, for st.graphviz_chart (drawn in the browser: no Graphviz package needed)."""

from __future__ import annotations

from html import escape

from .architecture import inside
from .graph import Diagram, Node

WRAP = 30  # characters per line of a node's text
SKIP = "#d95f02"  # shortcuts and carried inputs: the edges the report's argument is about
FILL = {"layer": "#e8f0fb", "op": "#f4f4f4", "join": "#fff1c9", "io": "#ffffff"}
CLUSTER_FILL = {"stage": "#fbfbfb", "block": "#f1f5f9"}
GATE_FILL = "#fdeee8"  # the SE branch
GRAPH = [
    '  graph [rankdir=TB, newrank=true, nodesep=0.25, ranksep=0.32, fontname="Helvetica", fontsize=11, '
    'labeljust=l, bgcolor="transparent", forcelabels=true];',
    '  node [style="rounded,filled", fontname="Helvetica", fontsize=10, margin="0.12,0.05", color="#7b8794"];',
    '  edge [fontname="Helvetica", fontsize=9, fontcolor="#444444", color="#7b8794", arrowsize=0.6];']


def _wrap(parts: list[str]) -> list[str]:
    """Steps joined by ' · ': a layer with weights (conv, fc) starts a line, what follows it (BN, ReLU)
    stays on it, and no line runs much past WRAP characters."""
    lines, line = [], ""
    for part in parts:
        weighted = part.startswith(("conv", "fc"))
        if line and (weighted or len(line) + 3 + len(part) > WRAP):
            lines.append(line)
            line = part
        else:
            line = f"{line} · {part}" if line else part
    return lines + ([line] if line else [])


def _kind(node: Node) -> str:
    if not node.ops:
        return "io"
    return "join" if node.join else "layer" if node.params else "op"


def _relative(d: Diagram, node: Node, name: str) -> str:
    """`name` as the printout nests it under the innermost box around the node ('conv1' in layer1.0)."""
    held = [c.module for c in d.clusters if c.module and c.path == node.cluster[:len(c.path)]
            and inside(name, c.module) and name != c.module]
    base = max(held, key=len, default="")
    return name[len(base) + 1:] if base else name


def title(d: Diagram, node: Node) -> str:
    """A node's name: its module's, for one module; for merged steps, the module running them where no
    box around them already names it; a role found from the graph comes first."""
    if not node.ops:
        return node.parts[0]
    if node.join:
        return "× scale" if node.role == "scale" else node.join
    if node.modules and (d.level == "every layer" or len(node.modules) == 1):
        name = _relative(d, node, node.modules[0])  # what follows the module (a ReLU) is folded into it
    else:
        boxed = any(c.module == node.owner for c in d.clusters)
        # An owner that reaches into other stages (DenseNet's `features`) names more than these steps.
        wide = len({n.cluster[:1] for n in d.nodes.values() if n.ops and inside(n.owner, node.owner)}) > 1
        name = "" if boxed or wide or not node.owner else _relative(d, node, node.owner)
        name = "" if name.split(".")[-1].isdigit() else name  # a list's item number says nothing
    if node.role:
        return f"{node.role} ({name})" if name and node.role == "projection" else \
            f"{node.role}: {name}" if name else node.role
    return name


def _label(d: Diagram, node: Node) -> str:
    head = title(d, node)
    rows = [f"<b>{escape(head)}</b>"] if head else []
    body = node.parts[1:] if node.join or not node.ops else node.parts
    rows += [escape(line) for line in _wrap(body)]
    if node.params:
        rows.append(f'<font color="#666666">{node.params:,} params</font>')
    return "<" + "<br/>".join(rows or ["&nbsp;"]) + ">"


def _node_line(d: Diagram, node: Node, prefix: str) -> str:
    kind = _kind(node)
    fill = GATE_FILL if node.role in ("squeeze", "excite") else FILL[kind]
    shape = {"join": "ellipse", "io": "note"}.get(kind, "box")
    tip = escape(", ".join(node.modules) or " · ".join(node.parts), quote=True)
    extra = f', color="{SKIP}", penwidth=1.4' if node.role == "projection" else ""
    return f'{prefix}{node.id} [label={_label(d, node)}, shape={shape}, fillcolor="{fill}", tooltip="{tip}"{extra}];'


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cluster_label(label: str) -> str:
    """A box's label as DOT text: a part a line, left-aligned, in plain text (Graphviz measures it itself:
    separately styled runs came out with a gap). The first line is padded with no-break spaces to twice the
    longest: Graphviz puts a box's label across its top, where the edges come in, and nodes in the middle,
    so the words keep to the left half and the edges pass them by."""
    lines = label.split(" · ")
    width = 2 * max(len(line) for line in lines)
    lines[0] += "\u00a0" * (width - len(lines[0]))
    return "".join(_quoted(line)[1:-1] + "\\l" for line in lines)


def _clusters(d: Diagram, prefix: str, path: tuple, depth: int) -> list[str]:
    pad = "  " * depth
    out = [pad + _node_line(d, n, prefix) for n in d.nodes.values() if n.cluster == path and n.ops]
    for i, c in enumerate(d.clusters):
        if c.path[:-1] != path:
            continue
        gate = c.kind == "block" and any(n.role in ("squeeze", "excite") and c.path == n.cluster
                                         for n in d.nodes.values())
        fill = GATE_FILL if gate else CLUSTER_FILL[c.kind]
        border = "#9aa5b1" if c.kind == "stage" else "#c5ced8"
        out += [f"{pad}subgraph cluster_{prefix}{i} {{",
                f'{pad}  label="{_cluster_label(c.label)}"; labeljust=l; fontsize=10; style="rounded,filled"; '
                f'fillcolor="{fill}"; color="{border}";',
                *_clusters(d, prefix, c.path, depth + 1), pad + "}"]
    return out


def _body(d: Diagram, prefix: str = "", depth: int = 1) -> list[str]:
    """Nodes in their boxes, then the edges, each carrying the traced shape of its tensor."""
    pad = "  " * depth
    out = [pad + _node_line(d, d.nodes[io], prefix) for io in ("image", "scores")]
    out += _clusters(d, prefix, (), depth)
    for e in d.edges:
        text = f"{e.shape}\\nidentity" if e.via else e.shape
        # A shortcut's label goes beside its line once the line is drawn (xlabel): as an ordinary label,
        # Graphviz gave it a place of its own in the layout, for a shortcut into a box far from the line.
        attrs = [f'xlabel="{text}"' if e.skip else f'label="{text}"']
        if e.skip:
            attrs += [f'color="{SKIP}"', f'fontcolor="{SKIP}"', "penwidth=1.6", 'style="dashed"']
        if e.via:
            attrs.append(f"tooltip={_quoted(e.via)}")
        out.append(f"{pad}{prefix}{e.src} -> {prefix}{e.dst} [{', '.join(attrs)}];")
    return out


def to_dot(d: Diagram) -> str:
    """One network, top to bottom: a box per stage and per block, the tensor's shape on every edge,
    shortcuts and carried inputs in orange."""
    return "\n".join(["digraph {", *GRAPH, *_body(d), "}"])


def to_dot_side_by_side(diagrams: list[Diagram], titles: list[str]) -> str:
    """Several networks in one drawing, at one scale, so that a deeper network also looks deeper.
    (Graphviz's pack, which would lay each out on its own, never finished in the browser with clusters.)"""
    out = ["digraph {", *[g.replace("newrank=true", "newrank=false") for g in GRAPH]]
    for i, (d, text) in enumerate(zip(diagrams, titles, strict=True)):
        out += [f"  subgraph cluster_net{i} {{",
                f'    label={_quoted(text)}; fontsize=18; labeljust=c; style="solid"; color="transparent";',
                *_body(d, prefix=f"d{i}_", depth=2), "  }"]
    return "\n".join([*out, "}"])
