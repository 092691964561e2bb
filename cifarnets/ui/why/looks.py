"""What each network looks at, for one image: Grad-CAM, the first convolution, and the SE-ResNet's channel weights."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ...analysis import filters, gradcam, se, why_sentences
from ...analysis import render as drawing  # the module; this one's render() draws the tab
from ...analysis.collect import Network
from ...data.loader import batch
from ...predict import Prepared, probabilities
from ...store.checkpoints import Entry
from ...yours import anatomy
from .. import pictures, resources, yours_view
from ..pictures import enlarge
from . import why_charts
from .common import side_by_side

SIZE = 150  # pixels a side for each picture
OWN = "each network's own answer"


def pick_image(key: str = "why") -> Prepared | None:
    """An example (its choice is in the URL, as `<key>_example`) or the user's own image (not in the URL)."""
    return pictures.pick_image(f"{key}_example", f"{key}_upload", "cifar10-test-cat.jpg")


def render(entries: dict[str, Entry], nets: dict[str, Network]) -> None:
    st.markdown("For one image at a time, computed as you choose it.")
    image = pick_image()
    loaded = {k: e for k, e in entries.items() if e.ok}
    if image is None or not loaded:
        if not loaded:
            resources.notice_missing(entries)
        return
    missing = [e.label for e in entries.values() if not e.ok]
    if missing:
        st.caption(f"Not shown: {', '.join(missing)} (no checkpoint loaded; the Home page says why).")
    x = batch([image.pixels])
    _cams(image, x, loaded)
    _first_conv(x, loaded)
    if "se_resnet" in loaded:
        _se(x, loaded["se_resnet"], nets["se_resnet"])


def _cams(image: Prepared, x, loaded: dict[str, Entry]) -> None:
    st.markdown("**Grad-CAM.** Where in the image the evidence for a class lies, for each network: its last "
                "feature map, weighted by how much each channel raises that class's score, kept where positive. "
                "Bright: most evidence; each map is scaled to its own maximum.")
    classes = next(iter(loaded.values())).classes
    target = st.selectbox("Evidence for", [OWN, *classes], key="why_cam_target")
    probs = probabilities(loaded, x)
    network = yours_view.current()
    # The image, then a place per network (and one for yours): pictures keep their size however many are loaded.
    cols = st.columns(6 if network else 5)
    cols[0].image(enlarge(image.pixels, SIZE), caption="what the networks see (32x32)", width=SIZE)
    heats = {}
    for col, (key, entry) in zip(cols[1:], loaded.items(), strict=False):
        top = int(probs[key][0].argmax())
        cls = top if target == OWN else classes.index(target)
        cam = gradcam.grad_cam(entry.model, x, cls)
        heats[entry.label] = cam.heat
        col.image(drawing.overlay(image.pixels, cam.heat, SIZE), width=SIZE, caption=(
            f"{entry.label}: says {classes[top]} ({float(probs[key][0, top]):.0%}); map for {classes[cls]} "
            f"from a {cam.grid[0]}x{cam.grid[1]} feature map"))
    if network:
        _your_cam(cols[-1], image, x, network, target, heats)
    if text := why_sentences.cams(heats):
        st.markdown(text)


def _your_cam(col, image: Prepared, x, network, target: str, heats: dict) -> None:
    """This session's network beside the four: on its last convolution, or one line saying why not."""
    classes = network.entry().classes
    probs = probabilities({network.name: network.entry()}, x)[network.name]
    top = int(probs[0].argmax())
    cls = top if target == OWN else classes.index(target)
    cam = anatomy.cam(network, x, cls)
    if isinstance(cam, str):
        col.caption(f"{network.name}: no Grad-CAM, because {cam}.")
        return
    heats[network.name] = cam.heat
    where = "" if network.architecture else ", its last convolution's"
    col.image(drawing.overlay(image.pixels, cam.heat, SIZE), width=SIZE, caption=(
        f"{network.name}: says {classes[top]} ({float(probs[0, top]):.0%}); map for {classes[cls]} from a "
        f"{cam.grid[0]}x{cam.grid[1]} feature map{where}"))


def _first_conv(x, loaded: dict[str, Entry]) -> None:
    st.markdown("**The first convolution.** Its filters (each scaled on its own, so its pattern shows, not its "
                "strength) and what each makes of this image.")
    key = st.segmented_control("Network", list(loaded), default=next(iter(loaded)), key="why_conv_net",
                               format_func=lambda k: loaded[k].label, required=True)
    model = loaded[key].model
    name, conv = filters.first_conv(model)
    maps = filters.feature_maps(model, x)
    left, right = st.columns(2)
    left.image(filters.filter_image(model), caption=f"{conv.out_channels} filters of {conv.kernel_size[0]}x"
               f"{conv.kernel_size[1]}x3 ({name})")
    right.image(filters.feature_image(maps), caption=f"their {maps.shape[0]} feature maps, {maps.shape[1]}x"
                f"{maps.shape[2]} (bright: strong response)")


def _se(x, entry: Entry, net: Network) -> None:
    st.markdown("**SE-ResNet's channel attention.** Each SE block's weight (0 to 1) for every channel of its "
                "residual branch, for this image.")
    weights = se.gates(entry.model, x)
    rows = [{"block": b, "channel": i, "weight": float(v)} for b, w in weights.items() for i, v in enumerate(w)]
    side_by_side(why_charts.channels(rows, "weight", "SE block"), per_row=2)
    means = (net.fresh_record or {}).get("se_class_means")
    if not means:
        st.caption("How the weights differ between classes needs the per-class means from the analyze command.")
        return
    classes = entry.classes
    a_col, b_col = st.columns(2)
    a = a_col.selectbox("Class A", classes, index=classes.index("cat") if "cat" in classes else 0, key="why_se_a")
    b = b_col.selectbox("Class B", classes, index=classes.index("dog") if "dog" in classes else 1, key="why_se_b")
    gap = se.class_gap(means, classes.index(a), classes.index(b))
    rows = [{"block": blk, "channel": i, "difference": float(v)} for blk, d in gap.items() for i, v in enumerate(d)]
    st.markdown(f"Mean weight over the test images of **{a}** minus that of **{b}**, per channel "
                f"(largest gap: {max(float(np.abs(d).max()) for d in gap.values()):.3f}).")
    side_by_side(why_charts.channels(rows, "difference", "SE block", diverging=True), per_row=2)
    st.markdown(why_sentences.se_classes(se.class_spread(means)))
