"""PRIME Explorer: the Streamlit entry point. Routes to pages/ and draws the shared sidebar.

Run with ``streamlit run app.py``. The store is $PRIME_EXPLORER_DB (default
runs/explorer.sqlite); runs started from the CLI against the same file show up here.
"""
from __future__ import annotations

import os

# OpenMP spin-waits make torch much slower next to a server and a browser on few cores
# (docs/testing.md "Torch threads"); must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import streamlit as st  # noqa: E402

import app_state  # noqa: E402

# The run manager starts its spare search process when it is made. Made before this process
# imports torch (next line, ~2 s), the spare's own imports run alongside on the other core:
# on a fresh server it is ready about that much sooner for the first "Run the demo".
manager = app_state.get_manager()

from core.engine.device import pick_device  # noqa: E402

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="PRIME Explorer", page_icon="🧬", layout="wide")

css = HERE / "assets" / "style.css"
if css.exists():
    st.html(f"<style>{css.read_text()}</style>")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:"),
    st.Page("pages/launch.py", title="Launch", icon=":material/rocket_launch:"),
    st.Page("pages/monitor.py", title="Monitor", icon=":material/monitoring:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/table_view:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/compare_live.py", title="Compare live", icon=":material/view_column:"),
]
page = st.navigation(PAGES)
st.session_state[app_state.APP_RAN] = True

with st.sidebar:
    live = manager.live_runs()
    st.markdown(f"**Device:** `{pick_device('auto')}`")
    st.markdown(f"**Live runs:** {len(live)} (up to {manager.max_concurrent} at once)")
    st.caption(f"Store: `{app_state.get_store().path}`")

page.run()
