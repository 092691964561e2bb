"""The sidebar on every page: start a training run (with the time it will take here), race the four
networks (ui/race_view.py), and watch, cancel, resume or adopt the runs.

Runs are child processes (cifarnets.runs.record.Run), reached through this session's Visitor (runs/visitor.py:
locally every run, in public mode this session's own, within the server's limits); this file only draws
them. The run list is a fragment that polls the run folders every few seconds, so one run's progress never
reruns the page around it, and a page reload sees the same runs.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import streamlit as st

from ..data import sources
from ..models import KEYS, label
from ..paths import DEFAULT_DATA, PublicLimits, data_env
from ..prose import duration, plural
from ..runs.engine import EngineError
from ..runs.expiry import tidy
from ..runs.record import LIVE, QUEUED, Run
from ..runs.request import TrainRequest, device_choices, distillation_problem
from ..runs.visitor import NO_DATA, Refused, Visitor
from ..training import estimate, recipes
from . import actions, race_view, resources
from .charts import live_chart
from .progress import STATE_BADGES, progress_text

SHOWN = 6  # runs listed in the sidebar; the rest are on Training curves
RECIPE_NAMES = {"fast": "fast (ours, a few epochs)", "modern": "modern (ours, long)",
                "report": "report (as the report trained)"}


def render() -> None:
    visitor = replace(resources.visitor(), step_times=_step_times)  # a Start judges the estimate shown, cached
    with st.sidebar:
        if visitor.public:
            _tidy(visitor)
            st.info(public_line(visitor.limits), icon=":material/public:")
        recipe_name, data, device = _trainer(visitor)
        race_view.render(visitor, recipe_name, data, device)
        live = {r.name for r in visitor.list_runs(races=False) if r.state in LIVE}
        st.session_state["_live_runs"] = live
        waiting = any(r.state == QUEUED for r in visitor.list_runs(races=False))
        # Poll fast while something trains (its progress), less while it waits (a place in line moves in minutes,
        # and a class of thirty waiting polls the server together), slowly otherwise (to notice runs other
        # sessions start).
        st.fragment(_runs, run_every=2 if live else 5 if waiting else 10)()


def public_line(limits: PublicLimits) -> str:
    """What public mode allows, in one line."""
    trainers = "one run trains at a time" if limits.trainers == 1 else f"{limits.trainers} runs train at once"
    return (f"Public demo: your runs and your choices here are yours alone (in this browser); every Start joins one "
            f"queue, first come first served ({trainers}), up to "
            f"{limits.epochs} epochs, batches of {limits.min_batch} to {limits.batch_size} and {limits.run_min:g} min "
            f"by the estimate, on CIFAR-10; finished runs are deleted after {limits.run_hours:g} h.")


@st.cache_resource(show_spinner=False)
def _last_tidy() -> dict:
    return {"at": 0.0}


def _tidy(visitor: Visitor) -> None:
    """Delete expired runs at most once a minute, whichever session comes by (starts tidy too, under their lock)."""
    last = _last_tidy()
    if time.time() - last["at"] > 60:
        last["at"] = time.time()
        tidy(visitor.folder, visitor.limits)


# ---------------------------------------------------------------- starting a run

def _trainer(visitor: Visitor) -> tuple[str, str | None, str]:
    """The trainer's controls and Start button; returns the recipe, data and device chosen, which the race uses too."""
    st.header("Train a network")
    key = st.selectbox("Network", KEYS, format_func=label, key="train_model")
    recipe_name = st.selectbox("Recipe", list(recipes.RECIPES),
                               format_func=lambda n: RECIPE_NAMES.get(n, n), key="train_recipe")
    recipe = recipes.get(recipe_name, key)
    with st.expander("About this recipe"):  # folded: the note would fill the sidebar's first screen on every page
        st.caption(recipe.note)
    # Keys carry the network and recipe, so each pair starts from its own recipe's values.
    most_epochs, most_batch = (visitor.limits.epochs, visitor.limits.batch_size) if visitor.public else (1000, 8192)
    least_batch = visitor.limits.min_batch if visitor.public else 1
    left, right = st.columns(2)
    epochs = left.number_input("Epochs", 1, most_epochs, min(recipe.epochs, most_epochs),
                               key=f"epochs-{key}-{recipe_name}")
    batch_size = right.number_input("Batch size", least_batch, most_batch,
                                    min(max(recipe.batch_size, least_batch), most_batch),
                                    key=f"batch-{key}-{recipe_name}")
    lr = st.number_input("Learning rate", 1e-5, 10.0, float(recipe.lr), step=0.001, format="%.4f",
                         key=f"lr-{key}-{recipe_name}")
    data = _public_data(visitor) if visitor.public else _data_source()
    device = st.selectbox("Device", device_choices(), key="train_device",
                          help="auto: the GPU when there is one (CUDA, then Apple MPS), else the CPU")
    seconds = _expected_time(key, recipe_name, int(epochs), int(batch_size), device, data)
    request = TrainRequest.of(key, recipe_name, epochs=epochs, lr=lr, batch_size=batch_size, data=data,
                              device=device)
    # said before Start, not only after it
    refused = (_data_problem(visitor, data) or distillation_problem(request)
               or (visitor.over_time(seconds) if seconds is not None else ""))
    if refused:
        st.warning(refused)
    mine = visitor.one_at_a_time()
    if mine:
        st.caption(mine)
    else:
        queue_line(visitor, device)
    if st.button("Start training", type="primary", key="train_start", width="stretch",
                 disabled=bool(refused or mine)):
        try:
            if _offline(visitor, data):
                raise Refused(OFFLINE)
            run = visitor.start(request, seconds)
        except Refused as e:
            st.error(str(e))
        else:
            st.session_state["_run_started"] = f"{label(key)} joined the queue: {run.name}"
            st.rerun()  # the whole sidebar again, from the queue's side: Start off, the run's card and its place
    started = st.session_state.pop("_run_started", None)
    if started:
        st.toast(started)
    return recipe_name, data, device


