"""Faults during training, and classifying while a run trains: kills, unwritable and full disks,
non-finite losses, two runs at one folder, many threads on the same models."""

from __future__ import annotations

import errno
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FRESH_SEEDS
from helpers.hostile import cli_process, encode, image_folder, write_all_checkpoints
from PIL import Image
from safetensors.torch import load_file

from cifarnets import cli
from cifarnets.data import sources
from cifarnets.data.loader import batch
from cifarnets.predict import prepare, probabilities
from cifarnets.store import checkpoints as ckpt
from cifarnets.store import runfolder
from cifarnets.store.fileio import read_json
from cifarnets.training import fit, recipes

KEY = "cnn"  # the fastest network: these tests are about files and processes, not learning




@pytest.fixture
def tiny(tmp_path) -> Path:
    return image_folder(tmp_path / "data")


def train_args(tiny: Path, out: Path, *extra: str, epochs: int = 3) -> list[str]:
    return ["train", "--model", KEY, "--recipe", "report", "--epochs", str(epochs), "--batch-size", "8",
            "--data", str(tiny), "--out", str(out), "--device", "cpu", *extra]


def partial_run(tiny: Path, out: Path, epochs: int = 3, done: int = 1) -> None:
    """A run of `epochs` stopped after `done` of them, in-process: a complete checkpoint to lose."""
    finished = []
    result = fit.fit(KEY, recipes.get("report", KEY, epochs=epochs, batch_size=8), sources.load(str(tiny)), out,
                       device="cpu", progress=lambda e: finished.append(1) if e["kind"] == "epoch" else None,
                       should_stop=lambda: len(finished) >= done)
    assert result["state"] == "stopped" and result["epoch"] == done


def snapshot_files(out: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in out.iterdir() if f.name != runfolder.STATUS_FILE}


def check_run(out: Path, final_epochs: int | None = None) -> int:
    """Whatever moment a run died at, its folder is consistent; returns the epochs its checkpoint holds.

    Each epoch ends with model.safetensors, history.json, config.json, then train_state.pt, each
    written whole: so the public files may be one epoch ahead of the resume state, never behind.
    """
    state = torch.load(out / runfolder.STATE_FILE, weights_only=True) if (out / runfolder.STATE_FILE).exists() else None
    if state is not None:
        assert [r["epoch"] for r in state["history"]] == list(range(1, state["epoch"] + 1))
    if not (out / ckpt.CONFIG_FILE).exists():  # killed before the first epoch's checkpoint was whole
        assert state is None or state["epoch"] == 0
        return 0
    model, config = ckpt.load_checkpoint(out, expected_key=KEY)  # strict: every tensor, every shape
    history = read_json(out / ckpt.HISTORY_FILE)
    epochs = [r["epoch"] for r in history]
    assert epochs == list(range(1, len(epochs) + 1)), f"history epochs {epochs}"
    assert config["epochs"] in (len(history), len(history) - 1)
    if state is not None:
        assert state["epoch"] in (config["epochs"], config["epochs"] - 1)
    if final_epochs is not None:
        assert state["epoch"] == config["epochs"] == len(history) == final_epochs
        assert history == state["history"]
        weights = load_file(str(out / ckpt.MODEL_FILE))
        assert all(torch.equal(weights[k], v) for k, v in state["model"].items())
        assert not list(out.glob(".*.tmp")), "temporary files left behind"
    return config["epochs"]


# ---------------------------------------------------------------- SIGKILL

