"""Feature reuse in DenseNet: how much each dense layer draws on each earlier layer's features."""

from __future__ import annotations

import streamlit as st

from ...analysis import why_sentences
from ...analysis.reuse import feature_reuse
from ...store.checkpoints import Entry
from . import why_charts
from .common import side_by_side


def render(entries: dict[str, Entry]) -> None:
    st.markdown("Inside a dense block every layer receives the block's input and the 12 new channels of every "
                "earlier layer. Each cell: the mean absolute weight a layer (row) puts on one source (column), per "
                "input channel, read from the trained weights as in the DenseNet paper's heat map, and coloured "
                "relative to the row's strongest source. The transition or classifier after each block is the last "
                "row.")
    entry = entries.get("densenet")
    if not entry or not entry.ok:
        st.info(f"No DenseNet checkpoint is loaded: {entry.reason if entry else 'unknown network'}")
        return
    rows = feature_reuse(entry.model)
    side_by_side(why_charts.reuse(rows))
    st.markdown(why_sentences.reuse(rows))
    st.caption("Raw weights: the BatchNorm before each convolution rescales its input channels and is not folded in.")
