"""The GPU path (issue 33): training, answers, the app's trainer, torchrun and every command that loads a
network, on a CUDA GPU. Each such test is marked `cuda` and skips, saying why, where PyTorch sees no GPU;
scripts/device-check.sh runs them on one (`pytest -m cuda`, docs/testing.md).

One test here runs everywhere: a static check that no result is turned into a NumPy array straight from a
tensor that may live on a GPU (`.numpy()` refuses a CUDA tensor). A CPU cannot make such a tensor, so no
CPU test can catch the call by running it; the GPU tests run those code paths for real where there is one.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_CLASSES, make_image_folder

from cifarnets import CIFAR10_CLASSES, answering, cli, device
from cifarnets.data import loader, sources
from cifarnets.models import KEYS, build
from cifarnets.runs import jobs, record
from cifarnets.runs.request import TrainRequest, device_choices
from cifarnets.runs.request import check as check_request
from cifarnets.store import checkpoints
from cifarnets.store.record import CheckpointRecord
from cifarnets.training import recipes
from cifarnets.training.fit import STATE_FILE, fit, read_state
from cifarnets.training.step import CHANNELS_LAST, Objective, make_optimizer, place, train_step
from cifarnets.unfamiliar import measure

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"
EXAMPLES = ROOT / "cifarnets" / "examples"
NO_GPU = "PyTorch sees no CUDA GPU here (torch.cuda.is_available() is false); scripts/device-check.sh runs it on one"
# Read at import, before conftest's private_cache takes the variable away from each test. The device machine
# gets the repository without ../shared: device-check.sh's header copies the archive into .device/.
ARCHIVE = next((p for p in (Path(os.environ.get("CIFARNETS_DATA") or "/nonexistent"),
                            ROOT / ".device" / "cifar10-jpeg.tar.gz",
                            ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz") if p.is_file()), None)
CACHE = os.environ.get("CIFARNETS_CACHE")  # device-check.sh decodes the archive there before the tests
NO_ARCHIVE = "no CIFAR-10 archive: set CIFARNETS_DATA, or copy it to .device/ (scripts/device-check.sh)"
RUN_LIMIT = 300  # seconds for a tiny run started as its own process: torch's and CUDA's start-up included

on_gpu = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)]


def gpu(test):
    for mark in on_gpu:
        test = mark(test)
    return test


def cifar_slice(root: Path, n_train: int = 4, n_test: int = 4) -> Path:
    """A tiny generated image folder with CIFAR-10's classes: the shipped networks load against it."""
    return make_image_folder(root, classes=list(CIFAR10_CLASSES), n_train=n_train, n_test=n_test)


def shipped_copy(tmp_path: Path) -> Path:
    """The shipped checkpoints, copied: commands that write beside them (analyze) write there."""
    if not all((SHIPPED / key / checkpoints.MODEL_FILE).exists() for key in KEYS):
        pytest.skip(f"the four shipped checkpoints are not all in {SHIPPED}")
    return Path(shutil.copytree(SHIPPED, tmp_path / "checkpoints"))


def run_cli(capsys, *argv: str) -> str:
    """`python -m cifarnets ARGV` in this process; its stdout. A non-zero exit fails with what it said."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, f"{' '.join(argv)} exited {code}: {err[-3000:]}"
    return out


# ---------------------------------------------------------------- runs on every machine

def numpy_without_cpu(source: str) -> list[int]:
    """Lines of `source` that call `.numpy()` on an expression whose chain has no `.cpu()` before it:
    `t.float().numpy()` is one, `t.detach().cpu().permute(1, 2, 0).numpy()` is not. `.cpu()` costs nothing
    on a tensor already there (it returns the tensor itself), so the rule holds everywhere rather than only
    where the tensor may be on a GPU, which a reader cannot always tell."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "numpy"
                and not node.args):
            continue
        part, found = node.func.value, False
        while isinstance(part, (ast.Call, ast.Attribute, ast.Subscript)) and not found:
            found = isinstance(part, ast.Call) and isinstance(part.func, ast.Attribute) and part.func.attr == "cpu"
            part = part.func if isinstance(part, ast.Call) else part.value
        if not found:
            lines.append(node.lineno)
    return lines


