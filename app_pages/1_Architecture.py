"""Architecture: each network drawn from its own modules, its printout and layer table, and how they compare."""

import streamlit as st

from cifarnets.ui import architecture_view as view
from cifarnets.ui import resources, share, yours_view
from cifarnets.ui.charts import params_chart

st.title("Architecture")
st.caption("The four networks exactly as the report printed them, drawn from their own modules, and what "
           "happens to one 32x32 image inside. The view (network and detail) is in the address: share the link.")
share.check_unknown(["network", "level"])
st.altair_chart(params_chart(resources.param_counts()), width="stretch")

level = view.choose_level()
tabs = view.network_tabs()
for tab, key in zip(tabs[:-1], view.NETWORKS, strict=True):
    with tab:
        view.one_network(key, level)
with tabs[-1]:
    view.side_by_side(level)

st.header("Your network")
yours_view.architecture_section(level, view.dot)
