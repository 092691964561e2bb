"""`streamlit run app.py`: the one list of the app's pages, and what every page shares.

Each page is a file in app_pages/ and keeps its address (/Architecture, /Classify, ...), also as the
first request to a fresh server; Home is the default page at /. (Not pages/: Streamlit would also take
that folder for its older page list, and AppTest would then open a page without running this file.)
"""

import streamlit as st

from cifarnets.ui import guard, layout

# `streamlit run app.py` finds this App and serves it: uvicorn then imports this file once, at server start, and so
# torch, the networks' code and the pages' libraries (2.6 s on the 2-core test machine) are loaded before the
# first visitor instead of during their first page. Each session still runs this file as __main__, below.
app = st.App(__file__)

# Streamlit runs this file as __main__; multiprocessing's spawn and forkserver children re-run the main
# file of the process that started them as __mp_main__, and must not build the app there.
if __name__ == "__main__":
    guard.protect_server()
    page = st.navigation(layout.pages())
    layout.setup(page.title)
    page.run()
