"""The expected training time: a few timed steps of the trainer's own step, scaled to the run.

No assertion here depends on how fast this machine is: only that what was timed is positive and that
the total is built from it as documented.
"""

from __future__ import annotations

import tarfile
from dataclasses import replace

import pytest
import torch
from conftest import make_image_folder, make_zip

from cifarnets.answering import MIRRORED, VIEWS
from cifarnets.data import sources
from cifarnets.data.loader import DeviceLoader
from cifarnets.perf import bench
from cifarnets.training import estimate, recipes
from cifarnets.training.fit import fit


@pytest.fixture(scope="module")
def cnn_times() -> estimate.StepTimes:
    return estimate.time_steps("cnn", recipes.get("fast", "cnn", batch_size=16), "cpu", warmup=1, timed=2)


def test_timed_steps_are_positive_and_name_the_machine(cnn_times):
    assert cnn_times.step_s > 0 and cnn_times.eval_image_s > 0
    assert cnn_times.batch_size == cnn_times.timed_batch == 16
    assert 1 <= cnn_times.steps_timed <= 2
    assert cnn_times.machine.startswith("cpu (") and "thread" in cnn_times.machine


def test_the_total_scales_with_epochs_and_counts_full_batches(cnn_times):
    size = estimate.DataSize(train=1000, test=300, note="made up")
    one, three = estimate.total(cnn_times, 1, size), estimate.total(cnn_times, 3, size)
    assert one.steps_per_epoch == 1000 // 16  # the trainer drops the last partial batch
    # Every epoch's evaluation is timed with the mirror pair; the last one answers with all the app's views.
    last_views = 300 * cnn_times.eval_image_s * (VIEWS / MIRRORED - 1)
    assert one.seconds == pytest.approx(62 * cnn_times.step_s + 300 * cnn_times.eval_image_s + last_views)
    assert three.seconds == pytest.approx(3 * (one.seconds - last_views) + last_views)
    assert three.seconds > one.seconds > 0
    assert estimate.total(cnn_times, 1, replace(size, train=10)).steps_per_epoch == 0  # fewer than one batch
    with pytest.raises(ValueError, match="epochs"):
        estimate.total(cnn_times, 0, size)


def test_the_recipes_epochs_and_the_data_make_the_estimate(tiny_folder):
    recipe = recipes.get("fast", "cnn", batch_size=8, epochs=2)
    est = estimate.estimate("cnn", recipe, "cpu", str(tiny_folder))
    assert est.epochs == 2 and est.size.train == 72 and est.steps_per_epoch == 9 and est.seconds > 0


def test_a_large_cpu_batch_is_timed_smaller_and_scaled(monkeypatch):
    monkeypatch.setattr(estimate, "CPU_BATCH_CAP", 8)
    times = estimate.time_steps("cnn", recipes.get("fast", "cnn", batch_size=32), "cpu", warmup=0, timed=1)
    assert (times.batch_size, times.timed_batch) == (32, 8) and times.step_s > 0


def test_a_distilling_recipe_times_its_teacher_too(monkeypatch):
    """The teacher answers inside the timed step, as it does in training (which its cost is part of)."""
    answered, real = [], estimate.build

    def counted(key, **kwargs):
        model = real(key, **kwargs)
        if key == "resnet":
            model.register_forward_hook(lambda *_: answered.append(key))
        return model

    monkeypatch.setattr(estimate, "build", counted)
    recipe = replace(recipes.get("fast", "cnn", batch_size=8), teacher="resnet", distill_weight=0.5)
    times = estimate.time_steps("cnn", recipe, "cpu", warmup=0, timed=1)
    assert times.step_s > 0 and times.steps_timed == 1 and answered == ["resnet"]


def test_fixed_targets_time_the_teachers_once_not_every_step():
    recipe = replace(recipes.get("fast", "cnn", batch_size=8), teacher="resnet+se_resnet", distill_weight=0.5,
                     distill_targets="fixed")
    times = estimate.time_steps("cnn", recipe, "cpu", warmup=0, timed=1)
    assert times.answers_image_s > 0
    size = estimate.DataSize(80, 20, "test")
    run, without = estimate.total(times, 3, size), estimate.total(replace(times, answers_image_s=0.0), 3, size)
    assert run.answers_s == pytest.approx(80 * times.answers_image_s)
    assert run.seconds == pytest.approx(without.seconds + run.answers_s)  # once, not once an epoch


def test_a_batch_that_does_not_fit_says_so(monkeypatch):
    import torch

    def out_of_memory(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 30 GiB")

    monkeypatch.setattr(estimate, "_measure", out_of_memory)
    with pytest.raises(estimate.EstimateError, match="a batch of 64 does not fit in cpu's memory; lower the batch"):
        estimate.time_steps("cnn", recipes.get("fast", "cnn", batch_size=64), "cpu")


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        estimate.time_steps("cnn", recipes.get("fast", "cnn", batch_size=0), "cpu")


def test_data_size_counts_folders_and_zips_and_says_when_it_assumes(tmp_path):
    folder = make_image_folder(tmp_path / "shapes", n_train=5, n_test=2)
    assert (estimate.data_size(str(folder)).train, estimate.data_size(str(folder)).test) == (15, 6)
    assert "15 training" in estimate.data_size(str(folder)).note
    nested = make_image_folder(tmp_path / "outer" / "inner", n_train=3, n_test=1)
    assert estimate.data_size(str(nested.parent)).train == 9  # one top folder holding train/ and test/

    zipped = estimate.data_size(str(make_zip(folder, tmp_path / "shapes.zip")))
    assert (zipped.train, zipped.test) == (15, 6)

    archive = tmp_path / "shapes.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="shapes")
    assumed = estimate.data_size(str(archive))  # counting would mean decompressing it whole
    assert (assumed.train, assumed.test) == (50_000, 10_000) and "taken to hold CIFAR-10" in assumed.note
    missing = estimate.data_size(str(tmp_path / "nowhere"))
    assert missing.train == 50_000 and missing.note.startswith("CIFAR-10's")


def test_training_the_estimate_and_the_bench_build_the_same_loader(tiny_folder, tmp_path, monkeypatch):
    """What the sidebar's expected time and `bench` time is the step a run takes: every augmentation field of
    the recipe reaches the loader each of the three builds (DeviceLoader.for_recipe)."""
    built = []
    init = DeviceLoader.__init__

    def record(self, *args, **kw):
        init(self, *args, **kw)
        if self.train:
            built.append(self)

    monkeypatch.setattr(DeviceLoader, "__init__", record)
    recipe = replace(recipes.get("fast", "cnn", batch_size=8, epochs=1), augment=True, pad=3, pad_mode="reflect",
                     flip="alternate", zoom_out=0.2, cutout=5)
    dataset = sources.load(tiny_folder)
    fit("cnn", recipe, dataset, tmp_path / "run", device="cpu", should_stop=lambda: True)
    estimate.time_steps("cnn", recipe, "cpu", warmup=0, timed=1)
    bench.Ours("cnn", dataset.train, 10, recipe, torch.device("cpu"))
    seen = [(lo.augment, lo.pad, lo.pad_mode, lo.flip, lo.zoom, lo.cutout, lo.batch_size, lo.memory_format)
            for lo in built]
    assert seen == [(True, 3, "reflect", "alternate", 0.2, 5, 8, torch.channels_last)] * 3
