"""Pictures for the browser: the 32x32 input as a person can see it, a photo small enough to send, and the
one picker of a single image that the Why they differ views and the Stress test page share."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from ..data.images import EXTENSIONS, ImageError
from ..examples import list_examples
from ..predict import Prepared, prepare, read_file
from . import share


def enlarge(pixels: np.ndarray, size: int = 128) -> Image.Image:
    """The 32x32 input blown up with hard pixel edges, so a person sees exactly what the networks see."""
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST)


def preview(image: Image.Image, side: int = 480) -> Image.Image:
    """A copy small enough to send to the browser; a 12-megapixel photo need not travel whole."""
    small = image.copy()
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    return small


def pick_image(example_key: str, upload_key: str, default: str, camera_key: str | None = None) -> Prepared | None:
    """A bundled example (its choice is in the URL, under `example_key`), the user's own upload or, where
    `camera_key` is given, the camera (neither of those in the URL). A bad file gets one line, and None."""
    examples = list_examples()
    share.check(example_key, examples, "the example", format_func=lambda e: e.caption)
    left, right = st.columns([2, 3])
    index = next((i for i, e in enumerate(examples) if e.name == default), 0)
    example = left.selectbox("Example image", examples, index=index, format_func=lambda e: e.caption,
                             key=example_key, bind="query-params")
    upload = right.file_uploader("Or your own image (a shared link keeps the example, not your image)",
                                 type=EXTENSIONS, key=upload_key)
    camera = None
    if camera_key and left.toggle("Use the camera", key=f"{camera_key}_on"):
        camera = st.camera_input("Camera", key=camera_key)
    try:
        if camera is not None:
            return prepare(camera.getvalue(), "camera.jpg")
        if upload is not None:
            return prepare(upload.getvalue(), upload.name)
        return prepare(read_file(example.path), example.name) if example else None
    except ImageError as e:
        st.error(str(e))
        return None
