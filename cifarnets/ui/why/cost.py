"""Cost: parameters, compute per image, latency and size on disk, beside the accuracy each buys."""

from __future__ import annotations

import streamlit as st

from ...analysis import cost as measure
from ...analysis import findings
from ...analysis.collect import Network, cost_rows
from ...store.checkpoints import Entry
from .. import resources
from . import charts


def render(nets: dict[str, Network], entries: dict[str, Entry]) -> None:
    st.markdown("What each network costs. Multiply-accumulates (MACs) count the convolutions' and linear layers' "
                "multiplications for one 32x32 image, found with forward hooks; latency is one forward pass in "
                "float32, the median of several.")
    rows = cost_rows(nets)
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
    devices = {r["device"] for r in rows if r.get("device")}
    st.caption((f"Latency measured by the analyze command on {', '.join(sorted(devices))}. " if devices else
                "No stored latency yet (the analyze command measures it). ")
               + "None: not measured yet, or no checkpoint to measure. On a machine busy with other work, timings "
               "(at batch 1 most) vary from run to run: the button below measures again, here.")
    _measure_here(entries)
    if any(r["test_acc"] is not None for r in rows):
        st.altair_chart(charts.cost(rows), width="stretch")
        st.caption("Area: parameters. Right: more compute; up: more accurate.")
    st.markdown(findings.cost(rows))


def _measure_here(entries: dict[str, Entry]) -> None:
    if st.button(f"Measure latency now, on {resources.device_text()}", key="why_latency"):
        loaded = {e.label: e.model for e in entries.values() if e.ok}
        with st.spinner("Timing the networks together, at batch 1 and 256 (about 10 s)..."):
            one = measure.latencies(loaded, 1, budget_s=0.5)
            many = measure.latencies(loaded, 256, min_rounds=2, budget_s=1.0)
        st.session_state["why_latency_rows"] = [
            {"network": n, "1 image (ms)": one[n] * 1e3, "256 images (ms)": many[n] * 1e3} for n in loaded]
    if st.session_state.get("why_latency_rows"):
        st.dataframe(st.session_state["why_latency_rows"], hide_index=True, column_config={
            "1 image (ms)": st.column_config.NumberColumn(format="%.2f"),
            "256 images (ms)": st.column_config.NumberColumn(format="%.1f")})
