"""What a student misread (issue 39), in the library: pictures too small to answer, the crop named, cautions in
words before the answers, and an answer that changes under attack said to go right or wrong, never "fooled"."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.app import make_checkpoints
from helpers.pictures import noise_picture, png
from PIL import Image

from cifarnets import predict
from cifarnets.data.images import decode_image, to_array
from cifarnets.examples import list_examples, subject
from cifarnets.paths import checkpoints_dir
from cifarnets.store.checkpoints import discover
from cifarnets.stress.apply import which_way
from cifarnets.unfamiliar.calibration import Verdict

LABELS = {"cnn": "CNN", "resnet": "ResNet", "densenet": "DenseNet", "se_resnet": "SE-ResNet"}


@pytest.mark.parametrize("size", [(6000, 300), (300, 6000), (640, 480), (33, 32), (32, 32), (8, 8), (31, 90)])
def test_the_crop_box_is_the_square_the_networks_see(size):
    """centre_square restates images.PREPARATION's rule: the pixels of the box alone are the pixels given."""
    image = decode_image(png(noise_picture(*size, 17)))
    box = predict.centre_square(*size)
    assert np.array_equal(to_array(image.crop(box)), to_array(image))
    prepared = predict.prepare(png(noise_picture(*size, 17)), "x.png")
    assert prepared.size == size and prepared.box == box
    assert prepared.seen_share == pytest.approx(min(size) / max(size))


def test_shipped_networks_call_a_tiny_noise_picture_unfamiliar_and_say_why_first():
    """An 8x8 noise picture: all four said "truck" and the CNN's badge read "looks like CIFAR-10"."""
    entries = discover(checkpoints_dir())
    (result,) = predict.classify([("noise.png", png(noise_picture(8, 8, 17)))], entries)
    assert result.prepared.too_small and result.guessing
    assert all(v is not None and v.plain for v in result.verdicts.values())
    cautions = result.cautions(LABELS)
    assert cautions and "only 8x8 pixels" in cautions[0] and "meaningless" in cautions[0]
    assert len(cautions) == 1  # no disagreement caution on top: the answers mean nothing anyway


def test_predict_files_flags_a_tiny_picture_too(tmp_path):
    path = tmp_path / "tiny.png"
    path.write_bytes(png(noise_picture(8, 8, 17)))
    (row,) = predict.predict_files([str(path)], discover(checkpoints_dir()))
    assert all(p["unfamiliar"]["flag"] and p["unfamiliar"]["structureless"] for p in row["predictions"].values())


def result_with(top1: dict[str, tuple[str, float]], unfamiliar: dict[str, bool] | None = None,
                size=(64, 64)) -> predict.Result:
    prepared = predict.Prepared("x.png", Image.new("RGB", size), np.zeros((32, 32, 3), np.uint8), size,
                                predict.centre_square(*size))
    verdicts = {k: Verdict(2.0 if u else 0.0, 1.0, "msp", 0.95) for k, u in (unfamiliar or {}).items()}
    return predict.Result("x.png", prepared, top5={k: [t] for k, t in top1.items()},
                          verdicts=verdicts or dict.fromkeys(top1))


def test_cautions_name_confident_disagreement_most_unfamiliar_and_a_narrow_crop():
    agreed = result_with({k: ("cat", 0.9) for k in LABELS}, dict.fromkeys(LABELS, False))
    assert agreed.cautions(LABELS) == []
    sure_apart = result_with({"cnn": ("cat", 0.81), "resnet": ("dog", 0.7), "densenet": ("cat", 0.3),
                              "se_resnet": ("frog", 0.2)})
    (line,) = sure_apart.cautions(LABELS)
    assert "CNN cat (81%), ResNet dog (70%)" in line and "DenseNet" not in line
    unsure_apart = result_with({"cnn": ("cat", 0.4), "resnet": ("dog", 0.45), "densenet": ("cat", 0.3),
                                "se_resnet": ("frog", 0.2)})
    assert unsure_apart.cautions(LABELS) == []  # they disagree, but none claims to be sure: the badge says it
    most = result_with({k: ("cat", 0.62) for k in LABELS}, {"cnn": True, "resnet": True, "densenet": False,
                                                             "se_resnet": True})
    assert any(c.startswith("3 of the 4 networks find this image unlike") for c in most.cautions(LABELS))
    panorama = result_with({k: ("ship", 0.9) for k in LABELS}, dict.fromkeys(LABELS, False), size=(6000, 300))
    (line,) = panorama.cautions(LABELS)
    assert "only the middle 5% of this picture" in line


def test_which_way_an_answer_went():
    assert which_way("deer", "deer", "frog") == "holds"
    assert which_way("deer", "frog", "frog") == "now right"
    assert which_way("frog", "deer", "frog") == "now wrong"
    assert which_way("deer", "cat", "frog") == "changed, still wrong"
    assert which_way("deer", "cat", None) == "changed"


def test_every_bundled_example_names_what_it_shows():
    shown = {e.name: subject(e.name) for e in list_examples()}
    assert shown["cifar10-test-frog.jpg"] == "frog" and shown["photo-cat.jpg"] == "cat"
    assert subject("my-upload.jpg") is None


def test_tiny_test_checkpoints_still_caution_a_tiny_picture(tmp_path):
    """Without any calibration the size alone says it: the caution needs no verdict."""
    (result,) = predict.classify([("noise.png", png(noise_picture(8, 8, 17)))], discover(make_checkpoints(tmp_path)))
    assert "only 8x8 pixels" in result.cautions(LABELS)[0]
