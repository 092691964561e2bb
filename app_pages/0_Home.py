"""Home: the four networks at a glance."""

import streamlit as st

from cifarnets import answering
from cifarnets.store.checkpoints import training_summary
from cifarnets.ui import resources

st.title("Four CIFAR-10 networks, side by side")
st.markdown(
    "A student report compared four image classifiers on CIFAR-10 (32x32 photos in ten classes): a plain "
    "**CNN**, a small **ResNet**, a small **DenseNet** and an **SE-ResNet**. Here they are: their "
    "architectures, their training curves, and your own images to try them on.")
found = resources.entries()
resources.notice_hub()
counts = {row["network"]: row["params"] for row in resources.param_counts()}
for col, entry in zip(st.columns(4), found.values(), strict=True):
    with col.container(border=True):
        st.subheader(resources.answerer_label(entry))
        st.metric("Parameters", f"{counts[entry.label]:,}")
        if entry.ok:
            st.metric("Test accuracy", f"{entry.test_acc:.1%}" if entry.test_acc is not None else "n/a",
                      help=f"On the 10,000 test images, {answering.views_in_words(answering.VIEWS)}, as Classify does. "
                           "The training curves show each image alone, 1.5 to 3 points lower.")
            photos = entry.record.photos  # measured as Classify answers now, or None
            if photos:
                lo, hi = photos.interval
                st.metric("Real photos", f"{photos.accuracy:.0%}",
                          help=f"{photos.correct} of {photos.n} full-size photos of the ten classes right "
                               f"({photos.classes} classes, each counting equally; 90% interval {lo:.0%} to "
                               f"{hi:.0%}), prepared as Classify prepares an upload. Photos are "
                               "harder than CIFAR-10's own test images (docs/photos.md).")
                st.caption(f"{photos.correct} of {photos.n} photos; 90% interval {lo:.0%} to {hi:.0%}")
            st.caption(f"From {resources.source_text(entry)}: {training_summary(entry.config)}.",
                       help=(entry.config.get("recipe") or {}).get("note") or None)
        else:
            st.warning(f"No checkpoint loaded: {entry.reason}")
st.caption(f"Device in use: **{resources.device_text()}**")

st.subheader("What each page offers")
st.page_link("app_pages/1_Architecture.py", label="Architecture", icon=":material/account_tree:")
st.caption("Each network's exact printout, a layer-by-layer table with output shapes and parameters, "
           "and how their sizes compare.")
st.page_link("app_pages/2_Training_curves.py", label="Training curves", icon=":material/show_chart:")
st.caption("Loss and accuracy per epoch, train and test, for the shipped checkpoints and your own runs; "
           "choose which checkpoint each network classifies with.")
st.page_link("app_pages/3_Classify.py", label="Classify", icon=":material/image_search:")
st.caption("Upload images, take a picture or pick an example, and see all four networks classify them.")
st.page_link("app_pages/4_Why_they_differ.py", label="Why they differ", icon=":material/query_stats:")
st.caption("The report's claims measured: gradient flow with depth, cost, calibration and mistakes, "
           "what each network looks at, and how DenseNet reuses its features.")
st.page_link("app_pages/5_Stress_test.py", label="Stress test", icon=":material/bolt:")
st.caption("Break the four side by side: one image under CIFAR-10-C's corruptions and under adversarial attacks, "
           "where each answer gives way, and their robustness measured on the test split.")
st.caption("The sidebar, on every page, trains any network while you watch it learn.")
