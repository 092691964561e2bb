"""python -m cifarnets stresstime: how fast the Stress test page answers, on this machine.

For each image given (default: the bundled examples), on one CPU thread as the app runs: the time from
choosing a corruption to all four answers at every severity (the slider then moves through answers
already made), and the time of the PGD-10 smallest-budget search against all four networks.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from ..cliargs import add_checkpoints_arg
from ..data.images import decode_image, to_array
from ..device import machine_name, pick
from ..examples import list_examples
from ..predict import read_file
from ..store.checkpoints import discover
from ..stress import apply, corruptions


def add_parser(sub) -> None:
    s = sub.add_parser("stresstime", help="time the Stress test page's answers and its smallest-budget search",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    s.add_argument("files", nargs="*", metavar="FILE", help="images (default: the bundled examples)")
    add_checkpoints_arg(s)
    s.add_argument("--corruptions", nargs="+", choices=corruptions.NAMES, default=["gaussian_noise", "zoom_blur",
                                                                                    "glass_blur", "fog"],
                   metavar="NAME", help="corruptions to time (default: a noise, two blurs, fog)")
    s.set_defaults(func=cmd_stresstime)


def cmd_stresstime(args) -> int:
    torch.set_num_threads(1)  # as the app: ui/resources.device()
    device = pick("cpu")
    entries = {k: e for k, e in discover(args.checkpoints, device).items() if e.ok}
    paths = [Path(f) for f in args.files] or [e.path for e in list_examples()]
    pixels = [to_array(decode_image(read_file(p), p.name)) for p in paths]
    apply.seen(entries, apply.ladder(pixels[0], "fog"))  # warm-up: first calls pay for allocation
    slider, search = [], []  # (wall, CPU) seconds: on a shared machine the CPU time is what an idle core would take
    for p in pixels:
        for name in args.corruptions:
            slider.append(_timed(lambda p=p, name=name: apply.seen(entries, apply.ladder(p, name))))
        search.append(_timed(lambda p=p: apply.smallest_every(entries, p)))
    print(f"{machine_name(device)}, {len(entries)} networks, {len(pixels)} images; wall-clock / CPU time of this "
          "process (on a loaded machine the CPU time is what an idle core would take)")
    print("corruption chosen -> every network's answer and verdict at all 6 severities: " + _summary(slider, 1000, "ms")
          + f" ({len(slider)} choices; moving the slider then shows answers already made)")
    print("PGD-10 smallest-budget search, all networks: " + _summary(search, 1, "s") + f" ({len(search)} images)")
    return 0


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _summary(times: list[tuple[float, float]], scale: float, unit: str) -> str:
    return " / ".join(f"median {statistics.median(t[i] for t in times) * scale:.{0 if unit == 'ms' else 2}f} {unit}, "
                      f"max {max(t[i] for t in times) * scale:.{0 if unit == 'ms' else 2}f} {unit}"
                      for i in (0, 1))
