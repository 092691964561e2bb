"""Gradient flow: the weight-gradient norm of every layer against its depth, for the four and our plain ResNet."""

from __future__ import annotations

import streamlit as st

from ...analysis import why_sentences
from ...analysis.collect import Network, epoch_gradient_rows, gradient_rows
from ...models import label
from . import why_charts
from .common import analyze_command, data_hint, side_by_side, train_plain_command

PLAIN = "resnet_plain"


def render(nets: dict[str, Network]) -> None:
    st.markdown("The report says gradients fade as a plain network deepens, and that shortcuts (ResNet) and dense "
                "connections (DenseNet) keep them flowing. Each point is one layer: how strongly the loss pulls on "
                "its weights, on the same fixed sample of training images, before and after training. To test depth "
                "itself, "
                f"**{label(PLAIN)}** is the ResNet with its shortcuts removed: same 14 layers, nothing else changed.")
    metrics = why_charts.METRICS
    choice = st.segmented_control("Measure", list(metrics), default="rms", format_func=metrics.get,
                                  key="why_grad_metric", required=True,
                                  help="RMS: the norm divided by the square root of the number of weights, so "
                                       "that big and small layers compare; norm: the plain L2 norm")
    rows = gradient_rows(nets)
    if not rows:
        st.info("No gradient measurements yet. They come from the analyze command, or from training runs "
                f"(the trainer records them every epoch){data_hint()}:")
        st.code(analyze_command(), language="bash")
    else:
        ends = {id(r) for pair in why_sentences.compared_layers(rows).values() for r in pair}
        side_by_side(why_charts.gradients([dict(r, compared=id(r) in ends) for r in rows], choice))
        st.markdown(why_sentences.gradients(rows, choice))
    _plain(nets)
    _epochs(nets, choice)


def _plain(nets: dict[str, Network]) -> None:
    plain, res = nets[PLAIN], nets["resnet"]
    if not plain.trained:
        st.warning(f"**{label(PLAIN)}** is not trained yet, so its *after training* curve and its accuracy are "
                   "missing. Train it with the ResNet's recipe (hours on a CPU, minutes on a GPU), then measure it:")
        st.code(f"{train_plain_command()}\n{analyze_command()}", language="bash")
        return
    rows = [{"network": n.label, "epoch": r["epoch"], "test_acc": r["test_acc"]} for n in (res, plain)
            for r in n.history if isinstance(r.get("test_acc"), (int, float))]
    if rows:
        st.markdown(f"**Does depth without shortcuts train as well?** Test accuracy per epoch, {res.label} against "
                    f"{plain.label}.")
        st.altair_chart(why_charts.accuracy(rows), width="stretch")
        # At the same epoch: the two share a recipe, so epoch for epoch they had the same schedule.
        by_epoch = {(r["network"], r["epoch"]): r["test_acc"] for r in rows}
        both = [e for (n, e) in by_epoch if n == plain.label and (res.label, e) in by_epoch]
        if both:
            epoch = max(both)
            with_, without = by_epoch[(res.label, epoch)], by_epoch[(plain.label, epoch)]
            st.markdown(f"At epoch {epoch}, the last both reached, the shortcuts are worth "
                        f"{(with_ - without) * 100:+.1f} points of test accuracy ({with_:.1%} with, "
                        f"{without:.1%} without, each image alone).")


def _epochs(nets: dict[str, Network], metric: str) -> None:
    rows = [r for n in nets.values() for r in epoch_gradient_rows(n)]
    st.markdown("**During training.** Every layer's gradient, epoch by epoch, as the trainer recorded it.")
    if rows:
        side_by_side(why_charts.epochs(rows, metric))
    else:
        st.caption("None of these checkpoints has gradients in its history: they were trained before the trainer "
                   "recorded them. A run trained now (sidebar or `python -m cifarnets train`) records them after "
                   "every epoch, and its history shows up here once it is the network's checkpoint.")
