"""Altair charts the pages share, and the networks' colours every chart draws them in (Why they differ's own
charts are in why/why_charts.py). They take plain rows (lists of dicts) that the library computes."""

from __future__ import annotations

import zlib

import altair as alt
import pandas as pd

from ..models import ALL_KEYS, MODELS, label, spec

ORDER = [label(k) for k in ALL_KEYS]  # the report's four, then ours: every chart's order
COLORS = {label(k): spec(k).colour for k in ALL_KEYS}  # {label: colour}: the same on every chart


def table(rows: list[dict]) -> pd.DataFrame:
    """A chart's data as a DataFrame: Streamlit sends it as Arrow beside the spec. Inline rows (alt.Data) are
    validated value by value on every rerun: 7 s for the 8,600 cells of the gradient heat map, 0.1 s so."""
    return pd.DataFrame(rows)


def network_colors(present: list[str] | None = None, **encoding) -> alt.Color:
    """Colour by the "network" field in the networks' fixed colours, for those present only (a legend lists
    nothing that is not drawn). `encoding`: the title or legend to use instead of the usual ones."""
    names = [n for n in ORDER if present is None or n in present]
    # labelLimit: "ResNet without shortcuts (ours)" in full
    encoding = {"title": "network", "legend": alt.Legend(labelLimit=320)} | encoding
    return alt.Color("network:N", scale=alt.Scale(domain=names, range=[COLORS[n] for n in names]), sort=names,
                     **encoding)


SPLIT_DASH = alt.Scale(domain=["train", "test"], range=[[4, 3], [1, 0]])  # train dashed, test solid


def params_chart(rows: list[dict]) -> alt.Chart:
    """Horizontal bars: parameters per network, with the count written at the end of each bar."""
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("network:N", sort=ORDER, title=None),
        # Room to the right of the longest bar for its label.
        x=alt.X("params:Q", title="parameters", axis=alt.Axis(tickCount=5),
                scale=alt.Scale(domain=[0, 1.12 * max(r["params"] for r in rows)])),
        tooltip=[alt.Tooltip("network:N"), alt.Tooltip("params:Q", format=",")],
    )
    bars = base.mark_bar().encode(color=network_colors(legend=None))
    text = base.mark_text(align="left", dx=4).encode(text=alt.Text("params:Q", format=","))
    return (bars + text).properties(height=160)


def _mix(hex_colour: str, toward: int, share: float) -> str:
    """A colour moved `share` of the way toward white (255) or black (0)."""
    rgb = [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (toward - c) * share):02x}" for c in rgb)


# A run's shade of its network's colour, from its name alone, so it keeps it whatever else is drawn.
RUN_SHADES = [(0, 0.35), (0, 0.55), (255, 0.25), (0, 0.2), (255, 0.6), (0, 0.7)]


def series_color(network: str, source: str) -> str:
    """One fixed colour per network and source: the network's own for its shipped checkpoint, a light tint for
    the report recipe's history, a shade chosen by the run's name for a user's run."""
    base = COLORS.get(network, "#888888")
    if source.startswith("shipped (report"):
        return _mix(base, 255, 0.45)
    if source.startswith("shipped"):
        return base
    toward, share = RUN_SHADES[zlib.crc32(source.encode()) % len(RUN_SHADES)]
    return _mix(base, toward, share)


def _series_scale(rows: list[dict]) -> tuple[list[str], alt.Scale]:
    """Series names 'network · source' in network order, shipped first, each in its fixed colour."""
    def order(r):
        return (ORDER.index(r["network"]) if r["network"] in ORDER else 99,
                not r["source"].startswith("shipped"), r["source"])
    pairs = list(dict.fromkeys((r["network"], r["source"]) for r in sorted(rows, key=order)))
    names = [f"{n} · {s}" for n, s in pairs]
    return names, alt.Scale(domain=names, range=[series_color(n, s) for n, s in pairs])


SHORT = 25  # a series of at most this many epochs keeps a marker on every epoch; longer ones are bare lines


def curves_chart(rows: list[dict], metric: str, side_by_side: bool, log_epochs: bool = False) -> alt.Chart:
    """Train and test curves of one metric, each series (network · source) in its fixed colour.

    Overlaid: every curve in one panel. Side by side: one panel per network. Clicking a legend entry shows
    that series alone (shift-click adds more); long series have no markers, but every point has a tooltip.
    `log_epochs` spreads out the first epochs, where 10-20-epoch runs end beside 150-epoch ones.
    """
    data = [dict(r, series=f"{r['network']} · {r['source']}") for r in rows if r["metric"] == metric]
    lengths: dict[str, int] = {}
    for r in data:
        lengths[r["series"]] = max(lengths.get(r["series"], 0), r["epoch"])
    # A user's run is what they came to see: among nine shipped series, a 1-epoch run was one pale dot.
    data = [dict(r, short=lengths[r["series"]] <= SHORT, mine=not r["source"].startswith("shipped")) for r in data]
    is_acc = metric == "accuracy"
    tooltip = [alt.Tooltip("network:N"), alt.Tooltip("source:N"), alt.Tooltip("split:N"), alt.Tooltip("epoch:Q"),
               alt.Tooltip("value:Q", title=metric, format=".2%" if is_acc else ".4f")]
    names, scale = _series_scale(data)
    shown = alt.selection_point(fields=["series"], bind="legend")
    # Below the plot, one entry a line: beside it, the legend squeezed the plot to a sliver at phone width.
    legend = alt.Legend(orient="bottom", direction="vertical", labelLimit=400)
    base = alt.Chart().encode(
        x=alt.X("epoch:Q", title="epoch" + (" (log scale)" if log_epochs else ""),
                axis=alt.Axis(tickMinStep=1, format="d"),
                scale=alt.Scale(type="log", nice=False) if log_epochs else alt.Scale(zero=False, nice=False)),
        y=alt.Y("value:Q", title=metric, axis=alt.Axis(format=".0%" if is_acc else ".2f"),
                scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title="network · source", sort=names, scale=scale,
                        legend=legend),
        detail=alt.Detail("series:N"),
        opacity=alt.condition(shown, alt.value(1.0), alt.value(0.08)),
    )
    # Streamlit's theme draws this legend's dash symbols invisibly: the page says it in words instead.
    lines = base.mark_line().encode(strokeDash=alt.StrokeDash("split:N", scale=SPLIT_DASH, legend=None),
                                    strokeWidth=alt.condition("datum.mine", alt.value(3.5), alt.value(1.5))
                                    ).add_params(shown)
    markers = base.mark_point(size=22, filled=True).transform_filter("datum.short && !datum.mine")
    runs = base.mark_point(size=150, shape="diamond", filled=True, stroke="#262730", strokeWidth=1
                           ).transform_filter("datum.mine")
    # Invisible, but under the pointer: every epoch of every series answers a hover with its value.
    hover = base.mark_point(size=80, opacity=0).encode(opacity=alt.value(0), tooltip=tooltip)
    chart = alt.layer(lines, markers, runs, hover, data=table(data))
    if side_by_side:
        networks = [n for n in ORDER if any(r["network"] == n for r in data)]
        return chart.properties(width=200, height=220).facet(
            column=alt.Column("network:N", sort=networks, title=None)).resolve_scale(x="independent")
    # Streamlit fits the whole chart, legend included, into the height: the legend's lines come on top.
    return chart.properties(height=300 + 22 * len(names) + 30, width="container")


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
