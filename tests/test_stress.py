"""The Stress test page's library: CIFAR-10-C corruptions, FGSM and PGD, the precompute, its file and its text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.app import make_checkpoints
from PIL import Image

from cifarnets import CIFAR10_CLASSES
from cifarnets.cli import main
from cifarnets.data.images import to_array
from cifarnets.data.sources import Dataset, Split
from cifarnets.examples import FOLDER
from cifarnets.models import KEYS, build, label
from cifarnets.paths import project_root
from cifarnets.store.checkpoints import load_checkpoint
from cifarnets.store.record import CheckpointRecord
from cifarnets.stress import apply, attacks, corruptions, measure, stress_sentences, stressfile


def cifar_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The ten CIFAR-10 test images that ship as examples, (10, 3, 32, 32) uint8, and their classes."""
    paths = sorted(FOLDER.glob("cifar10-test-*.jpg"))
    pixels = [to_array(Image.open(p).convert("RGB")) for p in paths]
    labels = [CIFAR10_CLASSES.index(p.stem.removeprefix("cifar10-test-")) for p in paths]
    return torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels)


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    return to_array(Image.open(FOLDER / "cifar10-test-cat.jpg").convert("RGB"))


# ---------------------------------------------------------------- corruptions

@pytest.mark.parametrize("name", corruptions.NAMES)
def test_corruption_keeps_shape_dtype_and_range_and_severity_0_is_the_image(name, cat):
    assert np.array_equal(corruptions.corrupt(cat, name, 0), cat)
    for severity in range(1, corruptions.SEVERITIES + 1):
        out = corruptions.corrupt(cat, name, severity, seed=3)
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        assert np.array_equal(out, corruptions.corrupt(cat, name, severity, seed=3))  # seeded: repeatable
    assert not np.array_equal(corruptions.corrupt(cat, name, 5), cat)


@pytest.mark.parametrize("name", [n for n in corruptions.NAMES if n not in corruptions.NOT_MONOTONE])
def test_corruption_grows_with_severity(name, cat):
    distance = [np.abs(corruptions.corrupt(cat, name, s).astype(int) - cat).mean()
                for s in range(corruptions.SEVERITIES + 1)]
    assert all(a <= b for a, b in zip(distance, distance[1:], strict=False)), distance


def test_frost_is_left_out_and_said_so():
    assert "frost" not in corruptions.NAMES and "frost" in corruptions.LEFT_OUT
    assert "frost" in stress_sentences.left_out_text()
    assert len(corruptions.NAMES) == 14


@pytest.mark.parametrize("spec", ["frost:2", "gaussian_noise", "gaussian_noise:6", "gaussian_noise:x", ""])
def test_bad_corruption_spec_is_one_line(spec):
    with pytest.raises(ValueError, match="--corrupt"):
        corruptions.parse(spec)


def test_corruption_refuses_other_shapes(cat):
    with pytest.raises(ValueError, match="32x32x3 uint8"):
        corruptions.corrupt(cat.astype(np.float32), "fog", 1)


# ---------------------------------------------------------------- attacks

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build("cnn").eval()


def untouched(model: torch.nn.Module, before: dict) -> bool:
    return (not model.training and all(p.grad is None for p in model.parameters())
            and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
            and not any(m._forward_hooks or m._backward_hooks for m in model.modules()))


def test_fgsm_at_zero_changes_nothing(tiny):
    x, y = cifar_images()
    assert torch.equal(attacks.fgsm(tiny, x, y, 0), x)
    assert torch.equal(attacks.pgd(tiny, x, y, 0, steps=2), x)


@pytest.mark.parametrize("eps", [1, 3, 8])
def test_every_perturbation_stays_within_eps_and_leaves_the_model_as_it_was(tiny, eps):
    x, y = cifar_images()
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    for adv in (attacks.fgsm(tiny, x, y, eps), attacks.pgd(tiny, x, y, eps, steps=3)):
        assert adv.dtype == torch.uint8 and adv.shape == x.shape
        assert (adv.int() - x.int()).abs().max() <= eps
        assert not torch.equal(adv, x)
    assert untouched(tiny, before)


def test_pgd_fools_a_shipped_network_on_most_test_images():
    model, _ = load_checkpoint(project_root() / "checkpoints" / "cnn")
    x, y = cifar_images()
    clean = attacks.answers(model, x).argmax(1)
    adv = attacks.pgd(model, x, clean, 8)
    fooled = (attacks.answers(model, adv).argmax(1) != clean).float().mean()
    assert fooled >= 0.8, f"PGD-10 at 8/255 changed only {fooled:.0%} of the answers"


def test_smallest_eps_changes_the_answer_within_its_budget():
    model, _ = load_checkpoint(project_root() / "checkpoints" / "cnn")
    x, _ = cifar_images()
    broken = attacks.smallest_eps(model, x[0])
    assert broken.eps is not None and 1 <= broken.eps <= attacks.EPS_MAX
    assert (broken.image.int() - x[0].int()).abs().max() <= broken.eps
    clean = attacks.answers(model, x[:1]).argmax(1)
    assert attacks.answers(model, broken.image[None]).argmax(1) != clean
    assert broken.label != int(clean)


def test_amplified_perturbation_states_its_scale():
    clean = torch.full((3, 4, 4), 100, dtype=torch.uint8)
    adv = clean.clone()
    adv[0, 0, 0] = 104
    picture, scale = attacks.amplified(adv, clean)
    assert scale == 31 and int(picture[0, 0, 0]) == 128 + 4 * 31 and int(picture[1, 1, 1]) == 128


