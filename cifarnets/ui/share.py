"""Views a user can share: the choices that define a page live in its URL.

Each such widget is made with `bind="query-params"`: Streamlit then writes its value into the URL as the
user changes it (the widget's key is the parameter's name, its option's label the value) and sets it from
the URL when a link is opened. A value that is no longer an option (a run since deleted, a mistyped
link) Streamlit drops silently and shows the default; `check` says so first, in one line, so a user who
followed a link knows the view is not the one that was shared.

Anyone can write a link, so whatever it holds is shown as plain text (`plain`), never as Markdown: a link
must not put a link, an image or a colour of its own on the app's page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import streamlit as st
from streamlit.errors import StreamlitAPIException

# Parameters that Streamlit itself reads (an embedded app's options), never a page's choice.
RESERVED = {"embed", "embed_options"}


# CommonMark lets a backslash escape any ASCII punctuation, which then reads as itself: links, images, emphasis,
# code, HTML, LaTeX ($) and Streamlit's :colour[...] directives all need one. GitHub's autolinks (https://...,
# www...., a@b.c) are found after escapes are read, so an invisible word joiner follows each ":", "." and "@".
_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
_AUTOLINKED = re.compile(r"([:.@])")
_JOINER = "\u2060"


def plain(text: str, most: int = 60) -> str:
    """`text` from a link as it reads, for any Streamlit call that renders Markdown: at most `most` characters,
    line breaks and other control characters as spaces, every punctuation mark escaped, no autolink."""
    shown = "".join(c if c.isprintable() else " " for c in text[:most])
    shown = _PUNCTUATION.sub(r"\\\1", shown)
    return _AUTOLINKED.sub(rf"\1{_JOINER}", shown) + ("…" if len(text) > most else "")


def unknown_values(key: str, options: Iterable, format_func: Callable[[object], str] = str) -> list[str]:
    """What the URL asks of the widget bound to `key` that is not among its options' labels."""
    labels = {format_func(o) for o in options}
    return [v for v in st.query_params.get_all(key) if v != "" and v not in labels]  # "": nothing chosen


def check(key: str, options: Iterable, what: str, format_func: Callable[[object], str] = str,
          multi: bool = False) -> None:
    """Before the widget bound to `key` is drawn: one line if the link asks for something not among `options`."""
    unknown = unknown_values(key, options, format_func)
    if unknown:
        shown = ", ".join(f"“{plain(v)}”" for v in unknown[:3]) + (" …" if len(unknown) > 3 else "")
        then = "left out" if multi else "showing the default instead"
        st.caption(f":orange[The link asks for {what} {shown}, which is not here: {then}.]")


def check_unknown(keys: Sequence[str]) -> None:
    """One line for the parameters in the URL that this page does not have, and take them out of the URL in
    one rewrite (one at a time, a link with a thousand of them sent the whole URL a thousand times)."""
    params = st.query_params
    unknown = [k for k in params.keys() if k not in keys and k not in RESERVED]
    if not unknown:
        return
    shown = ", ".join(f"“{plain(name, 40)}”" for name in unknown[:3]) + (f" and {len(unknown) - 3} more"
                                                                       if len(unknown) > 3 else "")
    st.caption(f":orange[The link's setting{'s' if len(unknown) > 1 else ''} {shown} "
               f"{'are not ones' if len(unknown) > 1 else 'is not one'} this page has: ignored.]")
    kept = {k: params.get_all(k) for k in params.keys() if k not in unknown}
    try:
        params.from_dict(kept)
    except StreamlitAPIException:  # a kept key already bound to a widget: it cannot be rewritten, only kept
        for name in unknown:
            del params[name]
