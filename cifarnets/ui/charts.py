"""Altair charts the pages draw. They take plain rows (lists of dicts) that the library computes."""

from __future__ import annotations

import altair as alt

from ..models import ALL_KEYS, KEYS, MODELS, label, spec

NETWORK_ORDER = [label(k) for k in KEYS]
COLORS = {label(k): spec(k).colour for k in ALL_KEYS}  # {label: colour}: the same on every chart


def network_scale(present: list[str] | None = None) -> alt.Scale:
    """The networks' fixed colours, for those present only (a legend lists nothing that is not drawn)."""
    names = [n for n in NETWORK_ORDER if present is None or n in present]
    return alt.Scale(domain=names, range=[COLORS[n] for n in names])
SPLIT_DASH = alt.Scale(domain=["train", "test"], range=[[4, 3], [1, 0]])  # train dashed, test solid


def params_chart(rows: list[dict]) -> alt.Chart:
    """Horizontal bars: parameters per network, with the count written at the end of each bar."""
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("network:N", sort=NETWORK_ORDER, title=None),
        # Room to the right of the longest bar for its label.
        x=alt.X("params:Q", title="parameters", axis=alt.Axis(tickCount=5),
                scale=alt.Scale(domain=[0, 1.12 * max(r["params"] for r in rows)])),
        tooltip=[alt.Tooltip("network:N"), alt.Tooltip("params:Q", format=",")],
    )
    bars = base.mark_bar().encode(color=alt.Color("network:N", scale=network_scale(), legend=None))
    text = base.mark_text(align="left", dx=4).encode(text=alt.Text("params:Q", format=","))
    return (bars + text).properties(height=160)


# Colours for the curves that are not a network's shipped one (its report-recipe history, the user's runs).
EXTRA_COLORS = ["#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac", "#8cd17d", "#d4a6c8",
                "#86bcb6", "#f1ce63", "#79706e", "#d37295"]


def _series_scale(rows: list[dict]) -> tuple[list[str], alt.Scale]:
    """Series names 'network · source', each network's shipped curve in the network's own colour."""
    def order(r):
        return (NETWORK_ORDER.index(r["network"]) if r["network"] in NETWORK_ORDER else 99,
                not r["source"].startswith("shipped"), r["source"])
    names, colours, coloured = [], [], set()
    for r in sorted(rows, key=order):
        name = f"{r['network']} · {r['source']}"
        if name in names:
            continue
        names.append(name)
        if r["network"] not in coloured and r["source"].startswith("shipped") and r["network"] in COLORS:
            colours.append(COLORS[r["network"]])
            coloured.add(r["network"])
        else:
            colours.append(EXTRA_COLORS[(len(colours) - len(coloured)) % len(EXTRA_COLORS)])
    return names, alt.Scale(domain=names, range=colours)


def curves_chart(rows: list[dict], metric: str, side_by_side: bool) -> alt.Chart:
    """Train and test curves of one metric.

    Overlaid: every curve in one panel, each network's shipped curve in its own colour.
    Side by side: one panel per network, sources in colour, so the report's recipe sits beside ours.
    """
    data = [dict(r, series=f"{r['network']} · {r['source']}") for r in rows if r["metric"] == metric]
    is_acc = metric == "accuracy"
    tooltip = [alt.Tooltip("network:N"), alt.Tooltip("source:N"), alt.Tooltip("split:N"), alt.Tooltip("epoch:Q"),
               alt.Tooltip("value:Q", title=metric, format=".2%" if is_acc else ".4f")]
    if side_by_side:
        sources = sorted({r["source"] for r in data}, key=lambda s: (not s.startswith("shipped"), s))
        # Below the panels: four panels and a legend beside them are wider than the page.
        color = alt.Color("source:N", title="source", sort=sources, scale=alt.Scale(scheme="tableau10"),
                          legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=400))
    else:
        names, scale = _series_scale(data)
        color = alt.Color("series:N", title="network · source", sort=names, scale=scale,
                          legend=alt.Legend(labelLimit=320))
    chart = alt.Chart(alt.Data(values=data)).mark_line(point=alt.OverlayMarkDef(size=25)).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1), scale=alt.Scale(zero=False, nice=False)),
        y=alt.Y("value:Q", title=metric, axis=alt.Axis(format=".0%" if is_acc else ".2f"),
                scale=alt.Scale(zero=False)),
        color=color,
        # Streamlit's theme draws this legend's dash symbols invisibly: the page says it in words instead.
        strokeDash=alt.StrokeDash("split:N", scale=SPLIT_DASH, legend=None),
        detail=alt.Detail("series:N"),
        tooltip=tooltip,
    )
    if side_by_side:
        networks = [n for n in NETWORK_ORDER if any(r["network"] == n for r in data)]
        return chart.properties(width=200, height=220).facet(
            column=alt.Column("network:N", sort=networks, title=None)).resolve_scale(x="independent")
    return chart.properties(height=320, width="container")


def top5_chart(top5: list[tuple[str, float]], color: str) -> alt.Chart:
    """One network's five most likely classes for one image, most likely on top."""
    rows = [{"class": c, "probability": p} for c, p in top5]
    base = alt.Chart(alt.Data(values=rows)).encode(
        # An explicit order: a field sort is dropped when the layers below filter their data differently.
        y=alt.Y("class:N", sort=[c for c, _ in top5], title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=90)),
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%", tickCount=3),
                title=None),
        tooltip=[alt.Tooltip("class:N"), alt.Tooltip("probability:Q", format=".1%")],
    )
    bars = base.mark_bar(color=color)
    label = alt.Text("probability:Q", format=".0%")
    # A long bar carries its number inside, so the number never runs past the chart's edge.
    inside = base.transform_filter("datum.probability >= 0.7").mark_text(
        align="right", dx=-3, fontSize=11, color="white").encode(text=label)
    outside = base.transform_filter("datum.probability < 0.7").mark_text(
        align="left", dx=3, fontSize=11).encode(text=label)
    return (bars + inside + outside).properties(height=20 * len(rows) + 10)


def network_color(key: str) -> str:
    return MODELS[key].colour if key in MODELS else "#888888"


LIVE_SERIES = alt.Scale(domain=["train loss (running)", "train loss", "test loss"],
                        range=["#e45756", "#9d9d9d", "#4c78a8"])


def live_chart(points: list[dict]) -> alt.Chart:
    """A running run's loss, sized for the sidebar: rows {epoch (may be fractional), value, series}.

    No legend (the caller says in words which colour is which): with one, Streamlit squeezes the plot
    to a line. A fixed width, because a chart wider than the sidebar is shrunk whole, text and all.
    """
    return alt.Chart(alt.Data(values=points)).mark_line(point=alt.OverlayMarkDef(size=15)).encode(
        x=alt.X("epoch:Q", title=None, axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", scale=LIVE_SERIES, legend=None),
        tooltip=[alt.Tooltip("series:N"), alt.Tooltip("epoch:Q", format=".2f"), alt.Tooltip("value:Q", format=".4f")],
    ).properties(width=190, height=110)
