"""What every tab of the Why they differ page shares: the measurements, and the commands that make them."""

from __future__ import annotations

import shlex

import streamlit as st

from ...analysis.collect import Network, collect
from ...paths import checkpoints_dir, data_env
from .. import resources


def networks() -> dict[str, Network]:
    """The four as the app loaded them, and ours; with their stored measurements (small JSON files, read each run)."""
    return collect(checkpoints_dir(), resources.entries())


def _data() -> str:
    return shlex.quote(data_env() or "PATH")


def analyze_command() -> str:
    return f"python -m cifarnets analyze --data {_data()} --checkpoints {shlex.quote(str(checkpoints_dir()))}"


def train_plain_command() -> str:
    return (f"python -m cifarnets train --model resnet_plain --recipe modern --data {_data()} "
            f"--out {shlex.quote(str(checkpoints_dir() / 'resnet_plain'))}")


def data_hint() -> str:
    return "" if data_env() else " (PATH: CIFAR-10, e.g. the image-folder archive)"


def status(nets: dict[str, Network]) -> None:
    """One line on where the stored measurements come from, and what to run where they are missing or old."""
    measured = [n for n in nets.values() if n.fresh_record and (n.trained or n.ours)]
    missing = [n.label for n in nets.values() if n.trained and not n.fresh_record]
    if measured:
        r = measured[0].fresh_record
        st.caption(f"Test-split measurements by `python -m cifarnets analyze` on {r.get('device', '?')}, "
                   f"{r.get('data', {}).get('n_test', '?'):,} test images. Per-image pictures are computed as you "
                   "look.")
    if missing:
        stale = [n.label for n in nets.values() if n.trained and n.stale]
        why = (f" ({', '.join(stale)}: measured on an older checkpoint)" if stale else "")
        st.info(f"No current test-split measurements for {', '.join(missing)}{why}. Compute them once (a few minutes "
                f"on a CPU){data_hint()}:")
        st.code(analyze_command(), language="bash")


def side_by_side(panels: list, per_row: int = 3) -> None:
    """Charts in columns, at most `per_row` to a row, each as wide as its column. Streamlit stacks columns on a
    phone, so every panel keeps the screen's width there, where one faceted chart of fixed-width panels ran off
    the side of a 390-pixel screen."""
    per_row = min(per_row, len(panels))
    for start in range(0, len(panels), per_row):
        # strict=False: a last row with fewer panels leaves its other columns empty, so every panel has one width
        for column, chart in zip(st.columns(per_row), panels[start:start + per_row], strict=False):
            column.altair_chart(chart, width="stretch")
