"""The fast recipe's pieces: alternating flips, reflected translation, the weight average that is saved,
distillation, answers of several views, and `speedrun` stopping at its target. Tiny data, a step or two."""

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from cifarnets import cli
from cifarnets.answering import MAX_VIEWS, answer, views_of
from cifarnets.data import loader as batching
from cifarnets.data import sources
from cifarnets.models import build
from cifarnets.store import checkpoints
from cifarnets.training import distill, recipes, step
from cifarnets.training.evaluation import evaluate
from cifarnets.training.fit import fit, read_state


def numbered_split(n: int = 40) -> sources.Split:
    """Images whose pixels say which image they are, and whose left and right halves differ."""
    x = torch.zeros(n, 3, 32, 32, dtype=torch.uint8)
    x[:, 0] = torch.arange(n, dtype=torch.uint8)[:, None, None]
    x[:, 1, :, :16] = 200
    return sources.Split(x, torch.arange(n))


def flipped_by_image(loader: batching.DeviceLoader, split: sources.Split, epoch: int) -> dict[int, bool]:
    seen = {}
    for xb, yb in loader.batches(epoch, seed=3):
        for image, i in zip(xb, yb.tolist(), strict=True):
            seen[i] = bool(torch.equal(image, batching.normalize(split.x[i: i + 1].flip(3))[0]))
    return seen


def test_alternating_flip_mirrors_each_image_in_exactly_every_other_epoch():
    split = numbered_split()
    loader = batching.DeviceLoader(split, 8, "cpu", train=True, augment=True, pad=0, flip="alternate")
    epochs = [flipped_by_image(loader, split, e) for e in range(4)]
    assert 0.2 < sum(epochs[0].values()) / len(split) < 0.8  # a random half first
    for before, after in zip(epochs, epochs[1:], strict=False):
        assert before.keys() == after.keys() == set(range(len(split)))
        assert all(before[i] != after[i] for i in before)


def test_random_flips_do_not_alternate():
    split = numbered_split()
    loader = batching.DeviceLoader(split, 8, "cpu", train=True, augment=True, pad=0, flip="random")
    first, second = (flipped_by_image(loader, split, e) for e in range(2))
    assert any(first[i] == second[i] for i in first)


def test_reflected_translation_keeps_the_picture_at_the_edges():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(2, 3, 32, 32)
    no_move = batching.augment(x, torch.full((2, 2), 2), torch.zeros(2, dtype=torch.bool), pad=2, mode="reflect")
    assert torch.equal(no_move, x)
    corner = batching.augment(x, torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, dtype=torch.bool), pad=2,
                          mode="reflect")
    assert torch.equal(corner[..., 2:, 2:], x[..., :30, :30])
    # the band outside the image is the image reflected at its edge (the edge row itself not repeated), not black
    assert torch.equal(corner[..., 0, 2:], x[..., 2, :30]) and torch.equal(corner[..., 1, 2:], x[..., 1, :30])
    black = batching.augment(x, torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, dtype=torch.bool), pad=2)
    assert black[..., :2, :].eq(0).all()


def tiny_fast(**kw) -> recipes.Recipe:
    return recipes.get("fast", "resnet", **({"epochs": 2, "batch_size": 16, "lr": 0.05} | kw))


def test_the_weight_average_is_what_is_saved_and_evaluated(tiny_folder, tmp_path):
    ds = sources.load(tiny_folder)
    fit("resnet", tiny_fast(ema=0.9), ds, tmp_path / "run", device="cpu")
    state = read_state(tmp_path / "run")
    saved = load_file(str(tmp_path / "run" / checkpoints.MODEL_FILE))
    averaged, live = state["average"]["model"], state["model"]
    assert all(torch.equal(saved[k], averaged[k]) for k in saved)
    assert any(not torch.equal(saved[k], live[k]) for k in saved if saved[k].is_floating_point())
    model, config = checkpoints.load_checkpoint(tmp_path / "run")
    test = batching.DeviceLoader(ds.test, 1000, "cpu", train=False)
    assert evaluate(model, test, ds.classes)["test_acc"] == config["metrics"]["test_acc"]


