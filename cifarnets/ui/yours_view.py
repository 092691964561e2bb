"""Your network in the app: added on Classify (an ONNX file, a checkpoint zip, or a Hub id), kept in this browser
session's state only, in memory (it goes with the session; a checkpoint zip's files touch the disk only in a private
temporary folder, while the strict loader reads them), and shown beside the four on every page that can show it,
or with one line saying why not."""

from __future__ import annotations

import math

import streamlit as st

from ..errors import UserError
from ..models import ALL_KEYS, label
from ..paths import public, public_limits
from ..store.checkpoints import Entry
from ..store.curves import Curve
from ..yours import YourNetwork, accuracy, anatomy, load_network
from ..yours.onnxfile import MAX_BYTES

KEY = "your_network"  # st.session_state: the YourNetwork, while the visitor keeps it
MEASURING = "your_accuracy"  # st.session_state: its test-split accuracy.Measurement, once asked for
DEPTH = {"blocks": 2, "every layer": None}  # as architecture_view's: the layer table follows the diagram's level
WAYS = {"ONNX file": "onnx", "Checkpoint zip": "zip", "Hub repository": "hub"}


def current() -> YourNetwork | None:
    return st.session_state.get(KEY)


def with_yours(found: dict[str, Entry]) -> dict[str, Entry]:
    """The four, and this session's network after them (a new dict: the shared one is never changed)."""
    network = current()
    return found | {network.name: network.entry()} if network else found


def why_not(view: str) -> None:
    """One plain line where this session's network has no `view`; nothing when it has one or there is none."""
    network = current()
    if network and network.why_not(view):
        st.caption(network.why_not(view))


def _remove() -> None:
    st.session_state.pop(KEY, None)
    measuring = st.session_state.pop(MEASURING, None)
    if measuring is not None:
        measuring.stop.set()  # the background measurement ends at its next batch


def _upload_mb() -> int:
    """The largest upload: 50 MB, or public mode's cap on any file where that is smaller. That cap is the
    server's own (ui/guard.py): Streamlit's upload route enforces server.maxUploadSize alone, for every
    uploader, and a widget's max_upload_size only in the browser, so this uploader cannot take more."""
    cap = MAX_BYTES / 2**20
    return math.ceil(min(cap, public_limits().upload_mb) if public() else cap)


def _cap_line() -> None:
    """Says plainly when this server's upload cap, not the 50 MB limit, bounds a model (public mode)."""
    if _upload_mb() < MAX_BYTES / 2**20:
        st.caption(f"This server takes models up to {_upload_mb()} MB, its cap on every upload (a ResNet-18 "
                   "is about 43 MB): its operator raises it with CIFARNETS_UPLOAD_MB, up to 50.")


def adder() -> None:
    """The "Your network" expander: add one network, or see and remove the one there is."""
    network = current()
    with st.expander(f"Your network: {network.name}" if network else "Your network: compare your own with the four",
                     expanded=False):
        if network:
            st.markdown(f"**{network.name}**: {network.source}, {network.params:,} parameters. It answers beside the "
                        "four on Classify and the Stress test, and shows on Architecture"
                        + (" and Training curves." if network.history else "."))
            for view, why in network.unavailable.items():
                st.caption(f"No {view}: {why}.")
            accuracy_line(network)
            st.button("Remove", key="your_remove", on_click=_remove, icon=":material/delete:")
            return
        _form()


def accuracy_line(network: YourNetwork) -> None:
    """Its test-split accuracy as Classify answers: a button that measures it in the background, its progress,
    then the figure; or one line saying why it cannot be measured here."""
    measuring = st.session_state.get(MEASURING)
    if measuring is None:
        if public():
            st.caption("No test-split accuracy: on a public server measuring it would hold a processor for "
                       "minutes per visitor, so it is measured only where the app runs for one user.")
        elif not accuracy.data_present():
            st.caption("No test-split accuracy: CIFAR-10 is not on this machine (put it where the sidebar's "
                       "training finds its data, and it can be measured here).")
        elif st.button("Measure its test accuracy (10,000 images, in the background)", key="your_measure"):
            st.session_state[MEASURING] = accuracy.start(network.answerer, network.entry().classes)
            st.rerun()
        return
    if measuring.running:
        _progress()
    elif measuring.error:
        st.caption(f"Its test-split accuracy could not be measured: {measuring.error}.")
    else:
        network.config["metrics"] = {"test_acc": measuring.accuracy, "n": measuring.done}
        st.markdown(f"Test accuracy as Classify answers: **{measuring.accuracy:.2%}** on {measuring.done:,} test "
                    f"images (measured here in {measuring.seconds:.0f} s).")


@st.fragment(run_every=1.0)
def _progress() -> None:
    """Polls the background measurement each second; when it ends, the whole page shows the figure."""
    measuring = st.session_state.get(MEASURING)
    if measuring is None or not measuring.running:
        st.rerun(scope="app")
    share = measuring.done / measuring.total if measuring.total else 0.0
    st.progress(share, text=f"Measuring its test accuracy: {measuring.done:,} of {measuring.total or 10_000:,} "
                            "images")


