"""Altair charts of the Why they differ page. Plain rows in; the networks keep the app's colours (ui/charts.py)."""

from __future__ import annotations

import math

import altair as alt

from ...analysis.collect import INIT, TRAINED
from ..charts import ORDER, network_colors, table

METRICS = {"rms": "gradient per weight (RMS)", "norm": "gradient norm"}
# For panels placed side by side: the width the column's, the height the plot's. Streamlit's default fits both,
# and a legend under one panel then squeezed that panel's plot to nothing.
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")


def legend_below(chart: alt.TopLevelMixin, columns: int = 1) -> alt.TopLevelMixin:
    """A chart as wide as its place with its legends under the plot, one entry a line unless `columns` says more:
    beside it, a legend of long names ("ResNet without shortcuts (ours)") squeezed the plot to a sliver on a
    phone. A colour bar is kept short enough for a phone's column."""
    return chart.properties(autosize=FIT_WIDTH).configure_legend(orient="bottom", columns=columns,
                                                                  gradientLength=150)


def gradients(rows: list[dict], metric: str) -> list[alt.Chart]:
    """Gradient against depth, a chart per moment on one scale (`common.side_by_side` places them); lines join
    the main path, shortcut and SE layers are drawn beside it as open marks; rows with `compared` set are ringed."""
    present = sorted({r["network"] for r in rows})
    y = alt.Y(f"{metric}:Q", scale=alt.Scale(type="log", domain=decades([r[metric] for r in rows])),
              title=METRICS[metric], axis=alt.Axis(format=".0e"))
    depths = [r["depth"] for r in rows]
    x = alt.X("depth:Q", title="depth (weight layers along the main path)", axis=alt.Axis(tickMinStep=1),
              scale=alt.Scale(domain=[min(depths), max(depths)], padding=8))  # markers at the ends drawn whole
    tooltip = ["network:N", "layer:N", "kind:N", "depth:Q", alt.Tooltip("norm:Q", format=".3e"),
               alt.Tooltip("rms:Q", format=".3e"), alt.Tooltip("weights:Q", format=",")]
    moments = [m for m in (INIT, TRAINED) if any(r["moment"] == m for r in rows)]
    panels = []
    for moment in moments:
        # Each legend once, under a panel of its own (side by side, two fit under one): the networks' under the
        # last, the marks beside the main path under the first.
        networks = {} if moment == moments[-1] else {"legend": None}
        marks = {} if moment == moments[0] else {"legend": None}
        main = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=30)).encode(
            x=x, y=y, color=network_colors(present, **networks), tooltip=tooltip).transform_filter(
            alt.FieldOneOfPredicate("kind", ["conv", "linear"]))
        side = alt.Chart().mark_point(size=45, filled=False).encode(
            x=x, y=y, color=network_colors(present, **networks),
            shape=alt.Shape("kind:N", title="beside the main path", **marks),
            tooltip=tooltip).transform_filter(alt.FieldOneOfPredicate("kind", ["shortcut", "se"]))
        # Rings round the two layers the text compares (first and last convolution), so a reader sees which they are.
        rings = alt.Chart().mark_point(size=260, filled=False, strokeWidth=1.5, color="#333333").encode(
            x=x, y=y, tooltip=tooltip).transform_filter("datum.compared")
        layers = [main, side] if any(r["kind"] in ("shortcut", "se") for r in rows) else [main]
        chart = alt.layer(*layers, rings, data=table([r for r in rows if r["moment"] == moment])).properties(
            title=moment, width="container", height=280)
        panels.append(legend_below(chart))
    return panels


def decades(values: list[float]) -> list[float]:
    """A log scale's domain: the whole powers of ten around the positive values, so panels drawn apart share it."""
    positive = [v for v in values if v > 0] or [1.0]
    return [10.0 ** math.floor(math.log10(min(positive))), 10.0 ** math.ceil(math.log10(max(positive)))]


EPOCHS_HEIGHT = 240  # px per panel, however many epochs: 150 rows of 14 px ran to six screens