def test_a_resumed_run_restores_the_weight_average(tiny_folder, tmp_path, fixed_threads):
    ds = sources.load(tiny_folder)
    recipe = tiny_fast(ema=0.9, epochs=3)
    fit("resnet", recipe, ds, tmp_path / "straight", device="cpu", seed=5)
    epochs_done = []
    first = fit("resnet", recipe, ds, tmp_path / "stopped", device="cpu", seed=5,
                progress=lambda e: epochs_done.append(1) if e["kind"] == "epoch" else None,
                should_stop=lambda: len(epochs_done) >= 1)
    assert first["state"] == "stopped"
    assert fit("resnet", recipe, ds, tmp_path / "stopped", device="cpu", resume=True)["state"] == "finished"
    straight, resumed = (load_file(str(tmp_path / f / checkpoints.MODEL_FILE)) for f in ("straight", "stopped"))
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=1e-4, atol=1e-5, msg=k)


def test_distillation_reads_the_teacher_and_records_it(tiny_folder, tmp_path, monkeypatch):
    ds = sources.load(tiny_folder)
    teacher = build("resnet", num_classes=len(ds.classes))
    config = checkpoints.make_config("resnet", teacher, classes=ds.classes, recipe={}, data={},
                                     metrics={"test_acc": 0.5}, device="cpu", epochs_done=1, seed=0)
    checkpoints.save_checkpoint(tmp_path / "shipped" / "resnet", teacher, config, [])
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(tmp_path / "shipped"))
    recipe = recipes.get("fast", "cnn", epochs=1, batch_size=16, teacher="resnet", distill_weight=0.5)
    fit("cnn", recipe, ds, tmp_path / "student", device="cpu")
    _, student = checkpoints.load_checkpoint(tmp_path / "student")
    assert student["teacher"]["model"] == "resnet" and student["teacher"]["test_acc"] == 0.5
    assert student["recipe"]["teacher"] == "resnet"
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(tmp_path / "nowhere"))
    with pytest.raises(Exception, match="distils from the ResNet, which cannot be loaded"):
        fit("cnn", recipe, ds, tmp_path / "orphan", device="cpu")
    # A teacher of other classes (or the same in another order) has no answer to teach: refused, not misread.
    config["classes"] = list(reversed(ds.classes))
    checkpoints.save_checkpoint(tmp_path / "other" / "resnet", teacher, config, [])
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(tmp_path / "other"))
    with pytest.raises(Exception, match="other classes than this data's .*without a teacher"):
        fit("cnn", recipe, ds, tmp_path / "strange", device="cpu")


def test_an_ensemble_teaches_with_answers_fixed_before_training(tiny_folder, tmp_path, monkeypatch):
    """Two teachers' answers, each image's averaged with its mirror's, are computed once and are exactly what
    the steps learn from; the run's config names both and the seconds they took count in its wall time."""
    ds = sources.load(tiny_folder)
    torch.manual_seed(0)
    teachers = {key: build(key, num_classes=len(ds.classes)).eval() for key in ("resnet", "se_resnet")}
    for key, teacher in teachers.items():
        config = checkpoints.make_config(key, teacher, classes=ds.classes, recipe={}, data={},
                                         metrics={"test_acc": 0.5}, device="cpu", epochs_done=1, seed=0)
        checkpoints.save_checkpoint(tmp_path / "shipped" / key, teacher, config, [])
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(tmp_path / "shipped"))
    recipe = recipes.get("fast", "cnn", epochs=1, batch_size=16, teacher="resnet+se_resnet", distill_weight=0.5,
                         distill_targets="fixed")
    fixed = distill.fixed_answers(list(teachers.values()), ds.train, torch.device("cpu"))
    with torch.no_grad():
        x = batching.normalize(ds.train.x)
        expected = torch.stack([torch.softmax(t(v), 1) for t in teachers.values() for v in (x, x.flip(3))]).mean(0)
    torch.testing.assert_close(fixed.exp(), expected)
    seen = []
    real = step.Objective.__call__
    monkeypatch.setattr(step.Objective, "__call__", lambda self, *a: seen.append(a[3]) or real(self, *a))
    fit("cnn", recipe, ds, tmp_path / "student", device="cpu")
    assert seen and all(s is not None and s.shape == (16, len(ds.classes)) for s in seen)
    assert all(any(torch.equal(row, f) for f in fixed) for row in seen[0])  # rows of the fixed answers
    _, student = checkpoints.load_checkpoint(tmp_path / "student")
    assert student["teacher"]["model"] == "resnet+se_resnet" and student["teacher"]["targets"] == "fixed"
    assert [m["model"] for m in student["teacher"]["members"]] == ["resnet", "se_resnet"]
    assert student["wall_s"] > sum(r["seconds"] for r in json.loads((tmp_path / "student" / "history.json")
                                                                      .read_text()))
    assert checkpoints.training_summary(student).endswith(
        "distilled from the ResNet and the SE-ResNet, their answers fixed before training")
    with pytest.raises(Exception, match="distils from the DenseNet, which cannot be loaded"):
        fit("cnn", replace(recipe, teacher="resnet+densenet"), ds, tmp_path / "orphan", device="cpu")
    with pytest.raises(Exception, match="distill_targets is 'cached': live or fixed"):
        fit("cnn", replace(recipe, distill_targets="cached"), ds, tmp_path / "unknown", device="cpu")