def wait_for_training(proc, out: Path, timeout: float = 120) -> bool:
    """True once `proc` has taken the run folder (its pid is in status.json); False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.is_alive():
            return False
        try:
            if read_json(out / runfolder.STATUS_FILE).get("pid") == proc.pid:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"the run did not start within {timeout}s")


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tiny, tmp_path, capsys, restore_signals):
    seed = int(os.environ.get("FAULT_SEED") or (time.time_ns() % 2**31 if FRESH_SEEDS else 0))
    print(f"FAULT_SEED={seed}")  # shown on failure: rerun with it to kill at the same moments
    rng = random.Random(seed)
    out, cache, log, epochs = tmp_path / "run", tmp_path / "cache", tmp_path / "log", 200
    args = train_args(tiny, out, "--resume", epochs=epochs)
    kills, progress, mid_write = 0, [], 0
    while kills < 5:
        proc = cli_process(args, cache, log)
        if not wait_for_training(proc, out):
            break  # it finished before this kill: enough epochs were killed into already
        if kills == 0:
            # meanwhile, a second run at the same folder refuses, naming the first
            assert cli.main(args) == 1
            assert f"another run (pid {proc.pid}) is writing to {out}" in capsys.readouterr().err
        time.sleep(rng.uniform(0, 0.6))
        proc.kill()  # SIGKILL: no handler, no cleanup, no flush
        proc.join()
        if proc.exitcode == 0:
            break  # it finished just before the kill landed
        assert proc.exitcode == -signal.SIGKILL
        kills += 1
        mid_write += bool(list(out.glob(".*.tmp")))  # it died inside a write: the best moment to test
        progress.append(check_run(out))
    assert kills >= 3, f"the run finished after {kills} kills; make it longer"
    proc = cli_process(args, cache, log)
    proc.join(timeout=300)
    assert proc.exitcode == 0, log.read_text()[-2000:]
    assert check_run(out, final_epochs=epochs) == epochs
    print(f"checkpointed epochs after each kill: {progress}; {mid_write} kill(s) landed inside a write")


def test_killed_between_the_last_epochs_writes(tiny, tmp_path):
    """The one moment a random kill rarely hits: the last epoch's checkpoint half written. Resuming
    must still end with the last epoch in the public checkpoint, not just in the resume state."""
    class Killed(BaseException):
        pass

    out, epochs = tmp_path / "run", 2
    real_save, real_state = fit.save_checkpoint, fit._write_state

    def save(folder, model, config, history):
        real_save(folder, model, config, history)
        if config["epochs"] == epochs:
            raise Killed

    def write_state(folder, state):
        real_state(folder, state)
        if state["epoch"] == epochs:
            raise Killed

    dataset = sources.load(str(tiny))
    recipe = recipes.get("report", KEY, epochs=epochs, batch_size=8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fit, "save_checkpoint", save)
        mp.setattr(fit, "_write_state", write_state)
        with pytest.raises(Killed):
            fit.fit(KEY, recipe, dataset, tmp_path / "run", device="cpu")
    check_run(out)
    assert fit.fit(KEY, recipe, dataset, out, device="cpu", resume=True)["state"] == "finished"
    check_run(out, final_epochs=epochs)


# ---------------------------------------------------------------- unwritable and full

def mount(*args: str) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"needs mount (root with CAP_SYS_ADMIN), which failed: {r.stderr.strip()}")


def test_run_folder_under_a_file(tiny, tmp_path, capsys, restore_signals):
    """Unwritable even for root: a folder cannot be made inside a file."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    assert cli.main(train_args(tiny, blocker / "run")) == 1
    err = capsys.readouterr().err
    assert re.search(r"error: cannot create the run folder .*notes.txt/run: Not a directory", err), err


def test_read_only_run_folder_keeps_its_checkpoint(tiny, tmp_path, capsys, restore_signals):
    """Root ignores chmod, so the folder is made read-only the way a disk is: a read-only bind mount."""
    out = tmp_path / "run"
    partial_run(tiny, out)
    before = snapshot_files(out)
    mount("--bind", str(out), str(out))
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(out)], check=True)
        assert cli.main(train_args(tiny, out, "--resume")) == 1
    finally:
        subprocess.run(["umount", "-l", str(out)], check=True)
    assert f"error: the run folder {out} is not writable" in capsys.readouterr().err
    assert snapshot_files(out) == before
    assert check_run(out) == 1


@pytest.mark.slow
def test_full_disk_keeps_the_previous_checkpoint_then_resumes(tiny, tmp_path, capsys, restore_signals):
    """A real full file system (a small tmpfs): the write fails, the old checkpoint stays, and once
    there is room again the run resumes and finishes."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk))
    try:
        out = disk / "run"
        partial_run(tiny, out)
        before = snapshot_files(out)
        filler = disk / "filler"
        with open(filler, "wb") as f:  # fill it up, then give back a little: room for status.json only
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC
        os.truncate(filler, filler.stat().st_size - 32768)
        assert cli.main(train_args(tiny, out, "--resume")) == 1
        err = capsys.readouterr().err
        assert re.search(r"error: cannot write .*: No space left on device", err), err
        assert "Traceback" not in err
        assert snapshot_files(out) == before  # no half file, no stray temporary file
        filler.unlink()
        assert cli.main(train_args(tiny, out, "--resume")) == 0
        check_run(out, final_epochs=3)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_full_disk_simulated(tiny, tmp_path, monkeypatch, capsys, restore_signals):
    """The same without mount: every write's fsync reports ENOSPC, as a real full disk can."""
    out = tmp_path / "run"
    partial_run(tiny, out)
    before = snapshot_files(out)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert cli.main(train_args(tiny, out, "--resume")) == 1
    err = capsys.readouterr().err
    assert re.search(r"error: cannot write .*: No space left on device", err), err
    assert snapshot_files(out) == before


