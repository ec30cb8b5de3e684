"""Home: what the app does, the one-click demo, the device, links to the other pages."""
from __future__ import annotations

import streamlit as st

import app_state
from core.engine.config import ConfigError
from core.engine.device import pick_device
from core.engine.genotype import DARTS_V2
from core.engine.ops import OP_DESCRIPTIONS
from core.viz.cells import genotype_dot
from core.viz.palette import op_key_spec

app_state.ensure_app_navigation()

st.title("PRIME Explorer")
app_state.show_flash()
st.markdown(
    "Launch **differentiable neural architecture searches** (DARTS and its variants, with "
    "**DARTS-PRIME** as the reference method) from the browser and watch every part of them "
    "live: the weight of each operation on each edge, the informed schedule deciding when an "
    "architecture step runs, the regularizers pulling the weights towards a discrete cell, the "
    "derived cell itself, its size, and the losses and accuracies.\n\n"
    "Every run is kept in one store, so searches started from the command line "
    "(`python -m core search`) show up here too, and finished runs can be exported."
)

device = pick_device("auto")
try:
    demo = app_state.demo_config()
    demo_error = None
except ConfigError as exc:
    demo, demo_error = None, str(exc)

left, right = st.columns([2, 1], gap="large")
with left:
    st.subheader("Try it")
    if demo is not None:
        st.markdown(
            f"The demo searches a small supernet ({demo.layers} cells, {demo.nodes} nodes, "
            f"{demo.C} channels) on the **{demo.dataset}** images with DARTS-PRIME for "
            f"{demo.epochs} epochs × {demo.iters_per_epoch or 'all'} iterations "
            f"(preset `{demo.preset}`)."
        )
        if st.button("Run the demo", type="primary", key="run_demo"):
            run_id = app_state.get_manager().start(demo, name=f"demo ({demo.preset})", group="demo")
            app_state.open_in_monitor(run_id)
    else:
        st.error(f"The demo settings in ${app_state.DEMO_OVERRIDES_ENV} are invalid: {demo_error}")
with right:
    st.subheader("Device")
    st.metric("Searches run on", str(device).upper())
    if device.type == "cpu":
        st.caption("No GPU found: the demo is sized for a CPU; the `paper` preset needs a GPU.")

# What the Monitor draws, on a cell from the literature. Also what makes the first Monitor quick:
# the browser loads its chart libraries (Vega-Lite, Graphviz) with the first chart of each kind,
# and here that happens before the click, not next to the search just started
# (docs/performance.md).
st.subheader("What a search shows")
cell, key = st.columns([3, 2], gap="large")
with cell:
    st.graphviz_chart(genotype_dot(DARTS_V2, "normal", title="Normal cell of DARTS (second order), CIFAR-10"))
    st.caption("The Monitor draws the normal and the reduction cell a search derives, and redraws "
               "them as they change. This one is the cell DARTS found on CIFAR-10 (Liu et al., "
               "2019): c_{k-2} and c_{k-1} are the two previous cells' outputs, each node takes two "
               "inputs, and each edge carries its operation's colour.")
with key:
    st.vega_lite_chart(op_key_spec(OP_DESCRIPTIONS), theme=None)
    st.caption("One colour per operation, in every chart and cell of the app.")

st.subheader("Pages")
c1, c2, c3 = st.columns(3)
with c1:
    st.page_link("pages/launch.py", label="Launch a search", icon=":material/rocket_launch:")
    st.caption("Pick a method and a data preset, change any setting, estimate the run time, start.")
with c2:
    st.page_link("pages/monitor.py", label="Monitor a run", icon=":material/monitoring:")
    st.caption("Operation weights, schedule, regularizers, the cell and the losses, refreshed live.")
with c3:
    st.page_link("pages/runs.py", label="All runs", icon=":material/table_view:")
    st.caption("Every stored run: filter, open, delete, download genotypes, graphs and logs.")
