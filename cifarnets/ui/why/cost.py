"""Cost: parameters, compute per image, latency and size on disk, beside the accuracy each buys."""

from __future__ import annotations

import streamlit as st

from ...analysis import cost as measure
from ...analysis import why_sentences
from ...analysis.collect import Network, cost_rows
from ...store.checkpoints import Entry
from .. import resources
from . import why_charts


def render(nets: dict[str, Network], entries: dict[str, Entry]) -> None:
    st.markdown("What each network costs. Multiply-accumulates (MACs) count the convolutions' and linear layers' "
                "multiplications for one 32x32 image, found with forward hooks; latency is one forward pass in "
                "float32, the median of several.")
    rows = _measured_here(cost_rows(nets), entries)
    table = [{"network": r["network"], "parameters": r["params"], "MACs per image": r["macs"],
              "latency, 1 image (ms)": r.get("latency_ms_1"), "latency, 256 images (ms)": r.get("latency_ms_256"),
              "checkpoint (KB)": r["checkpoint_kb"], "test accuracy": r["test_acc"]} for r in rows]
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "parameters": st.column_config.NumberColumn(format="localized"),
        "MACs per image": st.column_config.NumberColumn(format="localized"),
        "latency, 1 image (ms)": st.column_config.NumberColumn(format="%.2f"),
        "latency, 256 images (ms)": st.column_config.NumberColumn(format="%.1f"),
        "checkpoint (KB)": st.column_config.NumberColumn(format="%.0f"),
        "test accuracy": st.column_config.NumberColumn(format="percent")})
    if st.session_state.get(HERE):
        st.caption(f"Latency measured just now on {resources.device_text()}, the four timed together: the table and "
                   "the text below both give these figures. Measure again for a fresh reading.")
    else:
        devices = {r["device"] for r in rows if r.get("device")}
        st.caption((f"Latency measured by the analyze command on {', '.join(sorted(devices))}. " if devices else
                    "No stored latency yet (the analyze command measures it). ")
                   + "None: not measured yet, or no checkpoint to measure. On a machine busy with other work, "
                   "timings (at batch 1 most) vary from run to run: the button above measures again, here.")
    if any(r["test_acc"] is not None for r in rows):
        st.altair_chart(why_charts.cost(rows), width="stretch")
        st.caption("Area: parameters. Right: more compute; up: more accurate.")
    st.markdown(why_sentences.cost(rows))


HERE = "why_latency_here"  # {network label: {batch: seconds}}, this session's own timing


def _measured_here(rows: list[dict], entries: dict[str, Entry]) -> list[dict]:
    """The button that times the networks here, now; once pressed, its figures replace the stored ones in every
    row, so the table and the text under it never give two different timings of the same networks."""
    if st.button(f"Measure latency now, on {resources.device_text()}", key="why_latency"):
        loaded = {e.label: e.model for e in entries.values() if e.ok}
        with st.spinner("Timing the networks together, at batch 1 and 256 (about 10 s)..."):
            one = measure.latencies(loaded, 1, budget_s=0.5)
            many = measure.latencies(loaded, 256, min_rounds=2, budget_s=1.0)
        st.session_state[HERE] = {n: {1: one[n], 256: many[n]} for n in loaded}
    here = st.session_state.get(HERE) or {}
    for row in rows:
        if row["network"] in here:
            row |= {f"latency_ms_{batch}": seconds * 1e3 for batch, seconds in here[row["network"]].items()}
            row |= {"device": resources.device_text(), "latency_together": True}
    return rows
