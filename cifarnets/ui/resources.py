"""Resources every page needs, loaded once per server and shared by all sessions: the device and the networks."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

from ..device import machine_name, pick
from ..diagram import architecture
from ..models import KEYS, build
from ..paths import app_device, checkpoints_dir, hub_spec
from ..runs.record import Run
from ..runs.visitor import COOKIE, SECRET_KEY, Visitor
from ..store import hub
from ..store.checkpoints import Entry, discover
from ..store.record import modified


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


@st.cache_resource(show_spinner="Fetching the networks CIFARNETS_HUB names...")
def _hub(spec: str) -> tuple[dict[str, hub.Source], list[str]]:
    # Once per server and spec: a download, or online a check for a newer revision, must not run on every
    # click, and a network must not change under a session. Restart the app to fetch again.
    return hub.sources(spec)


def hub_sources() -> dict[str, hub.Source]:
    """{key: where CIFARNETS_HUB sends it}, for the networks it names; {} when it is unset."""
    return _hub(hub_spec())[0]


def visitor() -> Visitor:
    """This browser session as the runs see it: the local user, or in public mode one visitor among many, the
    same one across reloads and tabs of the same browser (its cookie, which remember_visitor sets)."""
    return Visitor.of_session(st.session_state, cookie=st.context.cookies.get(COOKIE))


def remember_visitor() -> None:
    """In public mode: the browser keeps this visitor's secret in a cookie, unless it sent it. Only this site's own
    pages send it (SameSite=Strict), and never a link: sharing a view shares no control. Said on every run of the
    page until a reload brings the cookie back: a run cut short by a click (a class typing at once) may never have
    drawn it, and a visitor who reloads then would be someone else."""
    if not visitor().public:
        return
    secret = st.session_state[SECRET_KEY]
    if st.context.cookies.get(COOKIE) != secret:  # (a mock, never equal, under AppTest: the script is harmless)
        days = 30 * 24 * 3600
        st.html(f"""<script>document.cookie = "{COOKIE}={secret}; Path=/; Max-Age={days}; SameSite=Strict"
                + (location.protocol === "https:" ? "; Secure" : "");</script>""", unsafe_allow_javascript=True)


# Keyed by the overrides: in public mode each visitor's adoptions are their own set of networks.
@st.cache_resource(max_entries=8, show_spinner="Loading the networks...")
def _discover(folder: str, overrides: tuple[tuple[str, str], ...], device_name: str, stamp: tuple) -> dict:
    # `stamp` only keys the cache: a retrained or newly chosen checkpoint loads afresh.
    return discover(folder, device_name, dict(overrides))


def entries() -> dict[str, Entry]:
    """Every network: from the user's chosen run, else from where CIFARNETS_HUB sends it, else from the shipped
    checkpoints; or why it could not be loaded. A Hub network loads as strictly as the CLI loads it."""
    folder = checkpoints_dir()
    from_hub = {k: str(s.folder) for k, s in hub_sources().items() if s.folder}
    overrides = from_hub | {k: str(v) for k, v in visitor().adopted().items()}  # the user's own choice wins
    stamp = tuple(modified(Path(overrides.get(k) or folder / k)) for k in KEYS)
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
    if entry.key in visitor().adopted():
        return f"your run `{entry.path.name}`"
    source = hub_sources().get(entry.key)
    return source.text() if source else "the shipped checkpoint"


def _pct(acc: float | None) -> str:
    return f"{acc:.1%}" if acc is not None else "accuracy unknown"


ACCURACY = "test accuracy as Classify answers"  # the one accuracy a run or network is quoted with


def accuracy_text(acc: float | None) -> str:
    """'Test accuracy as Classify answers: 51.2%': the checkpoint's figure (its record's metrics), from the views
    Classify averages; not the curves' last point, which is of each test image alone."""
    return f"{ACCURACY[0].upper()}{ACCURACY[1:]}: {_pct(acc)}"


def answerer_label(entry: Entry) -> str:
    """A network's name where its answer or figure appears: "CNN", or "CNN · your run, 10.0%" when one of the
    user's runs answers for it instead of the shipped network."""
    if entry.key in visitor().adopted():
        return f"{entry.label} · your run, {_pct(entry.test_acc)}"
    return entry.label


def adopted_note(found: dict[str, Entry]) -> str:
    """One line naming the networks that answer from the user's runs, "" when all are the shipped ones."""
    mine = [e for e in found.values() if e.key in visitor().adopted()]
    if not mine:
        return ""
    return ("Answering from your own run" + ("s" if len(mine) > 1 else "") + ": "
            + "; ".join(f"{e.label} (`{e.path.name}`, {_pct(e.test_acc)})" for e in mine)
            + ". The others are the shipped networks.")


def worse_than_now(runs: list[Run]) -> str:
    """A warning when any of `runs` scores below the network it would replace in Classify, "" otherwise."""
    found = entries()
    worse = []
    for run in runs:
        now = found.get(run.model)
        if now is not None and now.ok and now.test_acc is not None and (run.test_acc or 0.0) < now.test_acc:
            where = "your run" if run.model in visitor().adopted() else "the shipped network"
            worse.append(f"{run.label}: {_pct(run.test_acc)}, against {_pct(now.test_acc)} for {where} now")
    return (f"Below the network it would replace in Classify ({ACCURACY}): " + "; ".join(worse) + ".") if worse else ""


def kept_text(runs: list[Run]) -> str:
    """What "Keep" keeps: the networks that answer now in place of `runs`, with their accuracy."""
    found = entries()
    kept = []
    for run in runs:
        now = found.get(run.model)
        if now is not None and now.ok:
            which = "your run" if run.model in visitor().adopted() else "the shipped"
            kept.append(f"{which} {now.label} ({_pct(now.test_acc)})")
    return "Keep " + " and ".join(kept) if kept else "Keep the networks that answer now"


@st.cache_data(show_spinner=False)
def overview(key: str) -> dict:
    return architecture.overview(key)


@st.cache_data(show_spinner=False)
def layers(key: str, depth: int | None) -> list[dict]:
    return architecture.layer_table(build(key), depth)


@st.cache_data(show_spinner=False)
def param_counts() -> list[dict]:
    return architecture.param_counts()
