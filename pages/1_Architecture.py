"""Architecture: each network's printout, its layer table, and how the four compare in size."""

import streamlit as st

from cifarnets.architecture import DESCRIPTIONS
from cifarnets.models import KEYS, label
from cifarnets.ui import layout, resources
from cifarnets.ui.charts import params_chart

layout.setup("Architecture")
st.title("Architecture")
st.caption("The four networks exactly as the report printed them, and what happens to one 32x32 image inside.")
st.altair_chart(params_chart(resources.param_counts()), width="stretch")

detail = st.segmented_control("Layer table", ["blocks", "every layer"], default="blocks", key="arch_detail",
                              help="blocks: residual and dense blocks as one row each; every layer: each module")
depth = None if detail == "every layer" else 2

for tab, key in zip(st.tabs([label(k) for k in KEYS]), KEYS, strict=True):
    with tab:
        info = resources.summary(key)
        st.markdown(DESCRIPTIONS[key])
        st.caption(f"Class `{info['class']}` · {info['params']:,} parameters")
        # The printout is as wide as the report's (lines of ~100 characters): it gets the full width.
        st.markdown("**`print(model)`**")
        st.code(info["printout"], language=None, height=min(420, 24 * (info["printout"].count("\n") + 2)))
        st.markdown("**Layers, traced on one 32x32 image**")
        st.dataframe(resources.layers(key, depth), hide_index=True, width="stretch", column_config={
            "layer": "layer", "type": "type", "output": st.column_config.TextColumn("output (C x H x W)"),
            "params": st.column_config.NumberColumn("parameters", format="localized")})
        st.caption("Functions called inside forward() (ReLU via F.relu, the residual addition, DenseNet's "
                   "concatenation) are not modules, so they have no row.")