def _form() -> None:
    st.caption("Bring any CIFAR-10 classifier: an ONNX file (1 x 3 x 32 x 32 floats in, 10 logits out), a "
               "cifarnets checkpoint zip (as Training curves downloads one), or a Hugging Face Hub repository. It "
               "stays in this browser session only, and goes when the session ends.")
    way = st.segmented_control("From", list(WAYS), default="ONNX file", key="your_way", required=True)
    name = st.text_input("Its name", key="your_name", max_chars=40, placeholder="e.g. my ResNet-18")
    raw, source = None, ""
    options = {}
    if WAYS[way] == "hub":
        source = st.text_input("Repository", key="your_repo", placeholder="OWNER/NAME or OWNER/NAME@REVISION")
    else:
        kind = WAYS[way]
        upload = st.file_uploader(f"The {'.onnx' if kind == 'onnx' else '.zip'} file", key=f"your_{kind}",
                                  type=["onnx"] if kind == "onnx" else ["zip"], max_upload_size=_upload_mb())
        _cap_line()
        if upload is not None:
            raw, source = upload.getvalue(), upload.name
        if kind == "onnx":
            options = _onnx_options()
    if st.button("Add it", key="your_add", type="primary", disabled=not (name.strip() and source)):
        _add(source, name, raw, options)


def _onnx_options() -> dict:
    left, mid, right = st.columns(3)
    mean = left.text_input("Mean (R, G, B)", key="your_mean", placeholder="CIFAR-10's: 0.4914, 0.4822, 0.4465",
                           help="What your network subtracts from pixels in 0..1. Your file's own metadata, or "
                                "CIFAR-10's, when left empty.")
    std = mid.text_input("Std (R, G, B)", key="your_std", placeholder="CIFAR-10's: 0.2470, 0.2435, 0.2616")
    classes = right.text_input("Class order", key="your_classes", placeholder="CIFAR-10's: airplane, ..., truck",
                               help="The classes of its 10 outputs, in order, separated by commas.")
    return {"mean": split(mean) if mean.strip() else None, "std": split(std) if std.strip() else None,
            "classes": split(classes) if classes.strip() else None}


def split(text: str) -> list[str]:
    return [v.strip() for v in text.split(",")]


def _add(source: str, name: str, raw: bytes | None, options: dict) -> None:
    taken = [*ALL_KEYS, *(label(k) for k in ALL_KEYS)]
    hub = raw is None
    try:
        with st.spinner(f"Checking and loading {source}..."):
            network = load_network(("hf://" + source.strip().removeprefix("hf://")) if hub else source, name,
                                   raw=raw, allow_local=not public(), taken=taken, **options)
    except UserError as e:
        st.error(str(e))
        return
    st.session_state[KEY] = network
    st.rerun()


# ---------------------------------------------------------------- the other pages

def attackable(entries: dict[str, Entry]) -> dict[str, Entry]:
    """The networks an attack can be made against: all but one answering through onnxruntime (no gradients)."""
    network = current()
    return {k: e for k, e in entries.items() if not (network and k == network.name and not network.gradients)}


def curves() -> list[Curve]:
    """This session's network's history as a curve, in its architecture's colour, when a history came with it."""
    network = current()
    if not network or not network.history or not network.architecture:
        return []
    return [Curve(network.architecture, f"your network {network.name}", network.history, network.entry().test_acc)]


def architecture_section(level: str, dot) -> None:
    """Your network on Architecture: its diagram (its architecture's, for a checkpoint of one of ours; drawn from
    the graph, for an ONNX file), layer table, parameters and MACs, and its printout; a plain line for whatever it
    cannot show. `dot`: the page's diagram maker for our networks, by key and level."""
    network = current()
    if network is None:
        st.caption("Add your own network on Classify, and it shows here too.")
        return
    st.markdown(f"**{network.name}**: {network.source}")
    macs = anatomy.total_macs(network)
    st.caption(f"{network.params:,} parameters" + (f" · {macs / 1e6:,.1f} M multiply-accumulates for one 32x32 image "
                                                   "(convolutions and linear layers)" if macs is not None else ""))
    for view in ("block diagram", "layer table", "FLOPs"):
        why_not(view)
    left, right = st.columns(2, gap="large")
    drawn = network.architecture or network.diagrams
    if network.architecture:
        with left:
            st.markdown(f"**Block diagram** ({level}): a {label(network.architecture)}, as ours")
            st.graphviz_chart(dot(network.architecture, level), width="content")
    elif network.diagrams:
        with left:
            st.markdown(f"**Block diagram** ({level}), drawn from its ONNX graph")
            st.caption("Read as ours: a box per layer (activations folded in), the output's shape on each edge, "
                       ":orange[orange dashed edges] around a block. **× N**: N identical blocks in a row, drawn "
                       "once.")
            st.graphviz_chart(network.diagrams[level], width="content")
    rows = anatomy.layer_rows(network, DEPTH.get(level) if network.architecture else None)
    if rows:
        with right if drawn else left:
            st.markdown("**Layers, traced on one 32x32 image**")
            st.dataframe(rows, hide_index=True, width="stretch", key="your_layers")
    if anatomy.printout(network):
        st.markdown("**`print(model)`**")
        st.code(anatomy.printout(network), language=None, height=320)
