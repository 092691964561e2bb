"""The Architecture page's pieces: a network's diagram, printout and layer table, and the four side by side."""

from __future__ import annotations

import streamlit as st

from ..diagram import LEVELS, diagram, to_dot
from ..models import EXTRA_KEYS, KEYS, label, spec
from . import resources, share

NETWORKS = KEYS + EXTRA_KEYS
SIDE_BY_SIDE = "The four side by side"
VIEWS = [label(k) for k in NETWORKS] + [SIDE_BY_SIDE]
DEPTH = {"blocks": 2, "every layer": None}  # the layer table follows the diagram's level
LEGEND = ("Read top to bottom; every edge carries the shape of the tensor on it (channels x height x width), "
          "traced through the network's own modules. :orange[Orange dashed edges] go around a block: a "
          "shortcut (marked *identity* where it adds the input unchanged, through a box where a 1x1 "
          "projection reshapes it), the input a dense layer concatenates to its own output, or the residual "
          "branch passing around the SE gate to be scaled. *conv 3x3 /2*: stride 2. Hover a box for the "
          "modules it draws.")


@st.cache_data(show_spinner=False)
def dot(key: str, level: str) -> str:
    return to_dot(diagram(key, level))


def choose_level() -> str:
    share.check("level", LEVELS, "the level")
    return st.segmented_control(
        "Detail", LEVELS, default="blocks", key="level", bind="query-params", required=True,
        help="blocks: each residual block, dense layer or transition as one box; every layer: each module")


def network_tabs() -> list:
    share.check("network", VIEWS, "the network")
    return st.tabs(VIEWS, key="network", bind="query-params")


def one_network(key: str, level: str) -> None:
    info = resources.overview(key)
    st.markdown(spec(key).description)
    st.caption(f"Class `{info['class']}` · {info['params']:,} parameters")
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown(f"**Block diagram** ({level})")
        st.graphviz_chart(dot(key, level), width="content")
    with right:
        st.caption(LEGEND)
        st.markdown("**Layers, traced on one 32x32 image**")
        st.dataframe(resources.layers(key, DEPTH[level]), hide_index=True, width="stretch", column_config={
            # DenseNet's dotted names are long: the name gets the room, the numbers need little
            "layer": st.column_config.TextColumn("layer", width="medium"), "type": "type",
            "output": st.column_config.TextColumn("output", width="small", help="channels x height x width"),
            "params": st.column_config.NumberColumn("parameters", format="localized", width="small")})
        st.caption("Functions called inside forward() (ReLU via F.relu, the residual addition, DenseNet's "
                   "concatenation) are not modules, so they have no row; the diagram draws them.")
    # The printout is as wide as the report's (lines of ~100 characters): it gets the full width.
    st.markdown("**`print(model)`**")
    st.code(info["printout"], language=None, height=min(420, 24 * (info["printout"].count("\n") + 2)))


def side_by_side(level: str) -> None:
    st.caption(LEGEND)
    # Two by two, each drawing at its own natural size, so all four share one scale (a deeper network is
    # taller, a wider one wider, as they are) and the text stays legible: the four in one drawing, fitted to
    # the page, had text about 6 px high at 1400 px.
    for row in (KEYS[:2], KEYS[2:]):
        for col, key in zip(st.columns(2, gap="large"), row, strict=True):
            with col:
                st.markdown(f"**{label(key)}** · {resources.overview(key)['params']:,} parameters")
                st.graphviz_chart(dot(key, level), width="content")
