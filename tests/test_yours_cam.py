"""Your network on Why they differ: Grad-CAM on the last convolution of a converted graph, the four's own Grad-CAM for
a checkpoint of one of our architectures, and one line where only onnxruntime runs it (no gradients)."""

from __future__ import annotations

import numpy as np
import torch
from test_yours import SHIPPED, raw, tiny_graph

from cifarnets.analysis.gradcam import grad_cam
from cifarnets.store.export import checkpoint_zip
from cifarnets.yours import load_network
from cifarnets.yours.anatomy import cam

X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_a_converted_graph_has_a_grad_cam_on_its_last_convolution():
    network = load_network("tiny.onnx", "tiny", raw=raw(tiny_graph()))
    got = cam(network, X, 3)
    assert not isinstance(got, str)
    assert got.heat.shape == (32, 32) and got.grid == (32, 32) and (got.heat >= 0).all()
    with torch.no_grad():
        assert np.isclose(got.score, float(network.answerer(X)[0, 3]), atol=1e-5)
    assert not any(p.requires_grad for p in network.answerer.parameters())  # the session's module is untouched
    assert not network.module._forward_hooks and not any(m._forward_hooks for m in network.module.modules())


def test_a_checkpoint_gets_the_same_grad_cam_as_the_four():
    network = load_network("run.zip", "mine", raw=checkpoint_zip(SHIPPED / "resnet"))
    got, ours = cam(network, X, 5), grad_cam(network.answerer, X, 5)
    assert np.allclose(got.heat, ours.heat) and got.grid == ours.grid


def test_onnxruntime_alone_says_why_in_one_line(monkeypatch):
    monkeypatch.setattr("cifarnets.yours.convert.to_torch", lambda model, raw, expected: (None, "a test"))
    network = load_network("tiny.onnx", "tiny", raw=raw(tiny_graph()))
    assert cam(network, X, 0) == "it answers through onnxruntime, which gives no gradients"