def queue_line(visitor: Visitor, device: str) -> None:
    """What a Start now would meet: nothing when a worker is free, else the runs ahead and when it would start."""
    try:
        line = visitor.wait(device=device).line(queued=False)
    except EngineError as e:
        line = str(e)
    if line:
        st.caption(line)


# Timing runs a few training steps in this process: in a thread of its own, so that no page waits for it (it was
# 2 s of Home's first load), once per choice, shared by every session, and again after a while, since what else
# the machine is doing (another run, say) changes the answer.
TIMING_TTL_S = 600
TIMING_NOTE = "Expected time here: timing a few training steps..."


@st.cache_resource(show_spinner=False)
def _timings() -> dict:
    """{(network, recipe, batch, device): (when it was asked for, the timing's Future)}, server-wide."""
    return {}


@st.cache_resource(show_spinner=False)
def _timer() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="step-timing")  # one at a time: each uses the cores it finds


def _timing(key: str, recipe_name: str, batch_size: int | None, device: str) -> Future:
    timings, choice = _timings(), (key, recipe_name, batch_size, device)
    asked, future = timings.get(choice, (0.0, None))
    if future is None or future.done() and time.time() - asked > TIMING_TTL_S:
        future = _timer().submit(estimate.timed, key, recipe_name, batch_size, device)
        timings[choice] = (time.time(), future)
        for old in sorted(timings, key=lambda c: timings[c][0])[:-64]:
            timings.pop(old)
    return future


def _step_times(key: str, recipe_name: str, batch_size: int | None, device: str) -> estimate.StepTimes:
    """The timing, waited for: what a Start judges (Visitor.step_times), the same one the sidebar shows."""
    return _timing(key, recipe_name, batch_size, device).result()


def _when_timed(key: str, recipe_name: str, batch_size: int | None, device: str) -> None:
    """Polled in a fragment (nothing else reruns): asks for the timing, and redraws the page once it is done. A
    choice nobody has timed yet is asked for from the session's second call on, after its page has been drawn:
    the first timing in a server imports torch._dynamo (1.2 s of Python holding the GIL) and runs training steps,
    and beside the first visitor's page it took the GIL from it (a py-spy profile: docs/performance.md)."""
    polls = st.session_state["_timing_polls"] = st.session_state.get("_timing_polls", 0) + 1
    if _timings().get((key, recipe_name, batch_size, device)) or polls > 1:
        if _timing(key, recipe_name, batch_size, device).done():
            st.rerun(scope="app")
    st.caption(TIMING_NOTE)


