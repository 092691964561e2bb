"""Quality: per-class accuracy, confusion matrices, calibration, and the test images the networks disagree on."""

from __future__ import annotations

import streamlit as st

from ...analysis import analysisfile, collect, why_sentences
from ...models import label
from ..pictures import enlarge
from . import why_charts
from .common import analyze_command, data_hint

GALLERY_COLUMNS = 5


def render(nets: dict[str, collect.Network], joint: dict | None) -> None:
    st.markdown("Accuracy beyond one number: which classes each network gets right, what it takes for what, "
                "whether its confidence can be trusted, and where the networks part ways. All on the whole test "
                "split, and the first two also on real photos where they are measured.")
    records = collect.quality_records(nets)
    if not records:
        st.info(f"Nothing measured on the test split yet{data_hint()}:")
        st.code(analyze_command(), language="bash")
        return
    classes = collect.classes_of(nets)
    st.markdown(why_sentences.versus_report(records, collect.recipes(nets)))

    photos = collect.photo_records(nets)
    if photos:
        _beside_photos(records, photos, classes)
    else:
        left, right = st.columns(2)
        with left:
            st.markdown("**Accuracy per class**")
            st.altair_chart(why_charts.per_class(collect.per_class_rows(records, classes)), width="stretch")
        with right:
            name = st.segmented_control("Confusion matrix of", list(records), default=list(records)[0],
                                        key="why_confusion", required=True)
            st.altair_chart(why_charts.confusion(collect.confusion_rows(records[name]["confusion"], classes)),
                            width="stretch")
    st.markdown(why_sentences.per_class(records, classes))

    st.markdown("**Calibration.** Test images grouped by the network's confidence (its top probability), against "
                "how often it is right in each group. On the dashed diagonal a network is right exactly as often as "
                "it is confident.")
    st.altair_chart(why_charts.reliability(collect.reliability_rows(records)), width="stretch")
    st.markdown(why_sentences.calibration(records, collect.label_smoothing(nets)))
    _gallery(joint, classes)


def _beside_photos(records: dict[str, dict], photos: dict[str, dict], classes: list[str]) -> None:
    """Per-class accuracy and the confusions on the test split beside those on real photos (analyze's)."""
    first = next(iter(photos.values()))
    n = sum(first["per_class_n"])
    st.markdown(f"Beside the test split, the same measures on {n} real photos of the ten classes (prepared as "
                f"Classify prepares an upload; uneven: {min(c for c in first['per_class_n'] if c)} to "
                f"{max(first['per_class_n'])} a class, so the photos' per-class figures are each class's own share).")
    left, right = st.columns(2)
    with left:
        st.markdown("**Accuracy per class: test split**")
        st.altair_chart(why_charts.per_class(collect.per_class_rows(records, classes)), width="stretch")
    with right:
        st.markdown(f"**Accuracy per class: {n} real photos**")
        st.altair_chart(why_charts.per_class(collect.per_class_rows(photos, classes)), width="stretch")
    name = st.segmented_control("Confusion matrices of", list(records), default=list(records)[0],
                                key="why_confusion", required=True)
    left, right = st.columns(2)
    with left:
        st.markdown("**Test split**")
        st.altair_chart(why_charts.confusion(collect.confusion_rows(records[name]["confusion"], classes)),
                        width="stretch")
    with right:
        st.markdown("**Real photos**")
        if name in photos:
            st.altair_chart(why_charts.confusion(collect.confusion_rows(photos[name]["confusion"], classes)),
                            width="stretch")
        else:
            st.caption(f"{name} has no current measurement on real photos.")
    st.markdown(why_sentences.photo_gaps(records, photos, classes))


def _gallery(joint: dict | None, classes: list[str]) -> None:
    st.markdown("**Where they disagree**")
    if not joint or not joint.get("disagreement"):
        st.caption("Needs test-split predictions of at least two networks, from the analyze command.")
        return
    st.markdown(why_sentences.agreement(joint))
    names = joint.get("classes", classes)
    items = joint["disagreement"]
    for start in range(0, len(items), GALLERY_COLUMNS):
        for col, item in zip(st.columns(GALLERY_COLUMNS), items[start:start + GALLERY_COLUMNS], strict=False):
            with col:
                st.image(enlarge(analysisfile.png_pixels(item["png"]), 96), caption=f"true: {names[item['label']]}")
                lines = []
                for key, p in item["predictions"].items():
                    mark = "✓" if p["class"] == item["label"] else "✗"
                    lines.append(f"{mark} {label(key)}: {names[p['class']]} {p['prob']:.0%}")
                st.caption("  \n".join(lines))
