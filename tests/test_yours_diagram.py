"""Your network's diagram, drawn from its ONNX graph (yours/onnxdiagram.py): a residual Add's shortcut is an orange
edge, a ResNet-18 stays within a readable number of boxes, and a graph only onnxruntime runs is drawn too."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_yours import raw, tiny_graph
from test_yours_resnet18 import resnet18_for_cifar, student_export

from cifarnets.diagram.dot import SKIP
from cifarnets.yours import load_network, onnxdiagram

RNG = np.random.default_rng(0)


def weight(name: str, *shape: int):
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32) * 0.1, name)


def graph(nodes, weights, name="g") -> onnx.ModelProto:
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], weights)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def residual_graph(join: str = "Add") -> onnx.ModelProto:
    """stem conv; then a block of two convs whose output is added to (or concatenated with) the stem's; head."""
    branch = 8 if join == "Add" else 16  # a concatenation's branch adds channels: 8 + 16 = 24
    nodes = [helper.make_node("Conv", ["input", "w0"], ["s"], pads=[1] * 4, name="/stem/Conv"),
             helper.make_node("Relu", ["s"], ["sr"], name="/stem_relu/Relu"),
             helper.make_node("Conv", ["sr", "w1"], ["a"], pads=[1] * 4, name="/block/conv1/Conv"),
             helper.make_node("Relu", ["a"], ["ar"], name="/block/relu/Relu"),
             helper.make_node("Conv", ["ar", "w2"], ["b"], pads=[1] * 4, name="/block/conv2/Conv"),
             helper.make_node(join, ["b", "sr"], ["j"], name=f"/block/{join}", **({"axis": 1} if join == "Concat"
                                                                                   else {})),
             helper.make_node("GlobalAveragePool", ["j"], ["g"], name="/pool/GlobalAveragePool"),
             helper.make_node("Flatten", ["g"], ["f"], name="/Flatten"),
             helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1, name="/fc/Gemm")]
    joined = 8 if join == "Add" else 8 + branch
    return graph(nodes, [weight("w0", 8, 3, 3, 3), weight("w1", 8, 8, 3, 3), weight("w2", branch, 8, 3, 3),
                         weight("fc", 10, joined)])


def edge(dot: str, src_text: str, dst_text: str) -> str:
    """The DOT line of the edge from the node whose label holds `src_text` to the one whose label holds `dst_text`."""
    ids = {t: re.search(rf"^\s*(\w+) \[label=<[^\n]*{re.escape(t)}", dot, re.M).group(1) for t in (src_text, dst_text)}
    return re.search(rf"^\s*{ids[src_text]} -> {ids[dst_text]} \[.*$", dot, re.M).group(0)


@pytest.mark.parametrize("level", ["blocks", "every layer"])
def test_a_residual_add_draws_its_shortcut_as_an_orange_edge(level):
    dot = onnxdiagram.dots(residual_graph())[level]
    shortcut = edge(dot, "conv 3x3, 3→8 · ReLU", "<b>+</b>")
    assert f'color="{SKIP}"' in shortcut and "dashed" in shortcut and "8x32x32\\nidentity" in shortcut
    branch_end = "conv 3x3, 8→8<br/>" if level == "every layer" else "conv 3x3, 8→8 · ReLU<br/>conv 3x3, 8→8"
    assert SKIP not in edge(dot, branch_end, "<b>+</b>")  # the branch itself is an ordinary edge
    assert edge(dot, "fc 8→10", "class scores")
    if level == "blocks":  # the branch's two convolutions are one box
        assert dot.count("conv 3x3, 8→8") == 2 and dot.count("shape=box") == 4


def test_a_concatenation_carries_its_input_in_orange():
    dot = onnxdiagram.dots(residual_graph("Concat"))["every layer"]
    carried = edge(dot, "conv 3x3, 3→8 · ReLU", "<b>concat</b>")
    assert f'color="{SKIP}"' in carried and "8x32x32" in carried
    assert "16x32x32" in edge(dot, "conv 3x3, 8→16", "<b>concat</b>") and "24x32x32" in dot


def test_a_resnet18_is_drawn_within_the_budget_with_its_shortcuts():
    model = onnx.load_model_from_string(student_export(resnet18_for_cifar()))
    assert len(model.graph.node) > 60
    blocks, every = (onnxdiagram.diagram(model, level) for level in ("blocks", "every layer"))
    assert len(every.nodes) <= 40 and len(blocks.nodes) <= 25  # boxes and the image and scores
    assert sum(e.skip for e in every.edges) == 8  # one shortcut a residual block
    assert sum(n.role == "projection" for n in blocks.nodes.values()) == 3  # the 1x1 /2 ones
    assert any(n.role == "× 2" for n in blocks.nodes.values())  # layer1's two identical blocks, drawn once
    assert {c.module for c in blocks.clusters} == {"layer1", "layer2", "layer3", "layer4"}
    assert "512x4x4" in onnxdiagram.dots(model)["every layer"]


def test_a_graph_only_onnxruntime_runs_is_drawn_too(monkeypatch):
    monkeypatch.setattr("cifarnets.yours.convert.to_torch", lambda model, raw, expected: (None, "a test"))
    network = load_network("res.onnx", "res", raw=raw(residual_graph()))
    assert network.module is None and "block diagram" not in network.unavailable
    assert SKIP in network.diagrams["blocks"] and "digraph" in network.diagrams["every layer"]


def test_a_graph_too_large_to_draw_says_so_in_one_line():
    widths = list(range(4, 4 + onnxdiagram.MAX_BOXES + 2))  # every conv different: nothing repeats
    nodes = [helper.make_node("Conv", [f"x{i}" if i else "input", f"w{i}"], [f"x{i + 1}"], pads=[1] * 4)
             for i in range(len(widths))]
    weights = [weight(f"w{i}", w, widths[i - 1] if i else 3, 3, 3) for i, w in enumerate(widths)]
    nodes += [helper.make_node("GlobalAveragePool", [f"x{len(widths)}"], ["g"]),
              helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1)]
    model = graph(nodes, [*weights, weight("fc", 10, widths[-1])])
    with pytest.raises(ValueError, match=f"over the {onnxdiagram.MAX_BOXES} a drawing holds") as e:
        onnxdiagram.dots(model)
    assert "\n" not in str(e.value)


def test_a_graph_without_module_names_is_drawn_plainly():
    dot = onnxdiagram.dots(tiny_graph())["every layer"]
    assert "conv 3x3, 3→4 · ReLU" in dot and "global avg pool · flatten" in dot and "cluster" not in dot


def test_a_graph_of_thousands_of_layers_is_refused_before_any_collapsing():
    """Collapsing blocks is quadratic in the layers, and runs in the server: 2,400 residual steps stop at once."""
    nodes, x = [], "input"
    for i in range(2400):
        nodes += [helper.make_node("Relu", [x], [f"r{i}"]), helper.make_node("Add", [f"r{i}", x], [f"a{i}"])]
        x = f"a{i}"
    nodes += [helper.make_node("GlobalAveragePool", [x], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1)]
    with pytest.raises(ValueError, match=f"layers on the image's path, over the {onnxdiagram.MAX_LAYERS}"):
        onnxdiagram.dots(graph(nodes, [weight("fc", 10, 3)]))
