"""The sidebar's race: start the four networks training one after another, and watch their test accuracy
and loss on one chart as each epoch ends.

The race is a child process (cifarnets.runs.race), started and stopped through this session's Visitor
(locally every race, in public mode the session's own); this file only draws its folder. The chart is a
fragment that polls the race's run folders.
"""

from __future__ import annotations

import altair as alt
import streamlit as st

from ..models import label
from ..runs.race import ORDER, Race, RaceRequest
from ..runs.record import LIVE, QUEUED, Run
from ..runs.visitor import Refused, Visitor
from ..store.curves import Curve, long_rows
from ..training import recipes
from . import actions, resources
from .charts import network_colors
from .progress import STATE_BADGES, progress_text


def render(visitor: Visitor, recipe_name: str, data: str | None, device: str) -> None:
    """The race's controls (with the recipe, data and device chosen above them) and the latest race."""
    st.header("Race the four")
    st.caption(f"All four networks, one after another, with the **{recipe_name}** recipe and the data and device "
               "above: their test accuracy and loss on one chart as each epoch ends.")
    shared = recipes.get(recipe_name, ORDER[1])  # the ResNet's values: the recipe's usual ones
    left, right = st.columns(2)
    most_epochs, most_batch = (visitor.limits.epochs, visitor.limits.batch_size) if visitor.public else (1000, 8192)
    epochs = left.number_input("Epochs (each)", 1, most_epochs, min(shared.epochs, most_epochs),
                               key=f"race-epochs-{recipe_name}")
    least_batch = visitor.limits.min_batch if visitor.public else 1
    batch_size = right.number_input("Batch size", least_batch, most_batch, value=None, key=f"race-batch-{recipe_name}",
                                    placeholder="recipe's", help="empty: each network's own in the recipe")
    races = visitor.list_races()
    live = bool(races) and races[0].state in (QUEUED, *LIVE)
    mine = visitor.one_at_a_time()  # public mode: a run of this visitor's waits or trains (the line is above)
    why_off = "one race at a time: it shares the machine's cores with everything else" if live else mine
    if st.button("Start the race", key="race_start", width="stretch", disabled=bool(why_off), help=why_off or None):
        request = RaceRequest.of(recipe_name, epochs=epochs, batch_size=batch_size, data=data, device=device)
        try:
            race = visitor.start(request)
        except Refused as e:
            st.error(str(e))
        else:
            st.session_state["_race_started"] = race.name
            st.rerun()  # draw the page again with the race going: the button off, the race's card below
    started = st.session_state.pop("_race_started", None)
    if started:
        st.toast(f"The race joined the queue: {started}")
    st.session_state["_race_live"] = live
    st.fragment(_latest, run_every=3 if live else 10)()


def _latest() -> None:
    races = resources.visitor().list_races()
    live = bool(races) and races[0].state in (QUEUED, *LIVE)
    if live != st.session_state.get("_race_live", live):
        st.rerun(scope="app")  # a race began or ended (here or in another session): redraw the button too
    if not races:
        return
    race_card(races[0])
    if len(races) > 1:
        st.caption(f"{len(races) - 1} earlier race(s): their networks are on the Training curves page.")


def race_card(race: Race) -> None:
    state = race.state
    text, color = STATE_BADGES[state]
    members = race.members()
    with st.container(border=True):
        st.markdown(f"**{race.request.recipe} race** :{color}-badge[{text}]")
        st.caption(f"`{race.name}`")
        if state == QUEUED:
            actions.queued(resources.visitor(), race)
        elif state in LIVE:
            st.progress(race.progress(), text=_where(race, members))
        chart = race_chart(race_rows(members), race.request.epochs)
        if chart is not None:
            st.altair_chart(chart, width="stretch")
        st.caption("  \n".join(standings(race, members)))
        if state == "failed":
            st.error(race.error)
        elif race.stopped_why:
            st.caption(f"Stopped: {race.stopped_why}.")
        if state != QUEUED:
            _buttons(race, state, members)


