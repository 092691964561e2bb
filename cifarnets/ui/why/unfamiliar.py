"""Unfamiliar inputs: how well each network tells CIFAR-10 from things it was never trained on (AUROC)."""

from __future__ import annotations

import json
import textwrap

import altair as alt
import streamlit as st

from ...answering import VIEWS
from ...store.checkpoints import Entry
from ...unfamiliar import calibration, calibration_sentences
from ...unfamiliar.inputs import COUNTS
from ...unfamiliar.scores import METHODS
from ..charts import ORDER, network_colors
from .why_charts import legend_below


def records(entries: dict[str, Entry]) -> tuple[dict[str, dict], dict[str, str]]:
    """({label: stored calibration record} of the networks with a current one, {label: why not} of the others)."""
    found, missing = {}, {}
    for entry in entries.values():
        if not entry.ok:
            continue
        c = calibration.load(entry, VIEWS)
        if isinstance(c, str):
            missing[entry.label] = c
        else:
            found[entry.label] = c.record
    return found, missing


def auroc_rows(found: dict[str, dict]) -> list[dict]:
    return [{"network": name, "method": METHODS[m], "auroc": r["auroc"][m], "chosen": m == r["method"]}
            for name, r in found.items() for m in METHODS if m in r["auroc"]]


def photo_auroc_rows(found: dict[str, dict]) -> list[dict]:
    """auroc_rows for photos of other things against photos of the ten classes, where calibrate measured them."""
    return [{"network": name, "method": METHODS[m], "auroc": r["photos"]["auroc"][m]["auroc"],
             "chosen": m == r["method"]} for name, r in found.items()
            if "auroc" in r.get("photos", {}) for m in METHODS if m in r["photos"]["auroc"]]


def flagged_rows(found: dict[str, dict]) -> list[dict]:
    return [{"network": name, "kind": kind, "flagged": share} for name, r in found.items()
            for kind, share in r["flagged"].items()]


def auroc_chart(rows: list[dict], against: str = "every test image") -> alt.LayerChart:
    """AUROC per method (rows) and network (bars within a row), with the coin toss marked. The methods' names
    wrap onto lines, so that on a phone they leave the bars room."""
    present = [n for n in ORDER if any(r["network"] == n for r in rows)]
    bars = alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        y=alt.Y("method:N", sort=list(METHODS.values()), title=None,
                axis=alt.Axis(labelExpr=wrapped(METHODS.values()), labelLimit=0)),
        yOffset=alt.YOffset("network:N", sort=present),
        x=alt.X("auroc:Q", title=["AUROC (0.5: a coin toss;", "1: every unfamiliar input", f"above {against})"],
                scale=alt.Scale(domain=[0, 1])),
        color=network_colors(present),
        opacity=alt.condition("datum.chosen", alt.value(1.0), alt.value(0.45)),
        tooltip=["network:N", "method:N", alt.Tooltip("auroc:Q", format=".3f")])
    chance = alt.Chart(alt.Data(values=[{"x": 0.5}])).mark_rule(strokeDash=[4, 3], color="gray").encode(x="x:Q")
    return legend_below((bars + chance).properties(height=alt.Step(14)), columns=2)


def wrapped(labels, width: int = 18) -> str:
    """A Vega label expression that breaks each of `labels` into lines of about `width` characters."""
    expr = "datum.label"
    for label in labels:
        lines = textwrap.wrap(label, width)
        if len(lines) > 1:
            expr = f"datum.label === {json.dumps(label)} ? {json.dumps(lines)} : ({expr})"
    return expr


def flagged_chart(rows: list[dict]) -> alt.LayerChart:
    """Share of each kind of unfamiliar input over the threshold, kind (rows) by network: four short names across,
    so that on a phone every column keeps its label."""
    kinds = [k for k in COUNTS if any(r["kind"] == k for r in rows)]
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("network:N", sort=ORDER, title=None, axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("kind:N", sort=kinds, title="unfamiliar input"))
    cells = base.mark_rect().encode(color=alt.Color("flagged:Q", scale=alt.Scale(domain=[0, 1], scheme="oranges"),
                                                    title="flagged", legend=alt.Legend(format=".0%")),
                                    tooltip=["network:N", "kind:N", alt.Tooltip("flagged:Q", format=".0%")])
    text = base.mark_text().encode(text=alt.Text("flagged:Q", format=".0%"),
                                   color=alt.condition("datum.flagged > 0.6", alt.value("white"), alt.value("black")))
    return legend_below((cells + text).properties(height=alt.Step(30)))


def render(entries: dict[str, Entry]) -> None:
    found, missing = records(entries)
    rate = calibration_sentences.aim(found) if found else calibration.RATE
    st.markdown("Every upload gets one of the ten answers, because the probabilities always sum to one over the ten "
                "classes: a picture of noise can be a frog at 90%. Each network also scores how unlike its training "
                f"images an input is, and Classify flags inputs over a threshold that at least {rate:.0%} of "
                "CIFAR-10 test images stay under. Here: how well each network tells held-out CIFAR-10 test images from "
                "unfamiliar inputs made for the purpose (noise, plain colours, colour gradients, screenshots of text, "
                "photographs of other things, faces), as AUROC: the chance that an unfamiliar input scores higher "
                "than a test image.")
    if missing:
        st.info("No current calibration for " + "; ".join(f"{n}: {why}" for n, why in missing.items()))
    if not found:
        st.code(calibration.redo_command(), language="bash")
        return
    st.altair_chart(auroc_chart(auroc_rows(found)), width="stretch")
    st.markdown(calibration_sentences.ranking(found) + " " + calibration_sentences.methods(found))
    st.markdown("**What each network flags**, at its threshold, of fresh unfamiliar inputs of each kind:")
    st.altair_chart(flagged_chart(flagged_rows(found)), width="stretch")
    st.markdown(calibration_sentences.kinds(found))
    if said := calibration_sentences.photos(found):
        st.markdown(said)
    if rows := photo_auroc_rows(found):
        st.markdown("**Photo against photo**: how well each method ranks a photo of something else above a real "
                    "photo of the ten classes (the method used is chosen on this):")
        st.altair_chart(auroc_chart(rows, "every photo of the ten"), width="stretch")
    first = next(iter(found.values()))
    n = first["n"]
    photos = first.get("photos")
    command = calibration.redo_command()
    also = f", and kept at least {photos['rate']:.0%} of {photos['n']} real photos under it" if photos else ""
    chosen_on = "method and threshold chosen"
    if photos and "other_n" in photos:
        chosen_on = "threshold set"
        also += f"; the method chosen photo against photo, on those and {photos['other_n']} photos of other things"
    st.caption(f"Measured by `{command}` on {first['machine']}, {first['date'][:10]}: "
               f"statistics from {n['fit']:,} training images; {chosen_on} on {n['choose']:,} test "
               f"images{also}; AUROC and flags measured on {n['held_out']:,} other test images and "
               f"{n['unfamiliar']:,} fresh unfamiliar inputs. Faded bars: methods compared but not used.")
