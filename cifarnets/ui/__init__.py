"""Streamlit pieces that several pages share. The only part of cifarnets that imports streamlit."""

# Streamlit runs each session's script in a thread of its own, and Altair finds pandas through
# sys.modules: a session drawing a chart while another session is still importing pandas got a
# half-initialised module ("partially initialized module 'pandas' has no attribute 'Timestamp'"),
# which `python -m cifarnets load --sessions 4` hit every time. Every page imports this package
# first, and Python imports a package once, whole, so pandas is complete before any page runs.
import pandas  # noqa: F401
