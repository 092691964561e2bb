"""Views a user can share: the choices that define a page live in its URL.

Each such widget is made with `bind="query-params"`: Streamlit then writes its value into the URL as the
user changes it (the widget's key is the parameter's name, its option's label the value) and sets it from
the URL when a link is opened. A value that is no longer an option (a run since deleted, a mistyped
link) Streamlit drops silently and shows the default; `check` says so first, in one line, so a user who
followed a link knows the view is not the one that was shared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import streamlit as st

# Parameters that Streamlit itself reads (an embedded app's options), never a page's choice.
RESERVED = {"embed", "embed_options"}


def unknown_values(key: str, options: Iterable, format_func: Callable[[object], str] = str) -> list[str]:
    """What the URL asks of the widget bound to `key` that is not among its options' labels."""
    labels = {format_func(o) for o in options}
    return [v for v in st.query_params.get_all(key) if v != "" and v not in labels]  # "": nothing chosen


def check(key: str, options: Iterable, what: str, format_func: Callable[[object], str] = str,
          multi: bool = False) -> None:
    """Before the widget bound to `key` is drawn: one line if the link asks for something not among `options`."""
    unknown = unknown_values(key, options, format_func)
    if unknown:
        shown = ", ".join(f"“{v[:60]}”" for v in unknown[:3]) + (" …" if len(unknown) > 3 else "")
        then = "left out" if multi else "showing the default instead"
        st.caption(f":orange[The link asks for {what} {shown}, which is not here: {then}.]")


def check_unknown(keys: Sequence[str]) -> None:
    """One line for each parameter in the URL that this page does not have, and take it out of the URL."""
    for name in [k for k in st.query_params.keys() if k not in keys and k not in RESERVED]:
        st.caption(f":orange[The link's setting “{name[:40]}” is not one this page has; it is ignored.]")
        del st.query_params[name]
