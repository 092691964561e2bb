"""The Why they differ measurements on tiny models, and the findings the page words from them."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from torch import nn

from cifarnets import cli
from cifarnets.analysis import cost, gradcam, quality, reuse, se, why_sentences
from cifarnets.analysis.gradients import GradientProbe
from cifarnets.analysis.layers import weight_layers
from cifarnets.data import loader
from cifarnets.data.sources import Split
from cifarnets.models import ALL_KEYS, KEYS, build, count_params, recipe_key
from cifarnets.training.metrics import confusion_matrix

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_split(n: int = 16, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                 torch.arange(n) % 10)


def fresh(key: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build(key)


# ---------------------------------------------------------------- the plain ResNet, ours

def test_plain_resnet_is_an_extra_network_the_resnet_without_shortcuts():
    assert KEYS == ("cnn", "resnet", "densenet", "se_resnet")  # the report's four, unchanged
    plain, res = build("resnet_plain"), build("resnet")
    assert "shortcut" not in str(plain)
    assert count_params(res) - count_params(plain) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # 1x1 conv + BN, twice
    assert recipe_key("resnet_plain") == "resnet"
    assert cli.make_parser().parse_args(["train", "--model", "resnet_plain"]).model == "resnet_plain"


@pytest.mark.parametrize("key, depth", [("cnn", 5), ("resnet", 14), ("resnet_plain", 14), ("densenet", 13),
                                        ("se_resnet", 14)])
def test_depth_counts_the_main_path_only(key, depth):
    layers = weight_layers(build(key))
    assert max(w.depth for w in layers) == depth
    assert sum(w.main for w in layers) == depth
    assert len(layers) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in build(key).modules())


# ---------------------------------------------------------------- gradient flow

@pytest.mark.parametrize("key", ALL_KEYS)
def test_gradient_recorder_gives_one_finite_value_per_parameterised_layer(key):
    model = fresh(key)
    before = [b.clone() for b in model.buffers()]
    rng = torch.random.get_rng_state()
    norms = GradientProbe(tiny_split(), "cpu")(model)
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert sorted(norms) == sorted(layers)
    assert all(math.isfinite(v) and v > 0 for v in norms.values())
    # Measuring changes nothing: BatchNorm statistics, .grad and the global random stream are as they were.
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers(), strict=True))
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.random.get_rng_state())


# ---------------------------------------------------------------- cost

def test_macs_of_the_cnn_match_a_hand_count():
    conv1 = 28 * 28 * 6 * (3 * 5 * 5)  # 28x28 outputs of 6 channels, each 3x5x5 multiplications
    conv2 = 10 * 10 * 16 * (6 * 5 * 5)
    fc = 400 * 120 + 120 * 84 + 84 * 10
    counts = cost.macs(build("cnn"))
    assert counts == {"conv1": conv1, "conv2": conv2, "fc1": 400 * 120, "fc2": 120 * 84, "fc3": 84 * 10}
    assert sum(counts.values()) == conv1 + conv2 + fc == 651_720


def test_macs_of_the_plain_resnet_are_the_resnets_without_its_two_projections():
    projections = 16 * 16 * 32 * 16 + 8 * 8 * 64 * 32  # 1x1 convs: outputs x input channels
    assert sum(cost.macs(build("resnet")).values()) - sum(cost.macs(build("resnet_plain")).values()) == projections


def test_macs_are_the_same_while_another_thread_runs_a_network():
    """The Why page counts MACs in the server while the sidebar's step timing trains a network in another thread:
    the count must be this network's alone (torch's flop counter named layers through process-wide hooks: a CNN
    training meanwhile lent its layers' names to the CNN being counted, which made the SE-ResNet 38x the CNN, not
    41x)."""
    alone = cost.macs(build("cnn", 10))
    other, stop = build("cnn", 10), threading.Event()

    def busy():
        with torch.no_grad():
            while not stop.is_set():
                other(torch.zeros(2, 3, 32, 32))

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        counted = [cost.macs(build("cnn", 10)) for _ in range(20)]
    finally:
        stop.set()
        thread.join()
    assert all(c == alone for c in counted)


def test_latency_is_positive_and_leaves_the_mode_alone():
    model = build("cnn").train()
    assert cost.latency(model, 2, min_runs=2, budget_s=0) > 0 and model.training


# ---------------------------------------------------------------- quality

def calibrated_toy() -> tuple[torch.Tensor, torch.Tensor]:
    """At each confidence c in {0.2, 0.5, 0.8, 1.0}: 100 images predicted class 0 with probability c, of which
    exactly 100c really are class 0: right exactly as often as confident."""
    probs, labels = [], []
    for c in (0.2, 0.5, 0.8, 1.0):
        p = torch.full((100, 10), (1 - c) / 9)
        p[:, 0] = c
        probs.append(p)
        labels.append(torch.tensor([0] * round(100 * c) + [1] * round(100 * (1 - c))))
    return torch.cat(probs), torch.cat(labels)


def test_ece_of_a_perfectly_calibrated_toy_is_zero():
    probs, labels = calibrated_toy()
    summary = quality.measure(probs, labels)
    assert summary["ece"] == pytest.approx(0, abs=1e-6)
    assert summary["accuracy"] == pytest.approx(0.625)


def test_ece_of_an_overconfident_toy_is_its_gap():
    probs, labels = calibrated_toy()
    labels = torch.ones_like(labels)  # every answer wrong at every confidence
    summary = quality.measure(probs, labels)
    assert summary["ece"] == pytest.approx(float(probs.max(1).values.mean()), abs=1e-4)
    assert summary["overconfidence"] > 0


def test_confusion_and_disagreement():
    labels = torch.tensor([0, 1, 2])
    one_hot = lambda cls: torch.nn.functional.one_hot(torch.tensor(cls), 10).float()  # noqa: E731
    probs = {"a": one_hot([0, 1, 2]), "b": one_hot([0, 2, 2]), "c": one_hot([0, 3, 1])}
    assert confusion_matrix(labels, probs["b"].argmax(1), 10)[1][2] == 1
    ranked = quality.disagreement(probs, labels, top=3)
    assert [r["index"] for r in ranked] == [1, 2, 0]  # three answers, then two, then one
    assert ranked[0]["answers"] == 3 and ranked[0]["predictions"]["c"]["class"] == 3
    third = pytest.approx(1 / 3, abs=1e-4)  # stored rounded to 4 places
    assert quality.agreement(probs, labels) == {"same_answer": third, "all_right": third, "all_wrong": 0.0}


# ---------------------------------------------------------------- per image

@pytest.mark.parametrize("key", ["cnn", "densenet"])
def test_grad_cam_is_non_negative_image_sized_and_depends_on_the_class(key):
    model = fresh(key, seed=1)
    x = loader.normalize(tiny_split(1, seed=2).x)
    cams = [gradcam.grad_cam(model, x, c) for c in range(10)]
    assert all(c.heat.shape == (32, 32) and (c.heat >= 0).all() and np.isfinite(c.heat).all() for c in cams)
    assert any(not np.allclose(cams[0].heat, c.heat) for c in cams[1:])
    assert cams[0].grid == {"cnn": (10, 10), "densenet": (2, 2)}[key]
    assert model.training  # evaluated in eval mode, and the mode it had put back


def test_se_weights_per_block_and_per_class():
    model = fresh("se_resnet")
    gates = se.gates(model, loader.normalize(tiny_split(1).x))
    assert [len(g) for g in gates.values()] == [16, 16, 32, 32, 64, 64]
    assert all(((g > 0) & (g < 1)).all() for g in gates.values())
    means = se.class_means(model, tiny_split(20), classes=10)
    assert len(means["layer3.1"]) == 10 and len(means["layer3.1"][0]) == 64
    assert se.class_gap(means, 0, 0)["layer1.0"].tolist() == [0.0] * 16


def test_densenet_feature_reuse_has_a_cell_per_consumer_and_earlier_source():
    rows = reuse.feature_reuse(build("densenet"))
    assert len(rows) == 3 * (1 + 2 + 3 + 4)  # per block: 3 layers and the transition/classifier
    assert {r["consumer"] for r in rows if r["block"] == 3} == {"layer 1", "layer 2", "layer 3", "classifier"}
    assert all(r["mean_abs_weight"] > 0 for r in rows)


# ---------------------------------------------------------------- findings say what the numbers say

def profile(network: str, first: float, last: float) -> list[dict]:
    return [{"network": network, "moment": "at initialisation", "kind": "conv", "depth": d, "rms": v, "norm": v,
             "layer": name} for d, v, name in ((1, first, "conv1"), (13, last, "layer3.1.conv2"))]


def test_the_gradient_finding_agrees_or_disagrees_with_the_report_from_the_numbers():
    plain = "ResNet without shortcuts (ours)"
    vanishing = why_sentences.gradients(profile("ResNet", 1.0, 1.0) + profile(plain, 0.01, 1.0))
    assert "agrees with the report" in vanishing
    flowing = why_sentences.gradients(profile("ResNet", 1.0, 1.0) + profile(plain, 3.0, 1.0))
    assert "does not support the report" in flowing
    assert "the first convolution gets 3x what the last one gets" in flowing
    assert "ResNet's layer3.1.conv2 (depth 13)" in flowing  # the layer compared is named


def test_the_gradient_finding_says_its_conclusion_once_for_both_moments():
    rows = [dict(r, moment=m) for m in ("at initialisation", "after training")
            for r in profile("ResNet", 1.0, 1.0) + profile("ResNet without shortcuts (ours)", 3.0, 1.0)]
    text = why_sentences.gradients(rows)
    assert text.count("does not support the report") == 1
    assert "does not vanish at initialisation and after training" in text


def test_the_se_resnet_against_the_resnet_is_said_to_the_digit_that_shows_the_gap():
    def said(se, res):
        return why_sentences.versus_report({"SE-ResNet": {"accuracy": se}, "ResNet": {"accuracy": res}})
    assert "here it is +0.03 points, level indeed." in said(0.8979, 0.8976)  # never "+0.0"
    assert "here it is -0.3 points, level indeed." in said(0.8880, 0.8907)
    assert "here it is +1.2 points, ahead." in said(0.9027, 0.8907)


def test_the_se_resnet_against_the_resnet_says_when_they_were_not_trained_alike():
    records = {"SE-ResNet": {"accuracy": 0.8979}, "ResNet": {"accuracy": 0.9018}}
    base = {"name": "modern", "epochs": 100, "cutout": 0, "lr": 0.1, "note": "one"}
    alike = why_sentences.versus_report(records, {"ResNet": base, "SE-ResNet": base | {"note": "another"}})
    assert alike.endswith("level indeed.")
    unlike = why_sentences.versus_report(records, {"ResNet": base | {"epochs": 150, "cutout": 8}, "SE-ResNet": base})
    assert ("not trained alike (ResNet: epochs 150, cutout 8; SE-ResNet: epochs 100, cutout 0), so the gap is the "
            "recipes' as much as the SE blocks'.") in unlike


def test_the_photo_finding_names_the_confusion_photos_add():
    classes = ["car", "truck", "bird"]
    test = {"A": {"per_class": [0.9, 0.9, 0.8], "confusion": [[90, 10, 0], [10, 90, 0], [0, 20, 80]]}}
    photos = {"A": {"per_class": [0.5, 0.9, 0.8], "confusion": [[5, 5, 0], [1, 9, 0], [0, 2, 8]],
                    "per_class_n": [10, 10, 10]}}
    text = why_sentences.photo_gaps(test, photos, classes)
    assert "car loses most: 40 points below" in text and "A car as truck (50% of its car photos, 10% of" in text
    assert "few photos" not in text
    few = why_sentences.photo_gaps(test, {"A": photos["A"] | {"per_class_n": [3, 10, 10]}}, classes)
    assert "Only a few photos of car (3)" in few and "car loses most" not in few and "A car as" not in few
