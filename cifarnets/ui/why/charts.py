"""Altair charts of the Why they differ page. Plain rows in; the networks keep the app's colours."""

from __future__ import annotations

import altair as alt

from ...analysis.collect import INIT, TRAINED
from ...models import ALL_KEYS, label
from ..charts import COLORS, table

ORDER = [label(k) for k in ALL_KEYS]
METRICS = {"rms": "gradient per weight (RMS)", "norm": "gradient norm"}


def color_by_network(present: list[str] | None = None, **legend) -> alt.Color:
    names = [n for n in ORDER if present is None or n in present]
    legend = legend or {"legend": alt.Legend(labelLimit=320)}  # "ResNet without shortcuts (ours)" in full
    return alt.Color("network:N", scale=alt.Scale(domain=names, range=[COLORS[n] for n in names]),
                     sort=names, title="network", **legend)


def gradients(rows: list[dict], metric: str) -> alt.FacetChart:
    """Gradient against depth, one panel per moment; lines join the main path, shortcut and SE layers are
    drawn beside it as open marks; rows with `compared` set are ringed."""
    present = sorted({r["network"] for r in rows})
    y = alt.Y(f"{metric}:Q", scale=alt.Scale(type="log"), title=METRICS[metric], axis=alt.Axis(format=".0e"))
    x = alt.X("depth:Q", title="depth (weight layers along the main path)", axis=alt.Axis(tickMinStep=1))
    tooltip = ["network:N", "layer:N", "kind:N", "depth:Q", alt.Tooltip("norm:Q", format=".3e"),
               alt.Tooltip("rms:Q", format=".3e"), alt.Tooltip("weights:Q", format=",")]
    main = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=30)).encode(
        x=x, y=y, color=color_by_network(present), tooltip=tooltip).transform_filter(
        alt.FieldOneOfPredicate("kind", ["conv", "linear"]))
    side = alt.Chart().mark_point(size=45, filled=False).encode(
        x=x, y=y, color=color_by_network(present), shape=alt.Shape("kind:N", title="beside the main path"),
        tooltip=tooltip).transform_filter(alt.FieldOneOfPredicate("kind", ["shortcut", "se"]))
    # Rings round the two layers the text compares (first and last convolution), so a reader sees which they are.
    rings = alt.Chart().mark_point(size=260, filled=False, strokeWidth=1.5, color="#333333").encode(
        x=x, y=y, tooltip=tooltip).transform_filter("datum.compared")
    moments = [m for m in (INIT, TRAINED) if any(r["moment"] == m for r in rows)]
    layers = [main, side] if any(r["kind"] in ("shortcut", "se") for r in rows) else [main]
    layers.append(rings)
    return alt.layer(*layers, data=table(rows)).properties(width=360, height=280).facet(
        column=alt.Column("moment:N", sort=moments, title=None)).configure_legend(orient="bottom", columns=3)


EPOCHS_HEIGHT = 240  # px per panel, however many epochs: 150 rows of 14 px ran to six screens


def epochs(rows: list[dict], metric: str) -> alt.Chart:
    """Gradient per layer (columns) and epoch (rows) as colour, one panel per network, of a fixed height."""
    return alt.Chart(table(rows)).transform_calculate(epoch_end="datum.epoch + 1").mark_rect().encode(
        x=alt.X("depth:O", title="depth", axis=alt.Axis(labelAngle=0)),
        # Quantitative epochs, so a long run's rows shrink into the fixed height and the axis labels thin out.
        y=alt.Y("epoch:Q", title="epoch (0: initialisation)", scale=alt.Scale(nice=False, reverse=True),
                axis=alt.Axis(tickMinStep=1)),
        y2="epoch_end:Q",
        color=alt.Color(f"{metric}:Q", scale=alt.Scale(type="log", scheme="viridis"), title=METRICS[metric]),
        tooltip=["network:N", "epoch:O", "layer:N", alt.Tooltip(f"{metric}:Q", format=".3e")],
    ).properties(width=alt.Step(18), height=EPOCHS_HEIGHT).facet(
        facet=alt.Facet("network:N", sort=ORDER, title=None), columns=3).resolve_scale(x="independent")


def accuracy(rows: list[dict]) -> alt.Chart:
    """Test accuracy per epoch; rows: network, epoch, test_acc."""
    present = sorted({r["network"] for r in rows})
    return alt.Chart(table(rows)).mark_line().encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("test_acc:Q", title="test accuracy", axis=alt.Axis(format=".0%"), scale=alt.Scale(zero=False)),
        color=color_by_network(present), tooltip=["network:N", "epoch:Q", alt.Tooltip("test_acc:Q", format=".2%")],
    ).properties(height=240, width="container")


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
    return base.mark_circle(opacity=0.7).encode(
        color=color_by_network(present),
        size=alt.Size("params:Q", title="parameters", scale=alt.Scale(range=[60, 600]), legend=None),
    ).properties(height=280, width="container")


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
        color=color_by_network(present),
        tooltip=["network:N", alt.Tooltip("confidence:Q", format=".1%"), alt.Tooltip("accuracy:Q", format=".1%"),
                 alt.Tooltip("count:Q", format=",")])
    return (diagonal + lines).properties(height=320, width="container")


def channels(rows: list[dict], value: str, title: str, diverging: bool = False) -> alt.Chart:
    """Per-channel bars, one row per SE block; rows: block, channel, value."""
    color = (alt.condition(f"datum.{value} >= 0", alt.value("#4c78a8"), alt.value("#e45756")) if diverging
             else alt.value("#e45756"))
    return alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=alt.X("channel:O", axis=alt.Axis(labels=False, ticks=False), title=None),
        y=alt.Y(f"{value}:Q", title=None, scale=alt.Scale() if diverging else alt.Scale(domain=[0, 1])),
        color=color, tooltip=["block:N", "channel:O", alt.Tooltip(f"{value}:Q", format=".3f")],
    ).properties(width=560, height=60).facet(row=alt.Row("block:N", sort=None, title=title,
                                                         header=alt.Header(labelAngle=0, labelAlign="left")),
                                             spacing=4).resolve_scale(x="independent")


def reuse(rows: list[dict]) -> alt.Chart:
    """DenseNet: consumers (rows) by sources (columns), one panel per dense block."""
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("source:N", sort=["block input", "layer 1", "layer 2", "layer 3"], title="source",
                axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("consumer:N", sort=["layer 1", "layer 2", "layer 3", "transition", "classifier"], title="used by"))
    cells = base.mark_rect().encode(
        color=alt.Color("relative:Q", scale=alt.Scale(scheme="inferno", domain=[0, 1]),
                        title="share of the row's strongest", legend=alt.Legend(format=".0%")),
        tooltip=["block:O", "consumer:N", "source:N", alt.Tooltip("mean_abs_weight:Q", format=".4f"),
                 alt.Tooltip("relative:Q", format=".0%")])
    return cells.properties(width=200, height=170).facet(
        column=alt.Column("block:O", title="dense block", header=alt.Header(labelFontSize=12)))
