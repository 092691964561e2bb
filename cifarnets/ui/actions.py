"""The buttons that act on a run or a race, shared by the sidebar's run cards, the race's card and Classify:
a waiting one's place in the queue and Leave, Resume, a run's "Use ... in Classify" (with a second step when the
run scores below the network it replaces), and "Back to the shipped network".
What they do is the Visitor's (runs/visitor.py)."""

from __future__ import annotations

import streamlit as st

from ..models import label
from ..runs.engine import EngineError
from ..runs.record import Job, Run
from ..runs.visitor import Refused, Visitor
from . import resources


def queued(visitor: Visitor, job: Job) -> None:
    """A run or race waiting for a worker: its place and estimated start (the card's fragment redraws them every
    few seconds), and the way out of the queue."""
    try:
        st.caption(visitor.wait(job).line())
    except EngineError as e:
        st.caption(str(e))
    if st.button("Leave the queue", key=f"leave-{job.name}", help="it never starts; you can start another"):
        visitor.cancel(job)
        st.rerun(scope="app")


def resume_button(visitor: Visitor, job: Job, text: str, key: str, help: str | None = None) -> None:
    """Continue a stopped or failed run or race: it joins the queue again (in public mode it may be refused: one
    waiting or training run per visitor)."""
    if st.button(text, key=key, help=help):
        try:
            visitor.resume(job)
        except Refused as e:
            st.error(str(e))
        else:
            st.rerun(scope="app")


def back_button(visitor: Visitor, model: str, key: str, text: str = "Back to the shipped network") -> None:
    """Undo an adoption: the network answers from its shipped checkpoint again."""
    if st.button(text, key=key, icon=":material/undo:",
                 help=f"{label(model)} answers from its shipped checkpoint again"):
        visitor.drop(model)
        st.rerun(scope="app")


def adopt_buttons(visitor: Visitor, runs: list[Run], text: str, key: str) -> None:
    """A button that makes `runs` answer in Classify; when any scores below the network it replaces, a second
    step first, which says by how much."""
    asked = st.session_state.get("_confirm") == key
    if not asked and st.button(text, key=key):
        if not resources.worse_than_now(runs):
            return _adopt(visitor, runs)
        st.session_state["_confirm"] = key
        st.rerun(scope="app")
    if asked:
        st.warning(resources.worse_than_now(runs) or "Nothing to compare any more.")
        # One above the other: side by side in the sidebar, each label was cut to "Use my r..." and "Keep the ..."
        if st.button("Use my run anyway" if len(runs) == 1 else "Use my runs anyway", key=f"{key}-yes",
                     type="primary", width="stretch"):
            st.session_state.pop("_confirm", None)
            _adopt(visitor, runs)
        if st.button(resources.kept_text(runs), key=f"{key}-no", help="Classify goes on answering as it does now",
                     width="stretch"):
            st.session_state.pop("_confirm", None)
            st.rerun(scope="app")


def _adopt(visitor: Visitor, runs: list[Run]) -> None:
    try:
        for run in runs:
            visitor.adopt(run)
    except (Refused, ValueError) as e:
        st.error(str(e))
        return
    st.rerun(scope="app")


def answering_notice(found: dict) -> None:
    """On Classify: which networks answer from the user's own runs, with the way back to the shipped ones."""
    note = resources.adopted_note(found)
    if not note:
        return
    st.info(note, icon=":material/person:")
    visitor = resources.visitor()
    mine = list(visitor.adopted())
    for col, key in zip(st.columns(max(len(mine), 2)), mine, strict=False):
        with col:
            back_button(visitor, key, key=f"classify-back-{key}",
                        text="Back to the shipped network" if len(mine) == 1 else f"Back to the shipped {label(key)}")
