"""Why they differ: the report's closing claims about the four networks, measured."""

import streamlit as st

from cifarnets.analysis import store
from cifarnets.paths import checkpoints_dir
from cifarnets.ui import resources, share
from cifarnets.ui.why import common, cost, gradients, looks, quality, reuse, stages, unfamiliar

st.title("Why they differ")
st.markdown("The report ends by explaining its results: plain networks lose gradient as they deepen, shortcuts and "
            "dense connections keep it flowing, DenseNet reuses features with fewer parameters, SE blocks add "
            "channel attention. It shows no evidence. Here each claim is measured; the text under each view is "
            "written from the numbers, and says so where they disagree with the report.")
entries = resources.entries()
if resources.adopted_note(entries):  # the live views answer with the user's runs; the stored ones are the shipped
    st.caption(resources.adopted_note(entries) + " Views measured ahead of time show the shipped networks.")
nets = common.networks()
common.status(nets)

VIEWS = ["Gradient flow", "Cost", "Quality", "What they look at", "What every stage sees", "Feature reuse",
         "Unfamiliar inputs"]
share.check("tab", VIEWS, "the view")
tabs = st.tabs(VIEWS, key="tab", bind="query-params")  # the open tab is in the URL
with tabs[0]:
    gradients.render(nets)
with tabs[1]:
    cost.render(nets, entries)
with tabs[2]:
    quality.render(nets, store.read(checkpoints_dir()))
with tabs[3]:
    looks.render_view(entries, nets)
with tabs[4]:
    stages.render(entries)
with tabs[5]:
    reuse.render(entries)
with tabs[6]:
    unfamiliar.render(entries)