def _where(race: Race, members: dict[str, Run]) -> str:
    """Which network the race is on, and how far into it."""
    current = next((run for run in members.values() if run.state in LIVE), None)
    if current is None:
        return "loading the data..."
    n = race.order.index(current.model) + 1 if current.model in race.order else "?"
    doing = progress_text(current) if current.state != "starting" else "loading..."
    return f"{current.label} ({n}/{len(race.order)}): {doing}"


def standings(race: Race, members: dict[str, Run]) -> list[str]:
    """One line per network: its last test accuracy, or where it is."""
    lines = []
    for key in race.order:
        run = members.get(key)
        history = run.history() if run else []
        if run is None:
            lines.append(f"{label(key)}: waiting")
        elif run.state == "failed":
            lines.append(f"{label(key)}: failed")
        elif run.state == "finished" and run.test_acc is not None:
            # the checkpoint's own figure, as the run's card and Classify quote it (ten views); the curve's last
            # point is each test image alone, a point or two lower, and one network must not have two figures
            lines.append(f"{label(key)}: **{run.test_acc:.1%}**")
        elif history:
            lines.append(f"{label(key)}: **{history[-1]['test_acc']:.1%}** after {len(history)}/"
                         f"{'?' if run.status.epochs is None else run.status.epochs} epochs")
        else:
            lines.append(f"{label(key)}: {run.state}")
    return lines


def _buttons(race: Race, state: str, members: dict[str, Run]) -> None:
    visitor = resources.visitor()
    if state in LIVE:
        if st.button("Cancel the race", key=f"race-cancel-{race.name}",
                     help="stop the network in training after this step, keeping a resumable state"):
            visitor.cancel(race)
            st.toast(f"Stopping {race.name}: the network in training saves its state first")
        return
    finished = [run for run in members.values() if run.state == "finished" and run.has_checkpoint]
    if state in ("stopped", "failed"):
        actions.resume_button(visitor, race, "Resume the race", f"race-resume-{race.name}",
                              help="finished networks stay; the stopped one continues")
    adopted = visitor.adopted()
    if finished and any(adopted.get(run.model) != run.folder for run in finished):
        actions.adopt_buttons(visitor, finished, f"Use {'these' if len(finished) > 1 else 'it'} in Classify",
                               key=f"race-use-{race.name}")


def race_rows(members: dict[str, Run]) -> list[dict]:
    """The test split's accuracy and loss per epoch of each network: the rows the chart draws."""
    return [r for r in long_rows([Curve(key, "race", run.history()) for key, run in members.items()])
            if r["split"] == "test"]


def race_chart(rows: list[dict], epochs: int | None) -> alt.VConcatChart | None:
    """Test accuracy above test loss, per epoch: one line per network in the networks' own colours.

    Drawn at the container's width (Streamlit fits a stacked chart's width and keeps its heights), so it
    fills the sidebar however wide the user drags it; the legend lists only the networks on the chart.
    """
    if not rows:
        return None
    present = sorted({r["network"] for r in rows})
    last = max([r["epoch"] for r in rows] + [epochs or 1])
    x = alt.X("epoch:Q", scale=alt.Scale(domain=[1, max(last, 2)], nice=False),
              axis=alt.Axis(tickMinStep=1, format="d"))
    color = network_colors(present, title=None,
                           legend=alt.Legend(orient="bottom", columns=2, symbolType="stroke", symbolSize=60,
                                             labelFontSize=11, columnPadding=8))
    panels = []
    for metric, fmt in (("accuracy", ".0%"), ("loss", ".2f")):
        panels.append(alt.Chart(alt.Data(values=[r for r in rows if r["metric"] == metric]), title=f"test {metric}")
                      .mark_line(point=alt.OverlayMarkDef(size=20))
                      .encode(x=x.title("epoch" if metric == "loss" else None),
                              y=alt.Y("value:Q", title=None, axis=alt.Axis(format=fmt, tickCount=4),
                                      scale=alt.Scale(zero=False)),
                              color=color,
                              tooltip=[alt.Tooltip("network:N"), alt.Tooltip("epoch:Q"),
                                       alt.Tooltip("value:Q", title=f"test {metric}", format=".4f")])
                      .properties(height=110))
    return alt.vconcat(*panels, spacing=6).configure_title(fontSize=12, anchor="start")
