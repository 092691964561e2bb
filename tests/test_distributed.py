"""`torchrun --nproc_per_node=2 -m cifarnets train`: DistributedDataParallel on the CPU (gloo).

Two ranks train on disjoint halves of every global batch; the tests check they end with identical
weights, that rank 0's checkpoint loads, that the history matches a single process with the same
global batch, and that a stop reaching one rank only stops both and resumes to the same weights.
The comparison with one process uses the CNN: it has no BatchNorm, so the two runs compute the
same thing and must agree closely (a network with BatchNorm normalises over each rank's half batch,
which on batches this small moves the loss by 20%). The ResNet covers BatchNorm's buffers.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cifarnets.data import sources
from cifarnets.store import checkpoints
from cifarnets.store.runfolder import STATE_FILE, read_history
from cifarnets.training import recipes
from cifarnets.training.fit import fit

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).parent / "helpers" / "ddp_worker.py"
RECIPE = {"epochs": 2, "batch_size": 16, "lr": 0.05}


def torchrun(key: str, folder: Path, out: Path, digests: Path, *extra: str, nproc: int = 2,
             **env: str) -> subprocess.CompletedProcess:
    digests.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(WORKER),
           "train", "--model", key, "--recipe", "modern", "--data", str(folder), "--out", str(out), "--device", "cpu",
           "--epochs", str(RECIPE["epochs"]), "--batch-size", str(RECIPE["batch_size"]), "--lr", str(RECIPE["lr"]),
           *extra]
    env = os.environ | env | {"DIGEST_DIR": str(digests), "OMP_NUM_THREADS": "1",
                              "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def rank_digests(digests: Path) -> list[str]:
    return [(digests / f"rank{r}.txt").read_text() for r in (0, 1)]


def test_two_ranks_end_identical_and_match_one_process(tiny_folder, tmp_path):
    run = torchrun("cnn", tiny_folder, tmp_path / "ddp", tmp_path / "digests")
    zero, one = rank_digests(tmp_path / "digests")
    assert zero == one, "the ranks ended with different weights"
    assert run.stderr.count("finished: test accuracy") == 1, "rank 0 alone reports"

    model, config = checkpoints.load_checkpoint(tmp_path / "ddp", expected_key="cnn")
    assert config["epochs"] == 2 and config["device"].endswith("x2")
    ddp = read_history(tmp_path / "ddp")

    single = fit("cnn", recipes.get("modern", "cnn", **RECIPE), sources.load(tiny_folder), tmp_path / "one",
                 device="cpu")["history"]
    assert [r["epoch"] for r in ddp] == [r["epoch"] for r in single] == [1, 2]
    for a, b in zip(ddp, single, strict=True):  # bf16 rounding differs with the batch's shape: close, not equal
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=0.01)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=0.01)
        assert a["train_acc"] == pytest.approx(b["train_acc"], abs=0.05)


def test_one_process_under_torchrun_still_trains_as_a_process_group(tiny_folder, tmp_path):
    """torchrun --nproc_per_node=1 forms the group too, with DDP over it: gloo here, NCCL on a one-GPU
    machine (tests/test_cuda.py), so one GPU runs the code that N would. The checkpoint says it."""
    torchrun("cnn", tiny_folder, tmp_path / "one", tmp_path / "digests", nproc=1)
    model, config = checkpoints.load_checkpoint(tmp_path / "one", expected_key="cnn")
    assert config["device"].endswith(" x1") and config["epochs"] == 2
    assert (tmp_path / "digests" / "rank0.txt").exists()


def test_a_stop_reaching_one_rank_stops_both_and_resumes_to_the_same_weights(tiny_folder, tmp_path):
    torchrun("resnet", tiny_folder, tmp_path / "straight", tmp_path / "straight-digests")
    stopped = torchrun("resnet", tiny_folder, tmp_path / "stopped", tmp_path / "digests", STOP_RANK="1",
                       STOP_AFTER_EPOCH="1")
    assert "torchrun --nproc_per_node=2 -m cifarnets train" in stopped.stderr and "--resume" in stopped.stderr
    assert (tmp_path / "stopped" / STATE_FILE).exists()
    assert [r["epoch"] for r in read_history(tmp_path / "stopped")] == [1]

    torchrun("resnet", tiny_folder, tmp_path / "stopped", tmp_path / "digests", "--resume")
    resumed = rank_digests(tmp_path / "digests")
    assert resumed[0] == resumed[1] == rank_digests(tmp_path / "straight-digests")[0]
    assert len(read_history(tmp_path / "stopped")) == 2
