"""Pictures for the browser: the 32x32 input as a person can see it, a photo small enough to send, the one
way any page takes a visitor's files (uploader and camera) within public mode's caps, and the one picker of
a single image that the Why they differ views and the Stress test page share."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st
from PIL import Image
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from ..data.images import EXTENSIONS, ImageError
from ..examples import list_examples
from ..paths import PublicLimits
from ..predict import Prepared, prepare, read_file
from . import resources, share


def enlarge(pixels: np.ndarray, size: int = 128) -> Image.Image:
    """The 32x32 input blown up with hard pixel edges, so a person sees exactly what the networks see."""
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST)


def preview(image: Image.Image, side: int = 480) -> Image.Image:
    """A copy small enough to send to the browser; a 12-megapixel photo need not travel whole."""
    small = image.copy()
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    return small


# ---------------------------------------------------------------- a visitor's files, within the caps

def uploader(where, label: str, key: str, multiple: bool = False) -> list[tuple[str, bytes]]:
    """The one file uploader of every page, and (name, bytes) of what it holds within the caps.

    In public mode a file over the per-file cap never reaches the server: the widget's own limit stops it in the
    browser, and server.maxUploadSize (the same cap: ui/guard.py) at the server. More files than the
    cap are refused before any is read: the uploader starts empty again and the server lets their bytes go."""
    limits = _limits()
    turn = st.session_state.get(f"{key}__turn", 0)  # a new key empties the uploader, and drops its files
    files = where.file_uploader(label, type=EXTENSIONS, accept_multiple_files=multiple,
                                key=key if not turn else f"{key}__{turn}",
                                max_upload_size=math.ceil(limits.upload_mb) if limits else None)
    return _taken([f for f in (files if multiple else [files]) if f is not None], key, limits)


def camera(where, key: str) -> list[tuple[str, bytes]]:
    """The camera's picture, within the same caps as an upload (a hostile client can send any bytes as one)."""
    picture = where.camera_input("Camera", key=key)
    return _taken([picture] if picture is not None else [], key, _limits())


def within_caps(files: list, limits: PublicLimits) -> tuple[list, list[str]]:
    """Public mode's caps, judged on the files' sizes alone (nothing read): (the files kept, one line per
    refusal). Past the count, none is kept. Sizes in MB of 10**6 bytes, as the uploader shows them."""
    if len(files) > limits.images:
        return [], [f"This demo takes at most {limits.images} images at once, and {len(files)} came: none was "
                    "read. Choose fewer."]
    cap = int(limits.upload_mb * 2**20)
    return ([f for f in files if f.size <= cap],
            [f"{f.name}: {f.size / 1e6:.1f} MB, over this demo's limit of {math.ceil(limits.upload_mb)} MB per "
             "image" for f in files if f.size > cap])


def _limits() -> PublicLimits | None:
    visitor = resources.visitor()
    return visitor.limits if visitor.public else None


def _taken(files: list, key: str, limits: PublicLimits | None) -> list[tuple[str, bytes]]:
    if limits is None:  # the local user is trusted
        return [(f.name, f.getvalue()) for f in files]
    if refused := st.session_state.pop(f"{key}__refused", None):
        st.error(refused)  # said on the run after the uploader was emptied
    kept, refused = within_caps(files, limits)
    if len(files) > limits.images:
        _let_go(files)
        st.session_state[f"{key}__refused"] = refused[0]
        st.session_state[f"{key}__turn"] = st.session_state.get(f"{key}__turn", 0) + 1
        st.rerun()
    for line in refused:
        st.error(line)
    return [(f.name, f.getvalue()) for f in kept]


def _let_go(files: list) -> None:
    """Drop the files' bytes from the server's store of uploads now, not when the session ends."""
    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return
    for f in files:
        Runtime.instance().uploaded_file_mgr.remove_file(ctx.session_id, f.file_id)


def pick_image(example_key: str, upload_key: str, default: str, camera_key: str | None = None) -> Prepared | None:
    """A bundled example (its choice is in the URL, under `example_key`), the user's own upload or, where
    `camera_key` is given, the camera (neither of those in the URL). A bad file gets one line, and None."""
    examples = list_examples()
    share.check(example_key, examples, "the example", format_func=lambda e: e.caption)
    left, right = st.columns([2, 3])
    index = next((i for i, e in enumerate(examples) if e.name == default), 0)
    own = uploader(right, "Or your own image (a shared link keeps the example, not your image)", upload_key)
    camera_on = bool(camera_key) and bool(st.session_state.get(f"{camera_key}_on"))
    # Greyed out while the visitor's own picture is the one in use: a box still reading "ship" misled.
    example = left.selectbox("Example image", examples, index=index, format_func=lambda e: e.caption,
                             key=example_key, bind="query-params", disabled=bool(own) or camera_on)
    if camera_key and left.toggle("Use the camera", key=f"{camera_key}_on"):
        own = [("camera.jpg", raw) for _, raw in camera(st, camera_key)] or own
    try:
        if own:
            return prepare(own[0][1], own[0][0])
        return prepare(read_file(example.path), example.name) if example else None
    except ImageError as e:
        st.error(str(e))
        return None