@st.cache_data(ttl=60, max_entries=16, show_spinner=False)
def _data_size(data: str | None) -> estimate.DataSize:
    return estimate.data_size(data)


def _expected_time(key: str, recipe_name: str, epochs: int, batch_size: int, device: str,
                   data: str | None) -> float | None:
    """Says how long the run would take here; returns that in seconds, or None where there is no estimate (yet)."""
    asked = _timings().get((key, recipe_name, batch_size, device))
    future = _timing(key, recipe_name, batch_size, device) if asked else None
    if future is None or not future.done():
        st.fragment(_when_timed, run_every=1.0)(key, recipe_name, batch_size, device)
        return None
    try:
        times = future.result()
    except (estimate.EstimateError, ValueError, RuntimeError) as e:
        st.caption(f"No time estimate: {str(e).splitlines()[0][:200]}")
        return None
    size = _data_size(data)
    est = estimate.total(times, epochs, size)
    if est.steps_per_epoch == 0:
        st.caption(f":orange[The data holds {size.train:,} training images, fewer than one batch of {batch_size}: "
                   "lower the batch size.]")
        return None
    scaled = f", timed at batch {times.timed_batch} and scaled" if times.timed_batch != times.batch_size else ""
    expected = f"about {duration(est.seconds)}" if est.seconds >= 1 else "under a second"
    st.caption(f"Expected time here: **{expected}**, {epochs} epoch{'s' if epochs != 1 else ''} × "
               f"({est.steps_per_epoch:,} steps × {_short(times.step_s)} + a {_short(est.eval_s_per_epoch)} test "
               f"pass) + {_short(est.last_views_s)} for the last test pass's other views. Estimated from "
               f"{times.steps_timed} timed steps{scaled} on {times.machine}, for {size.note}; "
               "loading the data comes on top.",
               help="Measured with the trainer's own step on random images of CIFAR's size. Other work on the "
                    "machine (another run, say) slows training and the estimate alike.")
    return est.seconds


CIFAR10_DOWNLOAD = "about 170 MB"  # torchvision's cifar-10-python.tar.gz


def _data_source() -> str | None:
    """The data set $CIFARNETS_DATA names, when it is set (someone chose it); else CIFAR-10 itself (from ./data
    when it is there, else the download); a path on this machine last."""
    env = data_env()
    here = (Path(DEFAULT_DATA) / "cifar-10-batches-py").is_dir()
    options = (["env"] if env else []) + ["download", "path"]
    names = {"download": "CIFAR-10, already in ./data" if here else
             f"CIFAR-10, downloaded into ./data ({CIFAR10_DOWNLOAD}, once; needs internet)",
             "env": f"$CIFARNETS_DATA ({env})", "path": "a path on this machine"}
    choice = st.radio("Data", options, format_func=names.get, key="train_data")
    if choice == "env":
        return env
    if choice == "download":
        return DEFAULT_DATA
    return st.text_input("Data path", key="train_data_path",
                         placeholder="an image-folder tree, or a .tar/.tar.gz/.zip of one",
                         help="train/<class>/* and test/<class>/*, e.g. the CIFAR-10 JPEG archive").strip()


def _public_data(visitor: Visitor) -> str:
    """In public mode the data is the operator's ($CIFARNETS_DATA, else CIFAR-10 in ./data): no choice, no path
    box, and never a download on a visitor's Start (docs/deploy.md: the operator provides it)."""
    data = data_env() or DEFAULT_DATA
    if _has_data(visitor):
        st.caption(f"Data: the training set this server provides ({Path(data).name}).")
    return data


OFFLINE = ("CIFAR-10 is not on this machine yet, and its download server cannot be reached from here: choose a "
           "path on this machine, or connect to the internet.")


def _data_problem(visitor: Visitor, data: str | None) -> str:
    """Why no run can start with this data, in one line for the page; "" when one can."""
    if visitor.public:
        return "" if _has_data(visitor) else NO_DATA
    return ""


def _offline(visitor: Visitor, data: str | None) -> bool:
    """At Start (not on every page drawn: it is a connection): whether the run would need CIFAR-10's download and
    cannot reach it."""
    return not visitor.public and data == DEFAULT_DATA and not _data_here(DEFAULT_DATA) and not sources.can_download()


