"""Resources every page needs, loaded once per server and shared by all sessions: the device and the networks."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

from ..device import machine_name, pick
from ..diagram import architecture
from ..models import KEYS, build
from ..paths import app_device, checkpoints_dir, hub_spec
from ..runs import jobs
from ..store import hub
from ..store.checkpoints import CONFIG_FILE, MODEL_FILE, Entry, discover


@st.cache_resource(show_spinner=False)
def device() -> torch.device:
    dev = pick(app_device())
    if dev.type == "cpu":
        # The app classifies a few 32x32 images at a time. One thread does each network in 1-50 ms;
        # two, while a training run holds a core, waited 0.4-1 s per network at OpenMP barriers.
        torch.set_num_threads(1)
    return dev


def device_text() -> str:
    return machine_name(device())


def _stamp(folder: Path) -> tuple[float, float]:
    """Modification times of a checkpoint's weights and config: a new checkpoint means a reload."""
    out = []
    for name in (MODEL_FILE, CONFIG_FILE):
        try:
            out.append((folder / name).stat().st_mtime)
        except OSError:
            out.append(0.0)
    return tuple(out)


@st.cache_resource(show_spinner="Fetching the networks CIFARNETS_HUB names...")
def _hub(spec: str) -> tuple[dict[str, hub.Source], list[str]]:
    # Once per server and spec: a download, or online a check for a newer revision, must not run on every
    # click, and a network must not change under a session. Restart the app to fetch again.
    return hub.sources(spec)


def hub_sources() -> dict[str, hub.Source]:
    """{key: where CIFARNETS_HUB sends it}, for the networks it names; {} when it is unset."""
    return _hub(hub_spec())[0]


@st.cache_resource(max_entries=4, show_spinner="Loading the networks...")
def _discover(folder: str, overrides: tuple[tuple[str, str], ...], device_name: str, stamp: tuple) -> dict:
    # `stamp` only keys the cache: a retrained or newly chosen checkpoint loads afresh.
    return discover(folder, device_name, dict(overrides))


def entries() -> dict[str, Entry]:
    """Every network: from the user's chosen run, else from where CIFARNETS_HUB sends it, else from the shipped
    checkpoints; or why it could not be loaded. A Hub network loads as strictly as the CLI loads it."""
    folder = checkpoints_dir()
    from_hub = {k: str(s.folder) for k, s in hub_sources().items() if s.folder}
    overrides = from_hub | {k: str(v) for k, v in jobs.active().items()}  # the user's own choice wins
    stamp = tuple(_stamp(Path(overrides.get(k) or folder / k)) for k in KEYS)
    return _discover(str(folder), tuple(sorted(overrides.items())), str(device()), stamp)


def notice_hub() -> None:
    """One warning per network CIFARNETS_HUB names that fell back to its shipped checkpoint, or one for a spec
    that could not be read."""
    for notice in _hub(hub_spec())[1]:
        st.warning(notice)


def notice_missing(found: dict[str, Entry]) -> None:
    """One clear line per network that has no usable checkpoint."""
    missing = [e for e in found.values() if not e.ok]
    if len(missing) == len(found):
        st.warning("No network has a checkpoint yet, so none can classify. Train one from the sidebar, or put "
                   f"the shipped checkpoints in `{checkpoints_dir()}` (or point `CIFARNETS_CHECKPOINTS` at them).")
    for e in missing:
        st.info(f"**{e.label}** is not loaded: {e.reason}")


def source_text(entry: Entry) -> str:
    """Which checkpoint a network uses, in words."""
    if entry.key in jobs.active():
        return f"your run `{entry.path.name}`"
    source = hub_sources().get(entry.key)
    return source.text() if source else "the shipped checkpoint"


@st.cache_data(show_spinner=False)
def overview(key: str) -> dict:
    return architecture.overview(key)


@st.cache_data(show_spinner=False)
def layers(key: str, depth: int | None) -> list[dict]:
    return architecture.layer_table(build(key), depth)


@st.cache_data(show_spinner=False)
def param_counts() -> list[dict]:
    return architecture.param_counts()