def epochs(rows: list[dict], metric: str) -> list[alt.Chart]:
    """Gradient per layer (columns) and epoch (rows) as colour, a chart per network of a fixed height, all on one
    epoch axis and one colour scale (`common.side_by_side` places them)."""
    present = [n for n in ORDER if any(r["network"] == n for r in rows)]
    positive = [r[metric] for r in rows if r[metric] > 0] or [1.0]
    last_epoch = max(r["epoch"] for r in rows) + 1
    panels = []
    for name in present:
        chart = alt.Chart(table([r for r in rows if r["network"] == name])).transform_calculate(
            epoch_end="datum.epoch + 1").mark_rect().encode(
            x=alt.X("depth:O", title="depth", axis=alt.Axis(labelAngle=0)),
            # Quantitative epochs, so a long run's rows shrink into the fixed height and the axis labels thin out.
            y=alt.Y("epoch:Q", title="epoch (0: initialisation)", axis=alt.Axis(tickMinStep=1),
                    scale=alt.Scale(nice=False, reverse=True, domain=[0, last_epoch])),
            y2="epoch_end:Q",
            color=alt.Color(f"{metric}:Q", title=METRICS[metric],
                            scale=alt.Scale(type="log", scheme="viridis", domain=[min(positive), max(positive)]),
                            legend=alt.Legend(format=".0e", labelOverlap="greedy") if name == present[-1] else None),
            tooltip=["network:N", "epoch:O", "layer:N", alt.Tooltip(f"{metric}:Q", format=".3e")],
        ).properties(title=name, width="container", height=EPOCHS_HEIGHT)
        panels.append(legend_below(chart))
    return panels


def accuracy(rows: list[dict]) -> alt.Chart:
    """Test accuracy per epoch; rows: network, epoch, test_acc."""
    present = sorted({r["network"] for r in rows})
    return legend_below(alt.Chart(table(rows)).mark_line().encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("test_acc:Q", title="test accuracy", axis=alt.Axis(format=".0%"), scale=alt.Scale(zero=False)),
        color=network_colors(present), tooltip=["network:N", "epoch:Q", alt.Tooltip("test_acc:Q", format=".2%")],
    ).properties(height=240, width="container"))


def cost(rows: list[dict]) -> alt.Chart:
    """Accuracy against compute; the point's area is the parameter count."""
    data = [r for r in rows if r.get("test_acc") is not None]
    present = sorted({r["network"] for r in data})
    base = alt.Chart(alt.Data(values=data)).encode(
        x=alt.X("macs:Q", scale=alt.Scale(type="log"), title="multiply-accumulates per image",
                axis=alt.Axis(format="~s")),
        y=alt.Y("test_acc:Q", title="test accuracy", axis=alt.Axis(format=".0%"), scale=alt.Scale(zero=False)),
        tooltip=["network:N", alt.Tooltip("params:Q", format=","), alt.Tooltip("macs:Q", format=","),
                 alt.Tooltip("test_acc:Q", format=".2%")])
    # A legend, not labels on the points: the ResNet and the SE-ResNet cost the same and sit on top of each other.
    return legend_below(base.mark_circle(opacity=0.7).encode(
        color=network_colors(present),
        size=alt.Size("params:Q", title="parameters", scale=alt.Scale(range=[60, 600]), legend=None),
    ).properties(height=280, width="container"))