def test_the_numpy_check_tells_a_gpu_safe_call_from_one_that_is_not():
    assert numpy_without_cpu("a = t.float().numpy()\nb = t[0].permute(1, 2, 0).numpy()") == [1, 2]
    assert numpy_without_cpu("a = t.detach().cpu().permute(1, 2, 0).numpy()\nb = m(x).cpu()[0].numpy()") == []


def test_no_tensor_becomes_numpy_without_passing_through_the_cpu():
    files = [*sorted((ROOT / "cifarnets").rglob("*.py")), ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py"))]
    found = [f"{p.relative_to(ROOT)}:{n}" for p in files for n in numpy_without_cpu(p.read_text())]
    assert not found, f".numpy() on a tensor that may be on a GPU; add .cpu() before it: {found}"


def test_answers_on_a_gpu_are_computed_in_true_fp32():
    """PyTorch's default lets cuDNN compute fp32 convolutions in TF32; answering turns that off (the flags
    are process-wide and settable without a GPU, so this much is checked everywhere)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        device.exact_fp32()
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# ---------------------------------------------------------------- training

@gpu
def test_a_bf16_training_step_with_the_data_held_on_the_gpu(tiny_folder):
    dev = device.pick("cuda")
    assert device.training_precision(dev) == "bf16"
    data = sources.load(tiny_folder)
    train = loader.DeviceLoader(data.train, 16, dev, train=True, augment=True, channels_last=CHANNELS_LAST)
    assert train.x.is_cuda and train.y.is_cuda  # the whole split lives on the GPU; batches are gathers there
    xb, yb = next(iter(train.batches()))
    assert xb.is_cuda and yb.is_cuda and xb.dtype == torch.float32

    torch.manual_seed(0)
    model = place(build("resnet", num_classes=len(TINY_CLASSES)), dev)
    seen = []  # what the first convolution computes in, inside the step
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda module, inputs, out: seen.append(out.dtype))
    recipe = recipes.get("fast", "resnet")
    optimizer = make_optimizer(model, recipe)
    before = [p.detach().clone() for p in model.parameters()]
    loss, correct = train_step(model, optimizer, Objective(recipe), xb, yb, recipe.lr)
    assert seen == [torch.bfloat16], "the step did not compute in bf16 autocast"
    assert loss.is_cuda and torch.isfinite(loss) and 0 <= int(correct) <= len(yb)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)), "no weight moved"


@gpu
def test_two_epochs_of_the_fast_recipe_on_the_gpu_write_a_checkpoint_that_reloads(tiny_folder, tmp_path):
    data = sources.load(tiny_folder)
    recipe = recipes.get("fast", "resnet", epochs=2, batch_size=16)
    result = fit("resnet", recipe, data, tmp_path / "run", device="cuda")
    assert result["state"] == "finished" and [r["epoch"] for r in result["history"]] == [1, 2]
    assert all(0 <= r["test_acc"] <= 1 and r["train_loss"] == r["train_loss"] for r in result["history"])

    on_gpu_, config = checkpoints.load_checkpoint(tmp_path / "run", "cuda", expected_key="resnet")
    on_cpu, _ = checkpoints.load_checkpoint(tmp_path / "run", "cpu", expected_key="resnet")
    assert config["device"].startswith("cuda (") and config["epochs"] == 2
    assert next(on_gpu_.parameters()).is_cuda
    x = loader.normalize(data.test.x)
    gpu_answer = answering.answer(on_gpu_, x.cuda())[1].cpu()
    torch.testing.assert_close(gpu_answer, answering.answer(on_cpu, x)[1], atol=PROB_ATOL, rtol=0)
    assert read_state(tmp_path / "run")["epoch"] == 2  # the resume state, written from the GPU, reads on the CPU
    assert (tmp_path / "run" / STATE_FILE).exists()


# ---------------------------------------------------------------- answers

@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return CACHE or tmp_path_factory.mktemp("cifar-cache")


@pytest.fixture
def archive_cache(shared_cache, monkeypatch):
    """One decoded cache of the archive for the tests that read all of it: it is decoded once, not per test."""
    monkeypatch.setenv("CIFARNETS_CACHE", str(shared_cache))

# How far a GPU's fp32 probability may be from the CPU's, for any class of any image. Both compute in IEEE
# fp32 (device.exact_fp32 turns cuDNN's TF32 off), so they differ only by the order of their sums and the
# algorithms cuDNN picks (implicit GEMM, Winograd, FFT under benchmark mode): each rounding is ~6e-8
# relative, and through ~20 layers with BatchNorm that moves a logit by 1e-5 or so, a probability by less
# (a softmax changes by at most a quarter of a logit's change). On the CPU, two kernel libraries (oneDNN
# and ATen's own, torch.backends.mkldnn off) gave the shipped networks' 10-view answers to the first 1,000
# test images within 2.7e-6 of each other at most (docs/testing.md, "The GPU"). 1e-4 is about 40 times
# that: room for the GPU's algorithms, and small beside TF32's rounding (up to 5e-4 of each product).
PROB_ATOL = 1e-4
AGREE = 0.999  # same top-1: a tie within PROB_ATOL may fall either way, so one image in 1,000 may differ
ANSWER_IMAGES = 1000


@gpu
@pytest.mark.skipif(ARCHIVE is None, reason=NO_ARCHIVE)
def test_the_shipped_networks_answer_on_the_gpu_as_on_the_cpu(archive_cache):
    if not all((SHIPPED / key / checkpoints.MODEL_FILE).exists() for key in KEYS):
        pytest.skip(f"the four shipped checkpoints are not all in {SHIPPED}")
    x = loader.normalize(sources.load(ARCHIVE).test.x[:ANSWER_IMAGES])
    for key in KEYS:
        on_cpu, config = checkpoints.load_checkpoint(SHIPPED / key, "cpu", expected_key=key)
        on_gpu_, _ = checkpoints.load_checkpoint(SHIPPED / key, "cuda", expected_key=key)
        with torch.no_grad():
            cpu = torch.cat([answering.answer(on_cpu, part, answering.VIEWS)[1] for part in x.split(200)])
            gpu_ = answering.answer(on_gpu_, x.cuda(), answering.VIEWS)[1].cpu()
        same = (cpu.argmax(1) == gpu_.argmax(1)).float().mean().item()
        assert same >= AGREE, f"{key}: the same top-1 for {same:.2%} of {ANSWER_IMAGES} images"
        worst = (cpu - gpu_).abs().max().item()
        assert worst <= PROB_ATOL, f"{key}: a probability differs by {worst:.2e} (tolerance {PROB_ATOL:.0e})"


# ---------------------------------------------------------------- the app's trainer

@pytest.fixture
def app_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(shipped_copy(tmp_path)))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cuda")  # the app's own networks answer on the GPU too
    yield tmp_path / "runs"
    for run in record.list_runs(tmp_path / "runs"):
        if run.alive:
            os.kill(run.pid, 9)


@gpu
def test_the_sidebar_offers_cuda_and_the_app_answers_on_the_gpu(app_env):
    pytest.importorskip("streamlit", reason="streamlit is not installed here (device-check.sh carries it as wheels)")
    from helpers.app import APP, PAGES, image_bytes
    from streamlit.testing.v1 import AppTest

    assert "cuda" in device_choices()
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception
    assert "cuda" in at.selectbox(key="train_device").options
    at.switch_page(PAGES["Classify"]).run()
    at.file_uploader(key="uploads").set_value(("photo.png", image_bytes(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert table["CNN"][0].split(" (")[0] in CIFAR10_CLASSES


@gpu
def test_a_run_the_job_runner_starts_on_cuda_finishes_and_is_adoptable(app_env, tmp_path):
    from helpers.app import wait_for_state

    data = cifar_slice(tmp_path / "data", n_train=8, n_test=2)
    request = TrainRequest("cnn", "fast", 2, 0.01, 16, str(data), "cuda")
    assert check_request(request) == ""
    run = wait_for_state(record.load_run, jobs.start_run(request).folder, ("finished", "failed"), RUN_LIMIT)
    assert run.state == "finished", run.error
    assert run.has_checkpoint and [r["epoch"] for r in run.history()] == [1, 2]
    assert CheckpointRecord.read(run.folder).config["device"].startswith("cuda (")
    record.set_active(run)
    assert record.active() == {"cnn": run.folder}
    model, _ = checkpoints.load_checkpoint(run.folder, "cuda", expected_key="cnn")
    assert next(model.parameters()).is_cuda


# ---------------------------------------------------------------- many processes

@gpu
def test_torchrun_with_one_process_trains_an_epoch_over_nccl(tiny_folder, tmp_path):
    """One GPU, one rank: fit() still forms the process group under torchrun (NCCL on CUDA) and wraps the
    network in DDP, so the collectives N GPUs would run, run. NCCL_DEBUG=VERSION prints NCCL's version once
    a communicator starts: the proof that NCCL, not gloo, carried them."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "cifarnets",
           "train", "--model", "resnet", "--recipe", "fast", "--epochs", "1", "--batch-size", "16",
           "--data", str(tiny_folder), "--out", str(tmp_path / "ddp"), "--device", "cuda"]
    env = os.environ | {"NCCL_DEBUG": "VERSION", "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=RUN_LIMIT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "NCCL version" in done.stdout + done.stderr, "no NCCL communicator was started"
    _, config = checkpoints.load_checkpoint(tmp_path / "ddp", expected_key="resnet")
    assert config["device"].startswith("cuda (") and config["device"].endswith(" x1") and config["epochs"] == 1


# ---------------------------------------------------------------- every command that loads a network

@gpu
def test_predict_on_cuda_gives_the_cpus_answers(capsys, tmp_path):
    folder = shipped_copy(tmp_path)
    files = [str(f) for f in sorted(EXAMPLES.glob("*.jpg"))]
    on = {dev: json.loads(run_cli(capsys, "predict", *files, "--checkpoints", str(folder), "--device", dev, "--json"))
          for dev in ("cuda", "cpu")}
    assert len(on["cuda"]) == len(files) and not any("error" in r for r in on["cuda"])
    for g, c in zip(on["cuda"], on["cpu"], strict=True):
        for key in KEYS:
            assert g["predictions"][key]["label"] == c["predictions"][key]["label"], (g["file"], key)
            # the JSON rounds to 4 places: one more 1e-4 for a rounding that falls either side
            assert g["predictions"][key]["prob"] == pytest.approx(c["predictions"][key]["prob"], abs=2 * PROB_ATOL)
            assert g["predictions"][key]["unfamiliar"]["flag"] == c["predictions"][key]["unfamiliar"]["flag"]


@gpu
def test_evaluate_on_cuda(capsys, tmp_path):
    data = cifar_slice(tmp_path / "data")
    out = json.loads(run_cli(capsys, "evaluate", "--all", "--checkpoints", str(shipped_copy(tmp_path)),
                             "--data", str(data), "--device", "cuda", "--json"))
    assert set(out) == set(KEYS) and all(out[k]["n"] == 40 and "error" not in out[k] for k in KEYS)


@gpu
def test_photos_on_cuda(capsys, tmp_path):
    photos = tmp_path / "photos"
    for f in EXAMPLES.glob("cifar10-test-*.jpg"):
        (photos / f.stem.removeprefix("cifar10-test-")).mkdir(parents=True)
        shutil.copy(f, photos / f.stem.removeprefix("cifar10-test-") / f.name)
    out = json.loads(run_cli(capsys, "photos", str(photos), "--checkpoints", str(shipped_copy(tmp_path)),
                             "--views", "1", "10", "--device", "cuda", "--json"))["real"]
    assert set(out) == set(KEYS)
    assert all(r["n"] == 10 for by_prep in out.values() for by_views in by_prep.values() for r in by_views.values())


@gpu
def test_calibrate_on_cuda_on_a_small_slice(tmp_path):
    folder = shipped_copy(tmp_path)
    networks = {k: measure.Network(*checkpoints.load_checkpoint(folder / k, "cuda", expected_key=k), folder / k)
                for k in ("cnn", "resnet")}
    data = cifar_slice(tmp_path / "data", n_train=20, n_test=12)
    counts = {"noise": 8, "plain colour": 4, "gradient": 4, "text": 4, "photo": 4, "face": 4}
    results = measure.calibrate(networks, sources.load(data), sizes=measure.Sizes(120, 80, 60, 60),
                                  counts=counts)
    assert set(results) == {"cnn", "resnet"}
    assert all(r["machine"].startswith("cuda (") for r, _ in results.values())


@gpu
@pytest.mark.skipif(ARCHIVE is None, reason=NO_ARCHIVE)
def test_the_calibrate_command_on_cuda(capsys, tmp_path, archive_cache):
    out = json.loads(run_cli(capsys, "calibrate", "--data", str(ARCHIVE), "--checkpoints", str(shipped_copy(tmp_path)),
                             "--device", "cuda", "--json"))
    assert set(out) == set(KEYS) and all(0 < r["held_out_rate"] <= 1 for r in out.values())


@gpu
def test_analyze_on_cuda(capsys, tmp_path):
    folder = shipped_copy(tmp_path)
    run_cli(capsys, "analyze", "--data", str(cifar_slice(tmp_path / "data")), "--checkpoints", str(folder),
            "--device", "cuda")
    record = json.loads((folder / "resnet" / "analysis.json").read_text())
    assert record["device"].startswith("cuda (")
    assert json.loads((folder / "analysis.json").read_text())["n_test"] == 40  # the four's joint file


@gpu
def test_race_on_cuda_with_the_modern_recipe_whose_densenet_distils(capsys, tmp_path, monkeypatch):
    """The four one after another in one process; the DenseNet's modern recipe first answers the training split
    with its teachers (the shipped ResNets) on the GPU, then learns from those answers."""
    from cifarnets.runs.race import ORDER, member_folder

    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(shipped_copy(tmp_path)))
    out = tmp_path / "race"
    run_cli(capsys, "race", "--recipe", "modern", "--epochs", "1", "--batch-size", "16", "--data",
            str(cifar_slice(tmp_path / "data", n_train=4, n_test=2)), "--out", str(out), "--device", "cuda")
    for key in ORDER:
        config = CheckpointRecord.read(member_folder(out, key)).config
        assert config["device"].startswith("cuda (") and config["epochs"] == 1, key


@gpu
def test_bench_and_speedrun_on_cuda(capsys, tmp_path):
    data = str(cifar_slice(tmp_path / "data", n_train=40, n_test=4))
    bench = json.loads(run_cli(capsys, "bench", "--model", "cnn", "--steps", "2", "--cold-starts", "1",
                               "--batch-size", "16", "--data", data, "--device", "cuda", "--json"))
    assert bench["device"].startswith("cuda (")
    speed = json.loads(run_cli(capsys, "speedrun", "--model", "cnn", "--epochs", "1", "--target", "0.99",
                               "--batch-size", "16", "--data", data, "--device", "cuda", "--json"))
    assert speed["machine"].startswith("cuda (") and speed["results"]["cnn"]["fast"]["reached"] == "0/1"