def test_one_teacher_softened_is_its_logits_softened_and_an_ensemble_never_takes_log_0():
    z = torch.tensor([[3.0, -1.0, 0.5], [200.0, -200.0, 0.0]])
    torch.testing.assert_close(torch.log_softmax(step.mean_answer([z]) / 4, 1), torch.log_softmax(z / 4, 1))
    both = step.mean_answer([z, z.flip(1)])
    assert torch.isfinite(both).all()
    torch.testing.assert_close(both.exp(), (torch.softmax(z, 1) + torch.softmax(z.flip(1), 1)) / 2)


def test_two_views_are_the_image_and_its_mirror():
    torch.manual_seed(0)
    model = build("resnet").eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        single, two = answer(model, x, views=2)
        mirror_average = (torch.softmax(model(x), 1) + torch.softmax(model(x.flip(3)), 1)) / 2
        torch.testing.assert_close(two, mirror_average)
        torch.testing.assert_close(single, answer(model, x, views=1)[1])
        six = answer(model, x, views=6)[1]
    assert six.shape == two.shape and not torch.allclose(six, two)
    assert torch.equal(views_of(x, 6)[3:6], x.flip(3))
    assert torch.equal(views_of(x, 4)[6:9, :, 1:, 1:], x[..., :-1, :-1])  # the third view: shifted down-right
    assert torch.equal(views_of(x, 10)[24:27, :, :-1, 1:], x[..., 1:, :-1])  # the ninth: shifted up-right
    with pytest.raises(ValueError, match="views"):
        views_of(x, MAX_VIEWS + 1)


def test_speedrun_stops_at_the_target_and_reports_it(tiny_folder, capsys, monkeypatch):
    monkeypatch.setenv("CIFARNETS_CACHE", str(tiny_folder.parent / "cache"))
    code = cli.main(["speedrun", "--model", "cnn", "--recipe", "fast", "report", "--target", "0.01", "--seeds", "2",
                     "--epochs", "3", "--batch-size", "16", "--data", str(tiny_folder), "--device", "cpu",
                     "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["target"] == "0.01" and out["machine"].startswith("cpu (")
    for name in ("fast", "report"):
        r = out["results"]["cnn"][name]
        assert r["reached"] == "2/2" and r["epochs_budget"] == 3
        assert [run["epoch"] for run in r["runs"]] == [1, 1]  # any network beats 1%: stopped after epoch 1
        assert all(run["epochs_run"] == 1 and run["seconds"] > 0 for run in r["runs"])


def test_speedrun_reports_a_target_never_reached(tiny_folder, capsys, monkeypatch):
    monkeypatch.setenv("CIFARNETS_CACHE", str(tiny_folder.parent / "cache"))
    assert cli.main(["speedrun", "--model", "cnn", "--target", "1.0", "--epochs", "1", "--batch-size", "16",
                     "--data", str(tiny_folder), "--device", "cpu", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)["results"]["cnn"]["fast"]
    assert r["reached"] == "0/1" and r["epochs"] is None and r["runs"][0]["epochs_run"] == 1


def test_speedrun_tries_a_variation_and_refuses_a_bad_one(tiny_folder, capsys, monkeypatch):
    monkeypatch.setenv("CIFARNETS_CACHE", str(tiny_folder.parent / "cache"))
    common = ["speedrun", "--model", "cnn", "--epochs", "1", "--batch-size", "16", "--data", str(tiny_folder),
              "--device", "cpu"]
    assert cli.main([*common, "--set", "flip=random", "--set", "ema=0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changes"] == {"flip": "random", "ema": 0.5}
    plain, varied = recipes.get("fast", "cnn", epochs=5), recipes.get("fast", "cnn", flip="random", ema=0.5)
    assert plain.note == recipes.FAST["cnn"].note  # nothing changed, nothing said
    assert varied.note == recipes.FAST["cnn"].note + " Changed for this run: flip=random, ema=0.5."
    assert cli.main([*common, "--set", "ema=often"]) == 1
    assert "ema takes a number" in capsys.readouterr().err
