"""Why they differ: the report's closing claims about the four networks, measured."""

import streamlit as st

from cifarnets.analysis import analysisfile
from cifarnets.paths import checkpoints_dir
from cifarnets.ui import resources, share
from cifarnets.ui.why import common, cost, gradients, looks, quality, reuse, stages, unfamiliar

st.title("Why they differ")
st.markdown("The report ends by explaining its results: plain networks lose gradient as they deepen, shortcuts and "
            "dense connections keep it flowing, DenseNet reuses features with fewer parameters, SE blocks add "
            "channel attention. It shows no evidence. Here each claim is measured; the text under each tab is "
            "written from the numbers, and says so where they disagree with the report.")
entries = resources.entries()
if resources.adopted_note(entries):  # the live tabs answer with the user's runs; the stored ones are the shipped
    st.caption(resources.adopted_note(entries) + " Tabs measured ahead of time show the shipped networks.")
nets = common.networks()
common.status(nets)

TABS = ["Gradient flow", "Cost", "Quality", "What they look at", "What every stage sees", "Feature reuse",
        "Unfamiliar inputs"]
share.check("tab", TABS, "the tab")
# The open tab is in the URL, and only the open tab is drawn: a switch reruns the page, and the other six
# tabs (Grad-CAM, stage maps, a heat map of every layer and epoch) cost nothing until they are opened.
tabs = st.tabs(TABS, key="tab", bind="query-params", on_change="rerun")
renders = [lambda: gradients.render(nets), lambda: cost.render(nets, entries),
           lambda: quality.render(nets, analysisfile.read(checkpoints_dir())), lambda: looks.render(entries, nets),
           lambda: stages.render(entries), lambda: reuse.render(entries), lambda: unfamiliar.render(entries)]
for tab, render in zip(tabs, renders, strict=True):
    if tab.open:
        with tab:
            render()
