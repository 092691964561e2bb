"""Streamlit pieces that several pages share. The only part of cifarnets that imports streamlit."""
