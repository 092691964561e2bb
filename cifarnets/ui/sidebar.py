"""The sidebar on every page: start a training run, and watch, cancel, resume or adopt the runs.

Runs are child processes (cifarnets.jobs); this file only draws them. The run list is a fragment
that polls the run folders every few seconds, so one run's progress never reruns the page around
it, and a page reload or another browser session sees the same runs.
"""

from __future__ import annotations

import streamlit as st

from .. import jobs, recipes
from ..models import KEYS, label
from ..paths import DEFAULT_DATA, data_env
from .charts import live_chart

LIVE = ("starting", "running")
SHOWN = 6  # runs listed in the sidebar; the rest are on Training curves
RECIPE_NAMES = {"fast": "fast (ours, a few epochs)", "modern": "modern (ours, long)",
                "report": "report (as the report trained)"}
STATE_BADGES = {"starting": ("starting", "blue"), "running": ("running", "blue"), "stopped": ("stopped", "orange"),
                "finished": ("finished", "green"), "failed": ("failed", "red")}


def render() -> None:
    with st.sidebar:
        _trainer()
        live = {r.name for r in jobs.list_runs() if r.state in LIVE}
        st.session_state["_live_runs"] = live
        # Poll fast while something trains, slowly otherwise (to notice runs other sessions start).
        st.fragment(_runs, run_every=2 if live else 10)()


# ---------------------------------------------------------------- starting a run

def _trainer() -> None:
    st.header("Train a network")
    key = st.selectbox("Network", KEYS, format_func=label, key="train_model")
    recipe_name = st.selectbox("Recipe", list(recipes.RECIPES),
                               format_func=lambda n: RECIPE_NAMES.get(n, n), key="train_recipe")
    recipe = recipes.get(recipe_name, key)
    st.caption(recipe.note)
    # Keys carry the network and recipe, so each pair starts from its own recipe's values.
    left, right = st.columns(2)
    epochs = left.number_input("Epochs", 1, 1000, recipe.epochs, key=f"epochs-{key}-{recipe_name}")
    batch_size = right.number_input("Batch size", 1, 8192, recipe.batch_size, key=f"batch-{key}-{recipe_name}")
    lr = st.number_input("Learning rate", 1e-5, 10.0, float(recipe.lr), step=0.001, format="%.4f",
                         key=f"lr-{key}-{recipe_name}")
    data = _data_source()
    device = st.selectbox("Device", jobs.device_choices(), key="train_device",
                          help="auto: the GPU when there is one (CUDA, then Apple MPS), else the CPU")
    if st.button("Start training", type="primary", key="train_start", width="stretch"):
        request = jobs.TrainRequest(key, recipe_name, int(epochs), float(lr), int(batch_size), data, device)
        problem = jobs.check(request)
        if problem:
            st.error(problem)
        else:
            run = jobs.start(request)
            st.toast(f"Started training {label(key)}: {run.name}")


def _data_source() -> str | None:
    env = data_env()
    options = (["env"] if env else []) + ["path", "download"]
    names = {"env": f"$CIFARNETS_DATA ({env})", "path": "a path on this machine",
             "download": "download CIFAR-10 (torchvision; needs internet)"}
    choice = st.radio("Data", options, format_func=names.get, key="train_data")
    if choice == "env":
        return env
    if choice == "download":
        return DEFAULT_DATA
    return st.text_input("Data path", key="train_data_path",
                         placeholder="an image-folder tree, or a .tar/.tar.gz/.zip of one",
                         help="train/<class>/* and test/<class>/*, e.g. the CIFAR-10 JPEG archive").strip()


# ---------------------------------------------------------------- watching runs

def _runs() -> None:
    runs = jobs.list_runs()
    live = {r.name for r in runs if r.state in LIVE}
    if live != st.session_state.get("_live_runs", live):
        # A run started or ended since the page was drawn: redraw all of it (curves, pickers, polling rate).
        st.rerun(scope="app")
    st.header("Runs")
    if not runs:
        st.caption("No runs yet. A run you start appears here, with its progress.")
        return
    for run in runs[:SHOWN]:
        _run_card(run)
    if len(runs) > SHOWN:
        st.caption(f"{len(runs) - SHOWN} older run(s) are on the Training curves page.")


def _run_card(run: jobs.Run) -> None:
    state = run.state
    text, color = STATE_BADGES[state]
    with st.container(border=True):
        st.markdown(f"**{run.label}** · {run.recipe} :{color}-badge[{text}]")
        st.caption(f"`{run.name}`")
        if state in LIVE:
            st.progress(run.progress(), text=progress_text(run) if state == "running" else "loading the data...")
            _live_curve(run)
            if st.button("Cancel", key=f"cancel-{run.name}", help="stop after this step, keeping a resumable state"):
                jobs.cancel(run)
                st.toast(f"Stopping {run.name}: it saves its state first")
        elif state == "stopped":
            s = run.status
            where = f"after epoch {s.get('epoch', 0)}, step {s.get('step', 0)}" if s else "before it began"
            st.caption(f"Stopped {where}" + ("; it can continue where it stopped." if run.resumable else "."))
            _resume_button(run)
        elif state == "failed":
            st.error(run.error)
            _resume_button(run)
        else:
            _finished(run)


def _resume_button(run: jobs.Run) -> None:
    if st.button("Resume" if run.resumable else "Start again", key=f"resume-{run.name}"):
        jobs.resume(run)
        st.rerun(scope="app")


def _finished(run: jobs.Run) -> None:
    history = run.history()
    if history:
        st.caption(f"Test accuracy {history[-1].get('test_acc', 0):.1%} after {len(history)} epoch(s).")
    if jobs.active().get(run.model) == run.folder:
        st.caption(f"{run.label} classifies with this run.")
    elif run.has_checkpoint and st.button(f"Use for {run.label} in Classify", key=f"use-{run.name}"):
        jobs.set_active(run)
        st.rerun(scope="app")


def progress_text(run: jobs.Run) -> str:
    s = run.status
    # Between epochs the trainer reports step 0 with `epoch` counting the epochs done.
    parts = ([f"epoch {s.get('epoch', 0)}/{s.get('epochs', '?')}", f"batch {s['step']}/{s.get('steps', '?')}"]
             if s.get("step") else [f"{s.get('epoch', 0)}/{s.get('epochs', '?')} epochs done"])
    if isinstance(s.get("loss"), (int, float)):
        parts.append(f"loss {s['loss']:.3f}")
    if isinstance(s.get("eta_s"), (int, float)):
        parts.append(f"ETA {duration(s['eta_s'])}")
    return " · ".join(parts)


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def _live_curve(run: jobs.Run) -> None:
    """Per-epoch train and test loss from history.json, and the running loss of the epoch in progress,
    which this session collects from status.json as it polls."""
    s = run.status
    trace = st.session_state.setdefault("_traces", {}).setdefault(run.name, [])
    if s.get("state") == "running" and s.get("step") and s.get("steps") and isinstance(s.get("loss"), (int, float)):
        x = s["epoch"] - 1 + s["step"] / s["steps"]
        if not trace or trace[-1]["epoch"] != x:
            trace.append({"epoch": x, "value": s["loss"], "series": "train loss (running)"})
    points = list(trace)
    for row in run.history():
        points += [{"epoch": row["epoch"], "value": row[k], "series": name}
                   for k, name in (("train_loss", "train loss"), ("test_loss", "test loss")) if k in row]
    if len(points) >= 2:
        st.altair_chart(live_chart(points), width="content")
        st.caption("Loss: :red[this epoch so far] · :gray[train] and :blue[test] per epoch")
