"""What every stage sees: for one image, the feature maps after every stage of the four networks, side by side."""

from __future__ import annotations

import streamlit as st

from ...analysis import why_sentences
from ...analysis.stages import SCALES, StageMaps, page, page_image, stage_maps
from ...data.loader import batch
from ...predict import Prepared
from ...store.checkpoints import Entry
from .. import resources
from ..pictures import enlarge
from . import looks

PER_PAGE = (8, 16, 32)


def _ranges(widest: int, per_page: int) -> list[str]:
    return [f"{i + 1}–{min(i + per_page, widest)}" for i in range(0, widest, per_page)]


def _controls(image: Prepared, widest: int) -> tuple[int, int, str]:
    """The input as the networks see it, and (first rank shown, channels per stage, colour scale)."""
    # The two toggles share a column: in a column of its own the colour scale's "each channel" ran past its
    # edge at 700 to 1100 px wide (a phone held sideways, a tablet).
    picture, left, middle = st.columns([1, 3, 4])
    picture.image(enlarge(image.pixels, 96), caption="the 32x32 input", width=96)
    per_page = left.segmented_control("Channels per stage", PER_PAGE, default=PER_PAGE[0], key="stages_per_page",
                                      required=True)
    ranges = _ranges(widest, per_page)
    # One slider for every stage, so ranks 9-16 of each network sit side by side; keyed by the page size,
    # whose ranges it lists.
    shown = middle.select_slider("Channels ranked (1 is the most active)", ranges, value=ranges[0],
                                 key=f"stages_ranks_{per_page}")
    scale = left.segmented_control("Colour scale", SCALES, default=SCALES[0], key="stages_scale", required=True,
                                   help="each stage: one scale for all of a stage's channels, so weak channels "
                                        "look weak; each channel: every map stretched on its own, so its "
                                        "pattern shows however faint")
    return ranges.index(shown) * per_page, per_page, scale


def _stage(stage: StageMaps, start: int, count: int, scale: str) -> None:
    chosen = page(stage, start, count)
    if not len(chosen):
        st.caption(f"**{stage.name}** · {stage.shape}: all {stage.channels} channels are on earlier pages")
        return
    st.caption(f"**{stage.name}** · {stage.shape} · ranks {start + 1}–{start + len(chosen)} of {stage.channels}")
    st.image(page_image(stage, start, count, scale), width="stretch",
             caption="channels " + " ".join(f"#{c}" for c in chosen))


def render(entries: dict[str, Entry]) -> None:
    st.markdown("For the chosen image, each network's feature maps after every stage: the CNN's two "
                "convolutions, the ResNets' stem and three stages, DenseNet's stem, dense blocks and "
                "transitions. Channels come most active first (mean absolute activation); bright is a "
                "strong response. Computed as you look, from the networks the app classifies with.")
    image = looks.pick_image("stages")
    loaded = {k: e for k, e in entries.items() if e.ok}
    if image is None or not loaded:
        if not loaded:
            resources.notice_missing(entries)
        return
    x = batch([image.pixels])
    stages = {key: stage_maps(entry.model, x) for key, entry in loaded.items()}
    start, per_page, scale = _controls(image, max(s.channels for found in stages.values() for s in found))
    missing = [e.label for e in entries.values() if not e.ok]
    if missing:
        st.caption(f"Not shown: {', '.join(missing)} (no checkpoint loaded; the Home page says why).")
    shapes = {loaded[k].label: [tuple(s.maps.shape) for s in found] for k, found in stages.items()}
    st.markdown(why_sentences.stages(shapes))
    for col, (key, entry) in zip(st.columns(len(entries)), loaded.items(), strict=False):
        with col:
            st.markdown(f"**{entry.label}**")
            for stage in stages[key]:
                _stage(stage, start, per_page, scale)