# ---------------------------------------------------------------- non-finite loss

def test_non_finite_loss_names_epoch_and_step(tiny, tmp_path, capsys, restore_signals):
    out = tmp_path / "run"
    assert cli.main(train_args(tiny, out, "--lr", "1e30")) == 1
    err = capsys.readouterr().err
    m = re.search(r"error: the loss became non-finite at epoch (\d+), step (\d+) of (\d+); lower the learning", err)
    assert m, err
    assert int(m.group(1)) == 1 and 1 <= int(m.group(2)) <= int(m.group(3)) == 8
    assert read_json(out / runfolder.STATUS_FILE)["state"] == "failed"
    assert not (out / ckpt.MODEL_FILE).exists() and not (out / runfolder.LOCK_FILE).exists()


# ---------------------------------------------------------------- the lock

def test_a_live_lock_refuses_and_a_stale_lock_is_taken_over(tiny, tmp_path, capsys, restore_signals):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / runfolder.LOCK_FILE).write_text(str(holder.pid))
        assert cli.main(train_args(tiny, out, epochs=1)) == 1
        assert f"another run (pid {holder.pid}) is writing to {out}" in capsys.readouterr().err
        assert not (out / runfolder.STATE_FILE).exists()
    finally:
        holder.kill()
        holder.wait()
    # the same pid, now dead (and reaped): the lock is stale, and the run takes it over
    assert cli.main(train_args(tiny, out, epochs=1)) == 0
    assert check_run(out) == 1
    assert not (out / runfolder.LOCK_FILE).exists()


def test_the_lock_never_holds_an_empty_pid(tmp_path, monkeypatch):
    """A lock file is whole when it appears: a second run reading it at once must see the pid, or it
    would take an empty file for a stale lock and both runs would write the same folder."""
    seen = []
    real_link = os.link

    def link(src, dst, *a, **kw):
        seen.append(Path(src).read_text())
        return real_link(src, dst, *a, **kw)

    monkeypatch.setattr(os, "link", link)
    with fit.RunLock(tmp_path):
        assert (tmp_path / runfolder.LOCK_FILE).read_text() == str(os.getpid())
    assert seen == [str(os.getpid())]
    assert not list(tmp_path.iterdir())


def test_the_lock_works_without_hard_links(tmp_path, monkeypatch):
    """FAT and some network shares refuse hard links: the lock still works there, and still refuses."""
    def no_links(src, dst, *a, **kw):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", no_links)
    with fit.RunLock(tmp_path):
        assert (tmp_path / runfolder.LOCK_FILE).read_text() == str(os.getpid())
        holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            other = tmp_path / "other"
            other.mkdir()
            (other / runfolder.LOCK_FILE).write_text(str(holder.pid))
            with pytest.raises(fit.TrainingError, match=f"another run \\(pid {holder.pid}\\)"):
                fit.RunLock(other).__enter__()
        finally:
            holder.kill()
            holder.wait()
    assert not (tmp_path / runfolder.LOCK_FILE).exists()


# ---------------------------------------------------------------- many threads, one set of models

@pytest.mark.slow
def test_threads_classify_identically_while_a_run_writes_checkpoints(tiny, tmp_path):
    entries = ckpt.discover(write_all_checkpoints(tmp_path / "checkpoints"))
    rng = np.random.default_rng(0)
    x = batch([prepare(encode(Image.fromarray(rng.integers(0, 255, (24 + i, 20, 3), np.uint8)), "PNG"),
                       f"{i}.png").pixels for i in range(12)])
    reference = probabilities(entries, x)

    errors: list[BaseException] = []
    trained: list[dict] = []

    def trainer():
        try:
            trained.append(fit.fit(KEY, recipes.get("report", KEY, epochs=3, batch_size=8), sources.load(str(tiny)),
                                     tmp_path / "run", device="cpu"))
        except BaseException as e:  # noqa: B036 - reported below, on the test's thread
            errors.append(e)

    def classifier(rounds: int):
        try:
            for _ in range(rounds):
                got = probabilities(entries, x)
                assert got.keys() == reference.keys()
                for k in got:
                    assert torch.equal(got[k], reference[k]), f"{k} differs under concurrency"
        except BaseException as e:  # noqa: B036
            errors.append(e)

    threads = [threading.Thread(target=trainer)] + [threading.Thread(target=classifier, args=(5,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    assert trained and trained[0]["state"] == "finished"
    check_run(tmp_path / "run", final_epochs=3)