def test_first_change():
    s = [apply.Seen(c, 0.5, None) for c in ("cat", "cat", "dog", "cat")]
    assert apply.first_change(s) == 2
    assert apply.first_change(s[:2]) is None


# ---------------------------------------------------------------- the precompute, its file, its text

def tiny_dataset(n: int = 6) -> Dataset:
    x, y = cifar_images()
    split = Split(x[:n], y[:n])
    return Dataset(split, split, list(CIFAR10_CLASSES), "generated", "0" * 64)


def test_stress_command_measures_every_network_and_the_page_file_reads_back(tmp_path, monkeypatch):
    monkeypatch.setattr(corruptions, "NAMES", ("contrast", "pixelate"))  # two of them keep it to seconds
    root = make_checkpoints(tmp_path / "checkpoints")
    record = measure.run(root, tiny_dataset(), torch.device("cpu"), n_images=2, n_transfer=2)
    again = stressfile.read(root)
    assert again["networks"].keys() == set(KEYS) and again["images"] == 2
    for key, n in again["networks"].items():
        now = CheckpointRecord.read(root / key)
        assert n["checkpoint"] == now.test_split_key.as_dict() and not now.stale(n["checkpoint"])
        assert list(n["corruptions"]) == list(corruptions.NAMES)
        assert all(len(a) == corruptions.SEVERITIES for a in n["corruptions"].values())
    t = again["transfer"]
    assert t["images"] == 2 and t["eps"] == list(attacks.TRANSFER_EPS)
    assert all(set(t["fooled"][k][str(e)]) == set(KEYS) for k in KEYS for e in t["eps"])
    assert record["networks"] == again["networks"]


def test_stored_file_that_is_damaged_counts_as_absent(tmp_path):
    (tmp_path / stressfile.STRESS_FILE).write_text('{"version": 1, "networks": {"cnn": {"clean": "high"}}}')
    assert stressfile.read(tmp_path) is None
    (tmp_path / stressfile.STRESS_FILE).write_text("not json")
    assert stressfile.read(tmp_path) is None


def shipped_record() -> dict:
    record = stressfile.read(project_root() / "checkpoints")
    assert record is not None, "checkpoints/stress.json is missing: run python -m cifarnets stress"
    return record


def test_shipped_file_measured_the_shipped_checkpoints():
    record = shipped_record()
    assert set(record["networks"]) >= set(KEYS) | {"resnet_plain"}
    for key, n in record["networks"].items():
        assert not CheckpointRecord.read(project_root() / "checkpoints" / key).stale(n["checkpoint"]), key


def test_generated_text_matches_the_stored_numbers():
    record = shipped_record()
    text = stress_sentences.corruptions_text(record)
    for key, n in record["networks"].items():
        rows = [a for accs in n["corruptions"].values() for a in accs]
        mean = sum(rows) / len(rows)
        assert f"{label(key)} {mean:.1%} (clean {n['clean']:.1%}, a drop of {(n['clean'] - mean) * 100:.1f} points)" \
            in text
    for key, base, _what in stress_sentences.COMPARISONS:
        nets = record["networks"]
        kept = {k: np.mean([a for accs in nets[k]["corruptions"].values() for a in accs]) / nets[k]["clean"]
                for k in (key, base)}
        least = max(0.01, 2 / record["images"])  # two images' worth, or a point
        expected = ("more robust" if kept[key] - kept[base] > least else "less robust"
                    if kept[key] - kept[base] < -least else "no difference")
        sentence = next(s for s in text.split(". ") if s.startswith(f"{label(key)} keeps"))
        assert f"{kept[key]:.1%}" in sentence and f"{kept[base]:.1%}" in sentence and expected in sentence
    t = record.get("transfer")
    said = stress_sentences.transfer_text(record)
    assert (said == "") == (t is None)  # a run with --transfer-images 0 has none, and says nothing of it
    if t is None:
        return
    for key in t["fooled"]:
        assert f"{t['fooled'][key]['8'][key]:.1%} ({label(key)})" in said
        assert f"{t['robust'][key]['8']:.1%} ({label(key)})" in said


def test_text_turns_with_the_numbers():
    nets = {k: {"clean": 0.9, "corruptions": {"fog": [0.8] * 5}} for k in ("resnet", "densenet", "se_resnet")}
    nets["densenet"]["corruptions"]["fog"] = [0.6] * 5
    nets["se_resnet"]["corruptions"]["fog"] = [0.85] * 5
    text = stress_sentences.corruptions_text({"images": 1000, "networks": nets})
    assert "(feature reuse), the network is less robust" in text
    assert "(channel gating), the network is more robust" in text
    assert "The hardest corruption is fog at severity 1" in text


# ---------------------------------------------------------------- the CLI

def test_predict_corrupted_and_attacked(capsys):
    image = str(FOLDER / "cifar10-test-ship.jpg")
    assert main(["predict", image, "--corrupt", "contrast:5", "--json"]) == 0
    assert main(["predict", image, "--attack", "fgsm:8", "--against", "cnn", "--json"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("flags,message", [
    (["--attack", "pgd:4"], "--against"), (["--against", "cnn"], "give --attack too"),
    (["--attack", "pgd:4", "--corrupt", "fog:1", "--against", "cnn"], "not both"),
    (["--attack", "rnd:4", "--against", "cnn"], "fgsm:EPS or pgd:EPS"), (["--corrupt", "fog:9"], "severity 0 to 5")])
def test_predict_bad_stress_flags_are_one_line(flags, message, capsys):
    assert main(["predict", str(FOLDER / "cifar10-test-ship.jpg"), *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1
