"""The Training curves page's pieces: what is missing, a summary per curve, the runs, and which
checkpoint each network classifies with."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from .. import curves, jobs
from ..models import KEYS, label
from ..paths import checkpoints_dir

SHIPPED = "shipped checkpoint"


def missing_shipped(shipped: list[curves.Curve]) -> None:
    have = {c.key for c in shipped}
    for key in KEYS:
        if key not in have:
            st.info(f"**{label(key)}** has no shipped training history: no checkpoint with a history.json in "
                    f"`{checkpoints_dir() / key}`. Its curves appear here once it is trained.")


def curve_summary(chosen: list[curves.Curve]) -> None:
    rows = []
    for c in chosen:
        top = curves.best(c.rows)
        last = c.rows[-1] if c.rows else {}
        rows.append({"network": label(c.key), "source": c.source, "epochs": len(c.rows),
                     "best test accuracy": top["test_acc"] if top else None,
                     "at epoch": top["epoch"] if top else None, "final test accuracy": last.get("test_acc")})
    pct = st.column_config.NumberColumn(format="percent")
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"best test accuracy": pct, "final test accuracy": pct})


def runs_table(runs: list[jobs.Run]) -> None:
    if not runs:
        st.caption("No runs yet: start one from the sidebar. Finished runs appear here and in the charts above.")
        return
    rows = []
    for r in runs:
        history = r.history()
        rows.append({"run": r.name, "network": r.label, "recipe": r.recipe, "state": r.state,
                     "epochs": f"{len(history)}/{r.status.get('epochs', '?')}",
                     "test accuracy": history[-1].get("test_acc") if history else None,
                     "started": dt.datetime.fromtimestamp(r.started).strftime("%Y-%m-%d %H:%M"),
                     "error": r.error})
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"test accuracy": st.column_config.NumberColumn(format="percent")})


def _choose(key: str, picker: str, runs_by_name: dict[str, jobs.Run]) -> None:
    choice = st.session_state[picker]
    if choice == SHIPPED:
        jobs.clear_active(key)
    else:
        jobs.set_active(runs_by_name[choice])


def active_pickers(runs: list[jobs.Run]) -> None:
    """One picker per network: its shipped checkpoint or one of its finished runs. Saved in the runs
    folder, so every session and every reload uses the same choice."""
    current = jobs.active()
    cols = st.columns(len(KEYS))
    for col, key in zip(cols, KEYS, strict=True):
        usable = {r.name: r for r in runs if r.model == key and r.has_checkpoint and not r.alive}
        now = current[key].name if key in current else SHIPPED
        options = [SHIPPED] + list(usable)
        if now not in options:
            options.append(now)
        # The key names the current choice: when another session changes it, this picker follows.
        picker = f"active-{key}-{now}"
        col.selectbox(label(key), options, index=options.index(now), key=picker,
                      on_change=_choose, args=(key, picker, usable),
                      disabled=len(options) == 1, help="what Classify uses for this network")
