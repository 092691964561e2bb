import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cifarnets.analysis.gradients import GradientProbe
from cifarnets.answering import MIRRORED, VIEWS
from cifarnets.data import sources
from cifarnets.data.loader import DeviceLoader
from cifarnets.store import checkpoints
from cifarnets.store.record import CheckpointRecord
from cifarnets.store.runfolder import LOCK_FILE, read_history
from cifarnets.training import recipes
from cifarnets.training.evaluation import evaluate
from cifarnets.training.fit import TrainingError, fit, read_state


def tiny_recipe(key="cnn", **kw):
    return recipes.get("modern", key, **({"epochs": 2, "batch_size": 16, "lr": 0.05} | kw))


def weights(folder):
    return load_file(str(folder / checkpoints.MODEL_FILE))


def test_two_epochs_lower_the_loss_and_write_a_loadable_checkpoint(tiny_folder, tmp_path):
    ds = sources.load(tiny_folder)
    result = fit("resnet", tiny_recipe("resnet", epochs=3), ds, tmp_path / "run", device="cpu", probe=GradientProbe)
    history = result["history"]
    assert result["state"] == "finished" and [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "test_acc_mirrored", "lr",
                               "seconds", "images_per_s", "grad_norms", "grad_norms_init"}  # grad_norms: the probe
    assert "grad_norms_init" not in history[1] and len(history[1]["grad_norms"]) == 16  # 13 convs, 2 shortcuts, fc
    model, config = checkpoints.load_checkpoint(tmp_path / "run")
    assert config["model"] == "resnet" and config["classes"] == ds.classes and config["epochs"] == 3
    assert config["metrics"]["n"] == len(ds.test) and len(config["metrics"]["confusion"]) == 3
    assert config["data"]["sha256"] == ds.fingerprint and "torch" in config["versions"]
    assert read_history(tmp_path / "run") == history
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_epochs_are_measured_on_the_mirror_pair_and_the_last_as_the_app_answers(tiny_folder, tmp_path):
    ds = sources.load(tiny_folder)
    seen = []

    def progress(event):  # the checkpoint each epoch leaves behind, as a cancelled run would leave it
        if event["kind"] == "epoch":
            seen.append(CheckpointRecord.read(tmp_path / "run").config["metrics"])

    fit("cnn", tiny_recipe(epochs=2), ds, tmp_path / "run", device="cpu", progress=progress)
    assert [m["views"] for m in seen] == [MIRRORED, VIEWS]
    model, config = checkpoints.load_checkpoint(tmp_path / "run")
    loader = DeviceLoader(ds.test, 50, "cpu", train=False)
    assert config["metrics"]["test_acc"] == evaluate(model, loader, ds.classes)["test_acc"]
    # One pass gives every figure: the single view and the mirror pair are the first one and two views.
    for views, name in ((1, "single_view"), (MIRRORED, "mirrored")):
        assert config["metrics"][name]["test_acc"] == evaluate(model, loader, ds.classes, views)["test_acc"]
    last = read_history(tmp_path / "run")[-1]
    assert last["test_acc_mirrored"] == config["metrics"]["mirrored"]["test_acc"]


@pytest.mark.parametrize("stop_after", [5, 9])  # mid-epoch, and exactly at an epoch's end (9 steps/epoch)
def test_resume_after_a_stop_ends_with_the_same_weights(tiny_folder, tmp_path, stop_after, fixed_threads):
    ds = sources.load(tiny_folder)
    recipe = tiny_recipe("se_resnet", epochs=3, batch_size=8)
    fit("se_resnet", recipe, ds, tmp_path / "straight", device="cpu", seed=7, probe=GradientProbe)

    calls = {"n": 0}

    def stop_soon():
        calls["n"] += 1
        return calls["n"] >= stop_after

    first = fit("se_resnet", recipe, ds, tmp_path / "stopped", device="cpu", seed=7, should_stop=stop_soon,
                probe=GradientProbe)
    assert first["state"] == "stopped"
    second = fit("se_resnet", recipe, ds, tmp_path / "stopped", device="cpu", resume=True, probe=GradientProbe)
    assert second["state"] == "finished"
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "stopped")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    timeless = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]
    # Loss sums are added in another order after a resume. Approximate on one side only: two approx()
    # of a dict (the per-layer gradient norms) never compare equal.
    approx = [{k: pytest.approx(v) for k, v in r.items()} for r in timeless(second["history"])]
    assert approx == timeless(read_history(tmp_path / "straight"))


