"""Classify: the user's images through all four networks, side by side."""

import time

import streamlit as st

from cifarnets.predict import classify, summary_rows, uncalibrated
from cifarnets.prose import plural
from cifarnets.store.export import rows_csv
from cifarnets.ui import actions, resources, yours_view
from cifarnets.ui.classify_view import (
    badges_line,
    gather_inputs,
    phone_layout,
    photos_line,
    result_card,
    uncalibrated_note,
)

MAX_CARDS = 24  # past this, the summary table still lists every image

st.title("Classify")
yours_view.adder()  # your own network, beside the four, in this session only
found = yours_view.with_yours(resources.entries())
resources.notice_hub()
resources.notice_missing(found)
actions.answering_notice(found)  # which networks answer from your own runs, and the way back
photos_line(found)
files = gather_inputs()
if not files:
    st.caption("Upload images, pick an example or take a picture: the centre square of each is shrunk to the 32x32 "
               "input the networks were trained on, and all four networks say what they see.")
    st.stop()

tick = time.perf_counter()
results = classify(files, found)
elapsed = time.perf_counter() - tick
loaded = [e.label for e in found.values() if e.ok]
for result in results:  # every refused file says why, however many there are: one line each
    if not result.ok:
        st.error(result.error)
readable = [r for r in results if r.ok]
if readable and loaded:  # a timing only where something was classified
    st.caption(f"{plural(len(readable), 'image')} through {plural(len(loaded), 'network')} in "
               f"{elapsed * 1000:.0f} ms on {resources.device_text()}.")
    badges_line(found)
uncalibrated_note(uncalibrated(found), found)
phone_layout()
for result in readable[:MAX_CARDS]:
    result_card(result, found)
if len(readable) > MAX_CARDS:
    st.caption(f"The first {MAX_CARDS} images are shown in full; the table below has all {len(readable)}.")

rows = summary_rows(results, {k: e.label for k, e in found.items() if e.ok})
if rows and loaded:
    st.subheader("Summary")
    # The image's name stays put while the networks' columns scroll sideways (on a phone, they do not fit).
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "image": st.column_config.TextColumn("image", pinned=True),
        "networks disagree": st.column_config.CheckboxColumn("networks disagree"),
        "all find it unfamiliar": st.column_config.CheckboxColumn("all find it unfamiliar")})
    disputed = [r["image"] for r in rows if r["networks disagree"]]
    st.markdown(f"The networks disagree on **{len(disputed)}** of {plural(len(rows), 'image')}"
                + (f": {', '.join(disputed)}." if disputed else "."))
    st.download_button("Download the summary (CSV)", rows_csv(rows), file_name="classify-summary.csv",
                       mime="text/csv", on_click="ignore", key="summary_csv")
