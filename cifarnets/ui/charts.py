"""Altair charts the pages draw. They take plain rows (lists of dicts) that the library computes."""

from __future__ import annotations

import altair as alt

from ..models import KEYS, label

NETWORK_ORDER = [label(k) for k in KEYS]
# One colour per network, the same on every chart (Tableau 10's first four).
COLORS = dict(zip(NETWORK_ORDER, ["#4c78a8", "#f58518", "#54a24b", "#e45756"], strict=True))


def network_scale(present: list[str] | None = None) -> alt.Scale:
    """The networks' fixed colours, for those present only (a legend lists nothing that is not drawn)."""
    names = [n for n in NETWORK_ORDER if present is None or n in present]
    return alt.Scale(domain=names, range=[COLORS[n] for n in names])
SPLIT_DASH = alt.Scale(domain=["train", "test"], range=[[4, 3], [1, 0]])  # train dashed, test solid


def params_chart(rows: list[dict]) -> alt.Chart:
    """Horizontal bars: parameters per network, with the count written at the end of each bar."""
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("network:N", sort=NETWORK_ORDER, title=None),
        x=alt.X("params:Q", title="parameters"),
        tooltip=[alt.Tooltip("network:N"), alt.Tooltip("params:Q", format=",")],
    )
    bars = base.mark_bar().encode(color=alt.Color("network:N", scale=network_scale(), legend=None))
    text = base.mark_text(align="left", dx=4).encode(text=alt.Text("params:Q", format=","))
    return (bars + text).properties(height=160)


def curves_chart(rows: list[dict], metric: str, side_by_side: bool) -> alt.Chart:
    """Train and test curves of one metric.

    Overlaid: the four networks in one panel (colour), one panel per source when there are several.
    Side by side: one panel per network, sources in colour, so the report's recipe sits beside ours.
    """
    data = [r for r in rows if r["metric"] == metric]
    axis_format = ".0%" if metric == "accuracy" else ".2f"
    tooltip = [alt.Tooltip("network:N"), alt.Tooltip("source:N"), alt.Tooltip("split:N"),
               alt.Tooltip("epoch:Q"), alt.Tooltip("value:Q", title=metric, format=".2%" if metric == "accuracy"
                                                   else ".4f")]
    sources = sorted({r["source"] for r in data})
    present = sorted({r["network"] for r in data})
    color = (alt.Color("source:N", title="source", sort=sources) if side_by_side
             else alt.Color("network:N", scale=network_scale(present), title="network"))
    chart = alt.Chart(alt.Data(values=data)).mark_line(point=alt.OverlayMarkDef(size=25)).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1), scale=alt.Scale(zero=False, nice=False)),
        y=alt.Y("value:Q", title=metric, axis=alt.Axis(format=axis_format), scale=alt.Scale(zero=False)),
        color=color,
        # Streamlit's theme draws this legend's dash symbols invisibly: the page says it in words instead.
        strokeDash=alt.StrokeDash("split:N", scale=SPLIT_DASH, legend=None),
        detail=alt.Detail("source:N") if not side_by_side else alt.Detail("network:N"),
        tooltip=tooltip,
    )
    if side_by_side:
        networks = [n for n in NETWORK_ORDER if any(r["network"] == n for r in data)]
        return chart.properties(width=230, height=220).facet(
            column=alt.Column("network:N", sort=networks, title=None)).resolve_scale(x="independent")
    if len(sources) > 1:
        return chart.properties(width=330, height=260).facet(column=alt.Column("source:N", sort=sources, title=None))
    return chart.properties(height=300, width="container")


def top5_chart(top5: list[tuple[str, float]], color: str) -> alt.Chart:
    """One network's five most likely classes for one image, most likely on top."""
    rows = [{"class": c, "probability": p, "rank": i} for i, (c, p) in enumerate(top5)]
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("class:N", sort=alt.EncodingSortField("rank"), title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=90)),
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%", tickCount=3),
                title=None),
        tooltip=[alt.Tooltip("class:N"), alt.Tooltip("probability:Q", format=".1%")],
    )
    bars = base.mark_bar(color=color)
    text = base.mark_text(align="left", dx=3, fontSize=11).encode(text=alt.Text("probability:Q", format=".0%"))
    return (bars + text).properties(height=20 * len(rows) + 10)


def network_color(key: str) -> str:
    return COLORS.get(label(key), "#888888") if key in KEYS else "#888888"


def live_chart(points: list[dict]) -> alt.Chart:
    """A running run's loss: rows {epoch (may be fractional), value, series}."""
    return alt.Chart(alt.Data(values=points)).mark_line(point=alt.OverlayMarkDef(size=20)).encode(
        x=alt.X("epoch:Q", title="epoch"),
        y=alt.Y("value:Q", title="loss", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=[alt.Tooltip("series:N"), alt.Tooltip("epoch:Q", format=".2f"), alt.Tooltip("value:Q", format=".4f")],
    ).properties(height=160)