def test_the_resume_state_keeps_the_format_runs_in_progress_were_written_in(tiny_folder, tmp_path):
    """A long run one version started is resumed by the next (scripts/retrain.sh): train_state.pt keeps its fields,
    and its position says the same, mid-epoch and at an epoch's end."""
    ds, out, calls = sources.load(tiny_folder), tmp_path / "run", []
    stop_at_3 = lambda: calls.append(1) or len(calls) >= 3
    assert fit("cnn", tiny_recipe(), ds, out, device="cpu", should_stop=stop_at_3)["state"] == "stopped"
    state = read_state(out)  # 72 images in batches of 16: 4 steps an epoch, stopped after the third
    assert list(state) == ["version", "model_key", "recipe", "seed", "classes", "data", "epoch", "step", "partial",
                           "history", "model", "optimizer", "average", "grad_norms_init", "answers_s"]
    assert (state["version"], state["epoch"], state["step"], state["history"]) == (1, 0, 3, [])
    assert set(state["partial"]) == {"loss", "correct", "seen", "seconds"} and state["partial"]["seen"] == 3 * 16
    status = json.loads((out / "status.json").read_text())
    assert (status["state"], status["epoch"], status["step"]) == ("stopped", 0, 3)
    again = fit("cnn", tiny_recipe(), ds, out, device="cpu", resume=True, should_stop=lambda: True)
    state = read_state(out)  # the epoch's last step ends it: a stop then comes at the epoch's end
    assert (again["state"], again["epoch"], again["step"]) == ("stopped", 1, 0)
    assert (state["epoch"], state["step"], state["partial"], len(state["history"])) == (1, 0, {}, 1)
    assert state["history"] == again["history"] == read_history(out)


def test_an_existing_run_is_not_overwritten_without_resume(tiny_folder, tmp_path):
    ds = sources.load(tiny_folder)
    fit("cnn", tiny_recipe(epochs=1), ds, tmp_path / "run", device="cpu")
    with pytest.raises(TrainingError, match="pass --resume"):
        fit("cnn", tiny_recipe(epochs=1), ds, tmp_path / "run", device="cpu")
    with pytest.raises(TrainingError, match="holds a 'cnn' run"):
        fit("resnet", tiny_recipe("resnet"), ds, tmp_path / "run", device="cpu", resume=True)


def test_a_non_finite_loss_stops_the_run_naming_epoch_and_step(tiny_folder, tmp_path):
    ds = sources.load(tiny_folder)
    with pytest.raises(TrainingError, match=r"non-finite at epoch 1, step \d+ of 4"):
        fit("cnn", tiny_recipe(lr=1e30, batch_size=16), ds, tmp_path / "run", device="cpu")


def test_a_second_run_on_the_same_folder_is_refused_and_a_stale_lock_is_taken_over(tiny_folder, tmp_path):
    ds = sources.load(tiny_folder)
    out = tmp_path / "run"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_FILE).write_text(str(sleeper.pid))
        with pytest.raises(TrainingError, match=f"another run \\(pid {sleeper.pid}\\)"):
            fit("cnn", tiny_recipe(epochs=1), ds, out, device="cpu")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert fit("cnn", tiny_recipe(epochs=1), ds, out, device="cpu")["state"] == "finished"  # stale now
    assert not (out / LOCK_FILE).exists()


