"""The issue's target: a torchvision-style ResNet-18 for CIFAR-10 (11 million parameters, a 45 MB ONNX file), trained a
few steps here (nothing downloaded), exported as a student would, goes through every view a network brought in
has. It prints its timings (docs/yours.md quotes them): `python -m pytest tests/test_yours_resnet18.py -s`."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch
import torchvision

from cifarnets.data.loader import batch
from cifarnets.predict import answers
from cifarnets.stress import apply
from cifarnets.yours import load_network
from cifarnets.yours.anatomy import layer_rows, total_macs


def resnet18_for_cifar() -> torch.nn.Module:
    """torchvision's ResNet-18 with the usual CIFAR-10 stem: a 3x3 stride-1 first convolution, no max pool."""
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = torch.nn.Identity()
    return model


def a_few_steps(model: torch.nn.Module, steps: int = 3) -> torch.nn.Module:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = torch.randn(32, 3, 32, 32, generator=rng), torch.randint(0, 10, (32,), generator=rng)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def student_export(model: torch.nn.Module) -> bytes:
    """The lines docs/yours.md gives a student, as they are there."""
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.zeros(1, 3, 32, 32),), buf, opset_version=17, dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_resnet18_goes_through_every_view():
    model = a_few_steps(resnet18_for_cifar())
    raw = student_export(model)
    assert 40 * 2**20 < len(raw) < 50 * 2**20
    tick = time.perf_counter()
    network = load_network("resnet18.onnx", "ResNet-18", raw=raw)
    loaded = time.perf_counter() - tick
    assert network.gradients and set(network.unavailable) == {"training curves"}
    assert "conv 1x1 /2, 64→128" in network.diagrams["blocks"]  # drawn from its graph (test_yours_diagram.py)
    entry = network.entry()
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    tick = time.perf_counter()
    found = answers({entry.key: entry}, batch(list(pixels)))  # Classify's path: 10 views, and the note
    answered = time.perf_counter() - tick
    assert found[entry.key].probs.shape == (2, 10) and found[entry.key].verdicts is None
    with torch.no_grad():
        assert torch.allclose(network.answerer(batch(list(pixels))), model(batch(list(pixels))), atol=1e-4)
    attacked = apply.attack_every({entry.key: entry}, pixels[0], "fgsm", 4)  # the Stress test's attacks
    assert attacked[entry.key].image.shape == (32, 32, 3)
    assert len(layer_rows(network)) > 40 and total_macs(network) > 5e8  # Architecture's table and MACs
    print(f"\nResNet-18: {network.params:,} parameters, {len(raw) / 2**20:.1f} MB; checked, converted and probed in "
          f"{loaded:.1f} s; answered 2 images (10 views) in {answered:.2f} s; {total_macs(network) / 1e6:.0f} M MACs")
