"""The Training curves page's pieces: the choices (kept in the URL), what is missing, a summary per curve,
downloads, the runs, and which checkpoint each network classifies with."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import streamlit as st

from ..models import KEYS, label
from ..paths import checkpoints_dir
from ..runs.record import Run
from ..store import curves
from ..store.checkpoints import CheckpointError, checkpoint_files
from ..store.export import checkpoint_zip, rows_csv
from . import resources, share

SHIPPED = "shipped checkpoint"
LAYOUTS = ["overlaid", "side by side"]
SPLITS = ["train", "test"]
URL_KEYS = ["curves_layout", "curves_splits", "curves_runs"]  # what a shared link of this page holds


def controls(with_history: list[Run]) -> tuple[str, list[str], list[Run]]:
    """(layout, splits shown, runs picked): each bound to the URL, so a link restores the view."""
    share.check_unknown(URL_KEYS)
    share.check("curves_layout", LAYOUTS, "the layout")
    share.check("curves_splits", SPLITS, "the split", multi=True)
    share.check("curves_runs", with_history, "the run", format_func=lambda r: r.name, multi=True)
    cols = st.columns([1, 1, 3])
    arrangement = cols[0].segmented_control("Layout", LAYOUTS, default="overlaid", key="curves_layout",
                                            required=True, bind="query-params")
    splits = cols[1].pills("Show", SPLITS, selection_mode="multi", default=SPLITS, key="curves_splits",
                           bind="query-params")
    finished = [r for r in with_history if r.state == "finished"]
    picked = cols[2].multiselect("Your runs", with_history, default=finished[:3], format_func=lambda r: r.name,
                                 key="curves_runs", placeholder="none yet: train one from the sidebar",
                                 bind="query-params")
    return arrangement, splits or [], picked


@st.cache_data(max_entries=4, show_spinner="Packing the checkpoint...")
def _zip(folder: str, stamp: tuple) -> bytes:
    return checkpoint_zip(folder)  # `stamp` (sizes and times of its files) only keys the cache


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")  # "shipped (fast recipe)" -> shipped-fast-recipe


def downloads(chosen: list[curves.Curve], runs: list[Run]) -> None:
    """A history as CSV; a finished run's checkpoint as a zip of exactly its checkpoint files."""
    left, right = st.columns(2)
    with left:
        curve = st.selectbox("History", chosen, format_func=lambda c: f"{label(c.key)}, {c.source}",
                             key="curves_csv_pick", disabled=not chosen)
        if curve is not None:
            st.download_button("Download this history (CSV)", rows_csv(curve.rows), mime="text/csv",
                               file_name=f"{curve.key}-{_slug(curve.source)}-history.csv", on_click="ignore",
                               key="curves_csv")
    with right:
        done = [r for r in runs if r.state == "finished" and r.has_checkpoint]
        run = st.selectbox("Finished run", done, format_func=lambda r: r.name, key="curves_zip_pick",
                           disabled=not done, placeholder="none yet: train one from the sidebar")
        if run is None:
            return
        try:
            files = checkpoint_files(run.folder)
        except CheckpointError as e:
            st.caption(str(e))
            return
        stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime) for p in files)
        st.download_button("Download its checkpoint (zip)", _zip(str(run.folder), stamp), mime="application/zip",
                           file_name=f"{run.name}.zip", on_click="ignore", key="curves_zip",
                           help="the checkpoint files only: " + ", ".join(p.name for p in files))
        st.caption(f"Unzipped, `{Path(run.folder).name}/` loads as a checkpoint folder (or `push` it to the Hub).")


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
                     resources.ACCURACY: c.answered,
                     "curve's best (each image alone)": top["test_acc"] if top else None,
                     "at epoch": top["epoch"] if top else None,
                     "curve's last (each image alone)": last.get("test_acc")})
    pct = st.column_config.NumberColumn(format="percent")
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        resources.ACCURACY: pct, "curve's best (each image alone)": pct, "curve's last (each image alone)": pct})


def runs_table(runs: list[Run]) -> None:
    if not runs:
        st.caption("No runs yet: start one from the sidebar. Finished runs appear here and in the charts above.")
        return
    rows = []
    for r in runs:
        history = r.history()
        rows.append({"run": r.name, "network": r.label, "recipe": r.recipe, "state": r.state,
                     "epochs": f"{len(history)}/{'?' if r.status.epochs is None else r.status.epochs}",
                     # the checkpoint's figure, as the sidebar's card and Classify quote it (not the curve's)
                     resources.ACCURACY: r.test_acc if r.has_checkpoint else None,
                     "started": dt.datetime.fromtimestamp(r.started).strftime("%Y-%m-%d %H:%M"),
                     "error": r.error})
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={resources.ACCURACY: st.column_config.NumberColumn(format="percent")})


def _choose(key: str, picker: str, runs_by_name: dict[str, Run]) -> None:
    choice = st.session_state[picker]
    visitor = resources.visitor()
    if choice == SHIPPED:
        visitor.drop(key)
    else:
        visitor.adopt(runs_by_name[choice])


def active_pickers(runs: list[Run]) -> None:
    """One picker per network: its shipped checkpoint or one of its finished runs. Locally saved in the runs
    folder, so every reload uses the same choice; in public mode this session's own."""
    current = resources.visitor().adopted()
    cols = st.columns(len(KEYS))
    for col, key in zip(cols, KEYS, strict=True):
        usable = {r.name: r for r in runs if r.model == key and r.has_checkpoint and not r.alive}
        now = current[key].name if key in current else SHIPPED
        options = [SHIPPED] + list(usable)
        if now not in options:
            options.append(now)
        # The key names the current choice: when the choice changes elsewhere, this picker follows.
        picker = f"active-{key}-{now}"
        col.selectbox(label(key), options, index=options.index(now), key=picker,
                      on_change=_choose, args=(key, picker, usable),
                      disabled=len(options) == 1, help="what Classify uses for this network")
