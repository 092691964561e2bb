"""What every page starts with: the page settings, the navigation, and the training sidebar.

Each page script calls setup() first. The app uses Streamlit's pages/ directory, whose pages are
reached at /Architecture, /Training_curves and /Classify even as the first request to a fresh
server; Streamlit's own list of pages is hidden (.streamlit/config.toml) so that the entry page can
be called Home rather than after its file, app.py.
"""

from __future__ import annotations

import streamlit as st
from PIL import Image

from . import sidebar
from .charts import COLORS

PAGES = [  # (script relative to app.py, title, icon)
    ("app.py", "Home", ":material/home:"),
    ("pages/1_Architecture.py", "Architecture", ":material/account_tree:"),
    ("pages/2_Training_curves.py", "Training curves", ":material/show_chart:"),
    ("pages/3_Classify.py", "Classify", ":material/image_search:"),
    ("pages/4_Why_they_differ.py", "Why they differ", ":material/query_stats:"),
]


def favicon() -> Image.Image:
    """The four networks' colours in four squares. Drawn here: a :material/...: or emoji page icon
    makes the browser fetch it from a font CDN, which an offline machine cannot reach."""
    img = Image.new("RGB", (32, 32))
    for i, colour in enumerate(COLORS.values()):
        img.paste(colour, (16 * (i % 2), 16 * (i // 2), 16 * (i % 2) + 16, 16 * (i // 2) + 16))
    return img


def setup(title: str) -> None:
    st.set_page_config(page_title=f"{title} · cifarnets" if title != "Home" else "cifarnets",
                       page_icon=favicon(), layout="wide")
    with st.sidebar:
        for script, name, icon in PAGES:
            st.page_link(script, label=name, icon=icon)
        st.divider()
    sidebar.render()