def _has_data(visitor: Visitor) -> bool:
    return _data_here(data_env() or DEFAULT_DATA) if visitor.public else True


@st.cache_data(ttl=60, show_spinner=False)
def _data_here(data: str) -> bool:  # keyed by the data set: the operator may add it while the app runs
    return sources.present(data)


def _short(seconds: float) -> str:
    """A step's or a test pass's time: milliseconds to minutes."""
    if seconds >= 60:
        return duration(seconds)
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms" if seconds >= 0.001 else "under 1 ms"


# ---------------------------------------------------------------- watching runs

def _runs() -> None:
    visitor = resources.visitor()
    runs = visitor.list_runs(races=False)  # a race's networks are on the race's chart
    live = {r.name for r in runs if r.state in LIVE}
    if live != st.session_state.get("_live_runs", live):
        # A run started or ended since the page was drawn: redraw all of it (curves, pickers, polling rate).
        st.rerun(scope="app")
    st.header("Runs")
    if not runs:
        st.caption("No runs yet. A run you start appears here, with its progress.")
        return
    for run in runs[:SHOWN]:
        _run_card(visitor, run)
    if len(runs) > SHOWN:
        st.caption(f"{len(runs) - SHOWN} older run(s) are on the Training curves page.")


def _run_card(visitor: Visitor, run: Run) -> None:
    state = run.state
    text, color = STATE_BADGES[state]
    with st.container(border=True):
        st.markdown(f"**{run.label}** · {run.recipe} :{color}-badge[{text}]")
        st.caption(f"`{run.name}`")
        if state == QUEUED:
            actions.queued(visitor, run)
        elif state in LIVE:
            st.progress(run.progress(), text=progress_text(run) if state != "starting" else "loading the data...")
            _live_curve(run)
            if st.button("Cancel", key=f"cancel-{run.name}", help="stop after this step, keeping a resumable state"):
                visitor.cancel(run)
                st.toast(f"Stopping {run.name}: it saves its state first")
        elif state == "stopped":
            s = run.status
            where = f"after epoch {s.epoch}, step {s.step}" if s.written else "before it began"
            why = f": {run.stopped_why}," if run.stopped_why else ""
            st.caption(f"Stopped{why} {where}" + ("; it can continue where it stopped." if run.resumable else "."))
            actions.resume_button(visitor, run, "Resume" if run.resumable else "Start again", f"resume-{run.name}")
        elif state == "failed":
            st.error(run.error)
            actions.resume_button(visitor, run, "Resume" if run.resumable else "Start again", f"resume-{run.name}")
        else:
            _finished(visitor, run)


def _finished(visitor: Visitor, run: Run) -> None:
    history = run.history()
    if history:
        # The checkpoint's own figure, the one Classify and the buttons below quote: the history's last row is
        # of each test image alone (the curves'), a point or two lower, and a second figure for one run misleads.
        st.caption(f"{resources.accuracy_text(run.test_acc)} after {plural(len(history), 'epoch')}.")
    if visitor.adopted().get(run.model) == run.folder:
        st.caption(f"{run.label} classifies with this run.")
        actions.back_button(visitor, run.model, key=f"back-{run.name}")
    elif run.has_checkpoint:
        actions.adopt_buttons(visitor, [run], f"Use for {run.label} in Classify", key=f"use-{run.name}")


def _live_curve(run: Run) -> None:
    """Per-epoch train and test loss from history.json, and the running loss of the epoch in progress,
    which this session collects from status.json as it polls."""
    s = run.status
    trace = st.session_state.setdefault("_traces", {}).setdefault(run.name, [])
    if s.state == "running" and s.step and s.steps and s.loss is not None:
        x = s.epoch - 1 + s.step / s.steps
        if not trace or trace[-1]["epoch"] != x:
            trace.append({"epoch": x, "value": s.loss, "series": "train loss (running)"})
    points = list(trace)
    for row in run.history():
        points += [{"epoch": row["epoch"], "value": row[k], "series": name}
                   for k, name in (("train_loss", "train loss"), ("test_loss", "test loss")) if k in row]
    if len(points) >= 2:
        st.altair_chart(live_chart(points), width="content")
        st.caption("Loss: :red[this epoch so far] · :gray[train] and :blue[test] per epoch")
