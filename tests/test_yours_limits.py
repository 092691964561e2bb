"""The conversion to PyTorch runs under an enforced time limit (yours/conversion.py): a conversion that never ends
is stopped in its child process at the limit, with one line, and the network still answers through onnxruntime.
The slow conversion is made by a child that never finishes, not by timing the machine."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from test_yours import raw, tiny_graph

from cifarnets.yours import conversion, convert, load_network

NEVER_ENDS = [sys.executable, "-c", "import sys, time; sys.stdin.buffer.read(); sys.stdout.buffer.write(b'R'); "
                                    "sys.stdout.buffer.flush(); time.sleep(3600)"]


def test_the_child_converts_and_answers_like_the_server():
    model = tiny_graph()
    got = conversion.run(raw(model), convert.probe_images(), convert.CONVERT_LIMIT_S)
    assert isinstance(got, np.ndarray) and got.shape == (convert.PROBE, 10)
    module = conversion.torch_module(model)
    with torch.no_grad():
        assert np.allclose(module(torch.from_numpy(convert.probe_images())).numpy(), got, atol=1e-5)


def test_a_conversion_that_never_ends_is_stopped_at_the_limit(monkeypatch):
    monkeypatch.setattr(conversion, "CHILD", NEVER_ENDS)
    tick = time.monotonic()
    why = conversion.run(raw(tiny_graph()), convert.probe_images(), 1.0)
    assert why == f"converting it to PyTorch and answering {convert.PROBE} images took over 1 s"
    assert time.monotonic() - tick < 60  # stopped, not waited out (an hour)


def test_a_network_whose_conversion_never_ends_answers_through_onnxruntime(monkeypatch):
    monkeypatch.setattr(conversion, "CHILD", NEVER_ENDS)
    monkeypatch.setattr(convert, "CONVERT_LIMIT_S", 1.0)
    network = load_network("slow.onnx", "slow", raw=raw(tiny_graph()))
    assert network.module is None and not network.gradients
    assert network.unavailable["attacks"].endswith(f"converting it to PyTorch and answering {convert.PROBE} images "
                                                   "took over 1 s")
    with torch.no_grad():
        assert network.answerer(torch.zeros(2, 3, 32, 32)).shape == (2, 10)  # the rest keeps working


def test_a_child_that_dies_says_so_in_one_line(monkeypatch):
    monkeypatch.setattr(conversion, "CHILD", [sys.executable, "-c", "import sys; sys.stdin.buffer.read(); "
                                                                    "sys.exit('boom')"])
    why = conversion.run(raw(tiny_graph()), convert.probe_images(), 5.0)
    assert why == "its conversion to PyTorch failed (boom)"


def test_a_bias_shared_through_an_identity_converts():
    """PyTorch's exporter shares equal weights through Identity nodes (an untrained network's folded biases);
    onnx2torch 1.5 alone cannot look such a bias up."""
    from onnx import helper, numpy_helper

    model = tiny_graph()
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(4, np.float32), "b"))
    conv = model.graph.node[0]
    conv.input.append("b_shared")
    model.graph.node.insert(0, helper.make_node("Identity", ["b"], ["b_shared"]))
    network = load_network("shared.onnx", "shared", raw=raw(model))
    assert network.module is not None, network.unavailable
    assert [n.op_type for n in model.graph.node][0] == "Identity"  # the caller's model is left as it was