def per_class(rows: list[dict]) -> alt.Chart:
    """rows: network, class, accuracy."""
    base = alt.Chart(alt.Data(values=rows)).encode(
        # Slanted and never hidden: level labels overlapped, and Vega dropped the ResNet's and the SE-ResNet's.
        x=alt.X("network:N", sort=ORDER, title=None, axis=alt.Axis(labelAngle=-30, labelOverlap=False,
                                                                   labelLimit=240)),
        y=alt.Y("class:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False)))
    cells = base.mark_rect().encode(color=alt.Color("accuracy:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]),
                                                    legend=None),
                                    tooltip=["network:N", "class:N", alt.Tooltip("accuracy:Q", format=".1%")])
    text = base.mark_text().encode(text=alt.Text("accuracy:Q", format=".0%"),
                                   color=alt.condition("datum.accuracy > 0.6", alt.value("white"), alt.value("black")))
    return (cells + text).properties(height=300, width="container")


def confusion(rows: list[dict]) -> alt.Chart:
    """rows: true, predicted, count, share (of the true class)."""
    classes = list(dict.fromkeys(r["true"] for r in rows))
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("predicted:N", sort=classes, title="predicted", axis=alt.Axis(labelAngle=-40, labelOverlap=False)),
        y=alt.Y("true:N", sort=classes, title="true class"))
    cells = base.mark_rect().encode(color=alt.Color("share:Q", scale=alt.Scale(scheme="oranges", type="sqrt"),
                                                    legend=None),
                                    tooltip=["true:N", "predicted:N", "count:Q", alt.Tooltip("share:Q", format=".1%")])
    text = base.mark_text(fontSize=10).encode(text="count:Q", color=alt.condition(
        "datum.share > 0.5", alt.value("white"), alt.value("black")))
    return (cells + text).properties(height=320, width="container")


def reliability(rows: list[dict]) -> alt.Chart:
    """rows: network, confidence, accuracy, count; the diagonal is perfect calibration."""
    present = sorted({r["network"] for r in rows})
    diagonal = alt.Chart(alt.Data(values=[{"v": 0.0}, {"v": 1.0}])).mark_line(
        color="#999999", strokeDash=[4, 3]).encode(x="v:Q", y="v:Q")
    lines = alt.Chart(alt.Data(values=rows)).mark_line(point=True).encode(
        x=alt.X("confidence:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%"),
                title="confidence (top probability)"),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%"), title="accuracy"),
        color=network_colors(present),
        tooltip=["network:N", alt.Tooltip("confidence:Q", format=".1%"), alt.Tooltip("accuracy:Q", format=".1%"),
                 alt.Tooltip("count:Q", format=",")])
    return legend_below((diagonal + lines).properties(height=320, width="container"))


def channels(rows: list[dict], value: str, title: str, diverging: bool = False) -> list[alt.Chart]:
    """Per-channel bars, a chart per SE block (the page's width, stacked), on one value scale; rows: block,
    channel, value."""
    color = (alt.condition(f"datum.{value} >= 0", alt.value("#4c78a8"), alt.value("#e45756")) if diverging
             else alt.value("#e45756"))
    values = [r[value] for r in rows]
    domain = [min(0.0, *values), max(0.0, *values)] if diverging else [0, 1]
    blocks = list(dict.fromkeys(r["block"] for r in rows))
    return [alt.Chart(alt.Data(values=[r for r in rows if r["block"] == block])).mark_bar().encode(
        x=alt.X("channel:O", axis=alt.Axis(labels=False, ticks=False), title=None),
        y=alt.Y(f"{value}:Q", title=None, scale=alt.Scale(domain=domain)),
        color=color, tooltip=["block:N", "channel:O", alt.Tooltip(f"{value}:Q", format=".3f")],
    ).properties(title=alt.TitleParams(f"{title} {block}", anchor="start", fontSize=12), width="container", height=60,
                  autosize=FIT_WIDTH)
        for block in blocks]


def reuse(rows: list[dict]) -> list[alt.Chart]:
    """DenseNet: consumers (rows) by sources (columns), a chart per dense block (`common.side_by_side`)."""
    blocks = list(dict.fromkeys(r["block"] for r in rows))
    panels = []
    for block in blocks:
        chart = alt.Chart(alt.Data(values=[r for r in rows if r["block"] == block])).mark_rect().encode(
            x=alt.X("source:N", sort=["block input", "layer 1", "layer 2", "layer 3"], title="source",
                    axis=alt.Axis(labelAngle=-30)),
            y=alt.Y("consumer:N", sort=["layer 1", "layer 2", "layer 3", "transition", "classifier"],
                    title="used by"),
            color=alt.Color("relative:Q", scale=alt.Scale(scheme="inferno", domain=[0, 1]),
                            title="share of the row's strongest",
                            legend=alt.Legend(format=".0%") if block == blocks[-1] else None),
            tooltip=["block:O", "consumer:N", "source:N", alt.Tooltip("mean_abs_weight:Q", format=".4f"),
                     alt.Tooltip("relative:Q", format=".0%")],
        ).properties(title=f"dense block {block}", width="container", height=170)
        panels.append(legend_below(chart))
    return panels
