"""What several commands share: the --data, --device and --checkpoints arguments, and how a training
process is asked to stop (Ctrl-C, SIGTERM or the app's deadline: after the current step, with its state saved)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable

from .paths import DEFAULT_CHECKPOINTS, DEFAULT_DATA, checkpoints_dir, run_deadline


def add_data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="image-folder tree, .tar/.tar.gz/.zip of one, or torchvision CIFAR-10 folder "
                                  f"(default: $CIFARNETS_DATA, else {DEFAULT_DATA}, downloaded when online)")


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")


def add_checkpoints_arg(p: argparse.ArgumentParser, help: str = "folder of checkpoint folders") -> None:
    # read when the parser is made, so a command finds the same folder the app does
    p.add_argument("--checkpoints", default=str(checkpoints_dir()),
                   help=f"{help} (default: $CIFARNETS_CHECKPOINTS, else {DEFAULT_CHECKPOINTS}/ beside app.py)")


def measuring_command(sub, name: str, doc: str, help: str) -> argparse.ArgumentParser:
    """A command that measures the networks in --checkpoints on --data, on --device, and writes what it found
    beside them (analyze, calibrate, stress); its description is the second paragraph of its module's `doc`."""
    p = sub.add_parser(name, help=help, description=doc.split("\n\n")[1].replace("\n", " "))
    add_data_arg(p)
    add_checkpoints_arg(p)
    add_device_arg(p)
    return p


def stop_on_signals(say: Callable[..., None] = print) -> Callable[[], bool]:
    """From now on, Ctrl-C or SIGTERM asks the training in this process to stop after its current step
    (a second Ctrl-C stops at once); returns the question fit() asks after every step. So does the deadline
    the app gives a public run's process ($CIFARNETS_DEADLINE, runs/jobs.py): past it, the run stops as
    Cancel stops it, whether or not anyone watches."""
    asked = {"stop": False}
    deadline = run_deadline()

    def ask(signum, frame) -> None:
        if asked["stop"]:
            raise KeyboardInterrupt
        asked["stop"] = True
        say("\nstopping after this step; saving...", file=sys.stderr)

    def should_stop() -> bool:
        if deadline is not None and not asked["stop"] and time.time() > deadline:
            asked["stop"] = True
            say("\npast this server's time limit for the run: stopping after this step; saving...", file=sys.stderr)
        return asked["stop"]

    signal.signal(signal.SIGINT, ask)
    signal.signal(signal.SIGTERM, ask)
    return should_stop
