from pathlib import Path

import pytest
import torch

from cifarnets import CIFAR10_CLASSES
from cifarnets.models import KEYS, MODELS, build, count_params, label

REFERENCE = Path(__file__).parent / "reference"
PARAMS = {"cnn": 62_006, "resnet": 175_258, "densenet": 130_602, "se_resnet": 176_840}
CLASSES = {"cnn": "Net", "resnet": "ResNet", "densenet": "SimpleDenseNet", "se_resnet": "ResNetSE"}


def canonical(printout: str) -> str:
    # Newer PyTorch prints BatchNorm's `bias=True` and drops Linear's: the default flag is not structure.
    return printout.replace(", bias=True", "").rstrip("\n")


@pytest.mark.parametrize("key", KEYS)
def test_printout_matches_the_report(key):
    assert canonical(str(build(key))) == canonical((REFERENCE / f"{key}.txt").read_text())


@pytest.mark.parametrize("key", KEYS)
def test_parameter_count_and_class(key):
    model = build(key)
    assert count_params(model) == PARAMS[key]
    assert type(model).__name__ == CLASSES[key]


@pytest.mark.parametrize("key", KEYS)
def test_logits_shape_and_other_class_counts(key):
    assert build(key)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert build(key, num_classes=3)(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_registry_labels_and_classes():
    assert list(KEYS) == ["cnn", "resnet", "densenet", "se_resnet"]
    assert [label(k) for k in KEYS] == ["CNN", "ResNet", "DenseNet", "SE-ResNet"]
    assert KEYS == tuple(k for k, s in MODELS.items() if s.in_report) and "resnet_plain" in MODELS
    assert CIFAR10_CLASSES[0] == "airplane" and CIFAR10_CLASSES[-1] == "truck" and len(CIFAR10_CLASSES) == 10
    with pytest.raises(KeyError, match="unknown network"):
        build("vgg")


def test_se_block_scales_the_residual_branch_per_channel():
    from cifarnets.models.se_resnet import SEBlock

    se = SEBlock(32)
    x = torch.randn(4, 32, 8, 8)
    gate = se.gate(x)
    assert gate.shape == (4, 32) and bool(((gate > 0) & (gate < 1)).all())
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])
