"""Training curves: loss and accuracy per epoch for the shipped checkpoints and the user's runs."""

import altair as alt
import streamlit as st

from cifarnets.paths import checkpoints_dir
from cifarnets.store import curves
from cifarnets.ui import resources, runs_view, yours_view
from cifarnets.ui.charts import curves_chart

st.title("Training curves")
shipped = curves.shipped_curves(checkpoints_dir())
runs = [r for r in resources.visitor().list_runs() if r.state not in ("starting",)]  # public: this session's
with_history = [r for r in runs if r.history()]

arrangement, splits, picked = runs_view.controls(with_history)  # in the URL: a link restores the view
runs_view.missing_shipped(shipped)
chosen = shipped + [curves.Curve(r.model, f"your run {r.name}", r.history(), r.test_acc) for r in picked]
chosen += yours_view.curves()  # the network added on Classify, when a history came with it
yours_view.why_not("training curves")
rows = [r for r in curves.long_rows(chosen) if r["split"] in splits]
if not rows:
    st.info("Nothing to draw: no history is selected (pick a split to show, or train a run from the sidebar).")
else:
    st.caption("Solid lines: the test split. Dashed lines: the training split. Hover a line for its values; click "
               "a legend entry to show that curve alone (shift-click for more, click beside the entries for all). "
               "Test accuracy here is of each image alone, like the report's; the accuracy on Home averages "
               "several views of each image, as Classify does, and is 1.5 to 3 points higher.")
    log_epochs = st.toggle("Log-scaled epoch axis", value=curves.spread(chosen), key="curves_log",
                           help="Spreads out the first epochs, so a 10-epoch run is not squeezed into the first "
                                "sliver of a 150-epoch axis. On by default when the runs shown differ that much.")
    for metric in ("accuracy", "loss"):
        st.subheader(metric.capitalize())
        chart = curves_chart(rows, metric, side_by_side=arrangement == "side by side", log_epochs=log_epochs)
        st.altair_chart(chart, width="content" if isinstance(chart, alt.FacetChart) else "stretch")
    runs_view.curve_summary(chosen)

st.subheader("Take the results away")
runs_view.downloads(chosen, runs)

st.header("Your runs")
runs_view.runs_table(runs)
st.subheader("Which checkpoint each network classifies with")
runs_view.active_pickers(runs)
