"""What every page shares: the page list, the page settings and the training sidebar.

app.py hands pages() to st.navigation, which draws the page links in the sidebar, and runs setup()
before the chosen page.
"""

from __future__ import annotations

import streamlit as st
from PIL import Image

from ..models import KEYS, spec
from . import resources, sidebar

PAGES = [  # (script relative to app.py, title, address); the first is the default page
    ("app_pages/0_Home.py", "Home", ""),
    ("app_pages/1_Architecture.py", "Architecture", "Architecture"),
    ("app_pages/2_Training_curves.py", "Training curves", "Training_curves"),
    ("app_pages/3_Classify.py", "Classify", "Classify"),
    ("app_pages/4_Why_they_differ.py", "Why they differ", "Why_they_differ"),
    ("app_pages/5_Stress_test.py", "Stress test", "Stress_test"),
]


def pages() -> list[st.Page]:
    # No page icons: a page's icon becomes the browser tab's, which the browser would fetch from a font
    # CDN that an offline machine cannot reach; the tab shows favicon() instead.
    return [st.Page(script, title=title, url_path=address or None, default=not address)
            for script, title, address in PAGES]


def favicon() -> Image.Image:
    """The four networks' colours in four squares. Drawn here: a :material/...: or emoji page icon
    makes the browser fetch it from a font CDN, which an offline machine cannot reach."""
    img = Image.new("RGB", (32, 32))
    for i, colour in enumerate(spec(k).colour for k in KEYS):
        img.paste(colour, (16 * (i % 2), 16 * (i // 2), 16 * (i % 2) + 16, 16 * (i // 2) + 16))
    return img


# Once opened, Streamlit keeps the sidebar open (in localStorage) across page links and reloads; on a phone it
# then covers three quarters of every page a student opens. At phone width this closes it when a page is opened
# or reloaded, and never on a rerun of the same page (a click inside the sidebar must not shut it), nor after the
# student opened it themselves while it waited for Streamlit to draw the sidebar. The page's
# title is in the element: Streamlit keeps an unchanged element between pages, and its script would not run again.
PHONE_SIDEBAR = """<script data-page="{title}">
(() => {
  if (window.innerWidth > 768 || window.__cifarnetsPage === location.pathname) return;
  window.__cifarnetsPage = location.pathname;
  for (const key of Object.keys(localStorage)) {
    if (key.startsWith("stSidebarCollapsed-")) localStorage.setItem(key, "true");
  }
  // Tries while Streamlit has not drawn the sidebar yet, but never against a student who opened it meanwhile.
  let tries = 20;
  const opened = (e) => { if (e.target.closest?.("[data-testid=stExpandSidebarButton]")) tries = 0; };
  document.addEventListener("click", opened, true);
  const close = () => {
    const bar = document.querySelector("[data-testid=stSidebar]");
    const button = document.querySelector("[data-testid=stSidebarCollapseButton] button");
    const open = bar && bar.getAttribute("data-collapsed") === "false";
    if (open && button && tries > 0) button.click();
    else if ((!bar || open) && tries-- > 0) return void setTimeout(close, 100);
    document.removeEventListener("click", opened, true);
  };
  close();
})();
</script>"""


def setup(title: str) -> None:
    st.set_page_config(page_title=f"{title} · cifarnets" if title != "Home" else "cifarnets",
                       page_icon=favicon(), layout="wide")
    st.html(PHONE_SIDEBAR.replace("{title}", title), unsafe_allow_javascript=True)
    resources.remember_visitor()
    sidebar.render()
