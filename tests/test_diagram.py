"""Block diagrams drawn from the networks' own modules: every module with parameters drawn once, and the
shapes on the edges the traced ones."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from cifarnets.diagram import LEVELS, diagram, to_dot, to_dot_side_by_side
from cifarnets.diagram.architecture import layer_table, trace
from cifarnets.models import EXTRA_KEYS, KEYS, build

NETWORKS = KEYS + EXTRA_KEYS
CALL = re.compile(r" \(call \d+\)$")


def modules_with_parameters(key: str) -> set[str]:
    return {name for name, m in build(key).named_modules() if any(True for _ in m.parameters(recurse=False))}


def drawn_modules(dot: str) -> Counter:
    """Every module name in the node tooltips of a DOT text (a node lists the modules it draws)."""
    names = Counter()
    for tip in re.findall(r'^\s*\w+ \[label=.*tooltip="([^"]*)"', dot, flags=re.M):
        names.update(CALL.sub("", n) for n in tip.split(", "))
    return names


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("key", NETWORKS)
def test_every_module_with_parameters_is_drawn_exactly_once(key, level):
    d = diagram(key, level)
    wanted = modules_with_parameters(key)
    in_graph = Counter(CALL.sub("", m) for n in d.nodes.values() for m in n.modules)
    assert {m: in_graph[m] for m in wanted} == dict.fromkeys(wanted, 1)
    in_dot = drawn_modules(to_dot(d))
    assert {m: in_dot[m] for m in wanted} == dict.fromkeys(wanted, 1)
    assert sum(n.params for n in d.nodes.values()) == sum(p.numel() for p in build(key).parameters())


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("key", NETWORKS)
def test_edges_carry_the_traced_shapes(key, level):
    d = diagram(key, level)
    t = trace(build(key))
    outputs = {r["layer"]: r["output"] for r in layer_table(build(key))}
    dot = to_dot(d)
    for e in d.edges:
        assert e.src in d.nodes and e.dst in d.nodes
        src = d.nodes[e.src]
        if src.ops:
            last = t.ops[max(src.ops)]
            if last.kind == "module":  # what a module made, as the layer table traced it
                assert e.shape == outputs[last.name if last.call == 1 else f"{last.name} (call {last.call})"]
            if not d.nodes[e.dst].join:  # into a join, a reshaped view may arrive (the SE gate as Cx1x1)
                assert e.shape == last.shape
        else:
            assert e.shape == t.image == "3x32x32"
        assert re.search(rf'^\s*{e.src} -> {e.dst} \[x?label="{re.escape(e.shape)}', dot, flags=re.M)
    assert d.ins("scores")[0].shape == "10"


def test_resnet_draws_its_shortcuts_identity_and_projection():
    d = diagram("resnet")
    adds = [n for n in d.nodes.values() if n.join == "+"]
    assert len(adds) == 6  # one per residual block
    assert sorted(e.via for e in d.edges if e.via) == ["layer1.0.shortcut", "layer1.1.shortcut",
                                                       "layer2.1.shortcut", "layer3.1.shortcut"]
    projections = [n for n in d.nodes.values() if n.role == "projection"]
    assert [n.modules for n in projections] == [["layer2.0.shortcut.0", "layer2.0.shortcut.1"],
                                                ["layer3.0.shortcut.0", "layer3.0.shortcut.1"]]
    assert [n.parts for n in projections] == [["conv 1x1 /2, 16→32", "BN"], ["conv 1x1 /2, 32→64", "BN"]]
    assert [d.outs(n.id)[0].shape for n in projections] == ["32x16x16", "64x8x8"]
    assert all(e.skip for n in projections for e in d.ins(n.id) + d.outs(n.id))
    # each block's branch (conv-BN-ReLU-conv-BN) is one box at the blocks level, four at every layer
    branch = next(n for n in d.nodes.values() if n.modules and n.modules[0] == "layer2.1.conv1")
    assert branch.parts == ["conv 3x3, 32→32", "BN", "ReLU", "conv 3x3, 32→32", "BN"]
    assert branch.params == 18560
    assert len(diagram("resnet", "every layer").nodes) > len(d.nodes)


def test_the_plain_resnet_has_no_shortcut_to_draw():
    d = diagram("resnet_plain")
    assert not any(n.join for n in d.nodes.values()) and not any(e.skip or e.via for e in d.edges)
    assert [c.path for c in d.clusters if c.kind == "stage"] == [("stem",), ("layer1",), ("layer2",), ("layer3",),
                                                                  ("head",)]


def test_densenet_concatenations_grow_the_channels_along_the_edges():
    d = diagram("densenet")
    cats = [n for n in d.nodes.values() if n.join == "concat"]
    assert len(cats) == 9
    carried = [e.shape for c in cats for e in d.ins(c.id) if e.skip]
    out = [d.outs(c.id)[0].shape for c in cats]
    assert carried == ["64x8x8", "76x8x8", "88x8x8", "128x4x4", "140x4x4", "152x4x4", "64x2x2", "76x2x2", "88x2x2"]
    assert out == ["76x8x8", "88x8x8", "100x8x8", "140x4x4", "152x4x4", "164x4x4", "76x2x2", "88x2x2", "100x2x2"]
    # ...as the dense layers' own forward hooks saw them
    rows = {r["layer"]: r["output"] for r in layer_table(build("densenet"), depth=4)}
    assert out == [rows[f"features.{b}.layers.{i}"] for b in (2, 4, 6) for i in range(3)]
    labels = [c.label for c in d.clusters if c.kind == "stage"]
    assert labels[1] == "stage block1 · features.2 (DenseBlock) · 25,080 params"


def test_se_resnet_draws_squeeze_excite_and_scale_beside_the_branch():
    d = diagram("se_resnet")
    roles = Counter(n.role for n in d.nodes.values() if n.role)
    assert roles == {"squeeze": 6, "excite": 6, "scale": 6, "projection": 2}
    excite = next(n for n in d.nodes.values() if n.role == "excite")
    assert excite.parts == ["fc 16→1", "ReLU", "fc 1→16", "sigmoid"] and excite.params == 49
    assert excite.cluster == ("layer1", "layer1.0", "layer1.0.se")
    scale = next(n for n in d.nodes.values() if n.role == "scale")
    assert sorted(e.shape for e in d.ins(scale.id)) == ["16x1x1", "16x32x32"]  # the gate, and the branch


def test_cnn_is_drawn_layer_by_layer_with_the_flatten_into_fc1():
    d = diagram("cnn")
    assert [(n.modules, n.parts) for n in d.nodes.values() if n.ops] == [
        (["conv1"], ["conv 5x5, 3→6", "ReLU"]), (["pool"], ["max pool 2x2"]), (["conv2"], ["conv 5x5, 6→16", "ReLU"]),
        (["pool (call 2)"], ["max pool 2x2", "flatten"]), (["fc1"], ["fc 400→120", "ReLU"]),
        (["fc2"], ["fc 120→84", "ReLU"]), (["fc3"], ["fc 84→10"])]
    assert [e.shape for e in d.edges] == ["3x32x32", "6x28x28", "6x14x14", "16x10x10", "400", "120", "84", "10"]


def test_side_by_side_is_one_drawing_of_the_four():
    dot = to_dot_side_by_side([diagram(k) for k in KEYS], list(KEYS))
    assert dot.count("subgraph cluster_net") == 4
    for i, key in enumerate(KEYS):
        assert f"d{i}_image ->" in dot
        assert {m for m, n in drawn_modules(dot).items() if n} >= modules_with_parameters(key) - {""}
    assert dot.count("{") == dot.count("}")


def test_tracing_leaves_the_model_as_it_was():
    model = build("se_resnet")
    trace(model)
    assert model.training
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="unknown level"):
        diagram("cnn", "everything")
