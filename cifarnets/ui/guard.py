"""Public mode's hold on the Streamlit server itself, set once per process before any page runs.

Two things a page cannot do for itself:
- Streamlit's upload route refuses a file by server.maxUploadSize alone (a widget's own limit is only the
  browser's check, which a hostile client skips): in public mode it becomes the public cap, so a larger file
  is refused while it streams in, before the server holds it.
- Streamlit obeys a client's "clear_cache" message from anyone (runtime/app_session.py restricts only its
  debug messages), and the caches are the server's: one visitor could make everyone load the networks again.
  In public mode the message is dropped where messages arrive, AppSession.handle_backmsg, by the message's
  type in Streamlit's protocol (BackMsg.clear_cache), not by the name of the private method that obeys it;
  tests/test_hostile_visitors.py sends it over a real websocket, so a Streamlit that routes it elsewhere
  fails there, not in production.
"""

from __future__ import annotations

import functools
import logging
import math

from streamlit import config
from streamlit.runtime.app_session import AppSession

from ..paths import public, public_limits

_LOG = logging.getLogger(__name__)
_GUARDED = "_cifarnets_public"  # marks our handle_backmsg, so reruns never wrap it twice


def protect_server() -> None:
    """In public mode: uploads capped at the server, and no client can clear the caches. Locally, nothing."""
    if not public():
        return
    mb = math.ceil(public_limits().upload_mb)
    if config.get_option("server.maxUploadSize") != mb:
        config.set_option("server.maxUploadSize", mb, "cifarnets public mode (CIFARNETS_UPLOAD_MB)")
    if not getattr(AppSession.handle_backmsg, _GUARDED, False):
        AppSession.handle_backmsg = _without_cache_clearing(AppSession.handle_backmsg)


def _without_cache_clearing(handle_backmsg):
    @functools.wraps(handle_backmsg)
    def guarded(self, msg):
        if msg.WhichOneof("type") == "clear_cache":
            _LOG.warning("A client asked to clear every cache; public mode ignores it.")
            return None
        return handle_backmsg(self, msg)

    setattr(guarded, _GUARDED, True)
    return guarded