def test_sigterm_mid_run_saves_a_resumable_state_and_exits_zero(tiny_folder, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cifarnets", "train", "--model", "cnn", "--data", str(tiny_folder),
           "--out", str(out), "--epochs", "500", "--batch-size", "8", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.time() + 120
    while not (out / checkpoints.HISTORY_FILE).exists():  # at least one epoch done: surely mid-run
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "--resume" in err
    state = read_state(out)
    assert 1 <= state["epoch"] < 500 and len(state["history"]) == state["epoch"]
    ds = sources.load(tiny_folder)
    again = fit("cnn", recipes.get("modern", "cnn"), ds, out, device="cpu", resume=True,
                should_stop=lambda: True)  # one more step, from where it stopped
    position = lambda s: s["epoch"] * 9 + s["step"]
    assert again["state"] == "stopped" and position(read_state(out)) == position(state) + 1


def test_warm_restarts_keep_the_earlier_cycles_and_peak_again():
    # how our first shipped ResNets were trained: 40 epochs, then two more cosine cycles
    restarted = recipes.get("modern", "resnet", epochs=100, lr=0.2, restarts=((40, 0.1), (70, 0.05)))
    (first, _), (second, second_lr) = restarted.restarts
    steps = 10
    for shorter in (replace(restarted, epochs=first), replace(restarted, epochs=second)):
        head = range(shorter.epochs * steps)  # an --epochs override runs the cycles it reaches, unchanged
        assert [restarted.lr_at(s, steps) for s in head] == [shorter.lr_at(s, steps) for s in head]
    assert replace(restarted, epochs=first).lr_at(first * steps - 1, steps) < 0.01 * restarted.lr
    last = [restarted.lr_at(s, steps) for s in range(second * steps, restarted.epochs * steps)]
    assert max(last) == pytest.approx(second_lr) and last[-1] < 0.01 * second_lr
    as_stored = recipes.Recipe(**json.loads(json.dumps(restarted.to_dict())))  # restarts come back as lists
    sample = range(0, restarted.epochs * steps, 7)
    assert [as_stored.lr_at(s, steps) for s in sample] == [restarted.lr_at(s, steps) for s in sample]


def test_a_networks_answer_is_the_same_for_an_image_and_its_mirror():
    from cifarnets.answering import answer
    from cifarnets.models import build

    torch.manual_seed(0)
    model = build("cnn").eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        single, averaged = answer(model, x)
        single_of_mirror, averaged_of_mirror = answer(model, x.flip(3))
        assert torch.allclose(single, torch.softmax(model(x), 1), atol=1e-6)
        pair = answer(model, x, MIRRORED)[1]
    assert torch.allclose(averaged, averaged_of_mirror, atol=1e-6)  # every view the app takes has its mirror
    assert torch.allclose(pair, (single + single_of_mirror) / 2, atol=1e-6)
    assert not torch.allclose(single, single_of_mirror, atol=1e-4)  # a random network is not symmetric


def test_the_retrain_script_continues_a_saved_run_and_starts_one_without_a_state(tiny_folder, tmp_path):
    """scripts/retrain.sh, as a session that stopped mid-run leaves it: run again, it resumes; on a new
    machine (no resume state), it starts over."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "retrain.sh"
    env = os.environ | {"RUNS": str(tmp_path / "runs"), "CIFARNETS_DATA": str(tiny_folder), "RECIPE": "fast",
                        "TRAIN_ARGS": "--epochs 1 --batch-size 8", "PYTHON": sys.executable}
    run = lambda: subprocess.run(["bash", str(script), "cnn"], env=env, capture_output=True, text=True, check=True)
    assert "cnn: starting" in run().stderr
    out = tmp_path / "runs" / "cnn"
    assert read_state(out)["epoch"] == 1 and (out / checkpoints.MODEL_FILE).exists()
    again = run().stderr
    assert "cnn: --resume" in again and "exited" not in again
    assert len(json.loads((out / checkpoints.HISTORY_FILE).read_text())) == 1  # finished: nothing trained twice
    (out / "train_state.pt").unlink()  # what a new machine has: the checkpoint maybe, no resume state
    assert "cnn: starting" in run().stderr


def test_a_run_with_init_starts_from_those_weights_and_trains_with_the_photo_changes(tiny_folder, tmp_path):
    ds = sources.load(tiny_folder)
    fit("cnn", tiny_recipe(epochs=1), ds, tmp_path / "first", device="cpu")
    # lr 0: nothing moves, so the fine-tuned run ends where it started, with every photo-like change drawn
    tuned = tiny_recipe(epochs=1, lr=0.0, init=str(tmp_path / "first"), crop_scale=0.35, jitter=0.4, blur=0.5)
    fit("cnn", tuned, ds, tmp_path / "tuned", device="cpu")
    first, after = weights(tmp_path / "first"), weights(tmp_path / "tuned")
    assert all(torch.equal(first[k], after[k]) for k in first if "running" not in k and "num_batches" not in k)
    config = CheckpointRecord.read(tmp_path / "tuned").config
    assert config["recipe"]["init"] == str(tmp_path / "first") and config["recipe"]["crop_scale"] == 0.35
    with pytest.raises(TrainingError, match="init=.*nowhere"):
        fit("cnn", tiny_recipe(epochs=1, init=str(tmp_path / "nowhere")), ds, tmp_path / "bad", device="cpu")
