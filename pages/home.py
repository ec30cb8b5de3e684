"""Home: what the app does, the one-click demo, the device, links to the other pages."""
from __future__ import annotations

import os

import streamlit as st

import app_state
from core.engine.config import ConfigError
from core.engine.device import pick_device
from core.engine.genotype import DARTS_V2
from core.engine.ops import OP_DESCRIPTIONS
from core.runs.groups import activation_group, group_seconds, rounds, run_cpu_seconds, start_group
from core.viz.cells import genotype_dot
from core.viz.palette import op_key_spec

app_state.ensure_app_navigation()

DEMO_BUDGET_S = 180  # one demo search's time budget on a CPU (README "Presets")

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


def _compare_activations(demo) -> None:
    """The second call to action: the demo once per activation, as one group, opened side by
    side on Compare live. Only the activation differs between the three runs."""
    manager = app_state.get_manager()
    group = activation_group(demo)
    names = ", ".join(cfg.activation for _, cfg in group)
    st.markdown(
        f"**Compare activations** runs this demo {len(group)} times, with {names}: the same data, "
        f"seed, schedule (`{demo.schedule}`), regularizer (`{demo.regularizer}`) and budget, so "
        "whatever differs between the columns is the activation's doing. The three method "
        "presets (darts-prime, fairdarts, prime-crb) would also change the schedule, the data "
        "split, the regularizer, the op set and the budget, and the comparison could no longer "
        "say which of them made the difference.")
    seconds = [run_cpu_seconds(cfg) for _, cfg in group]
    if all(s is not None for s in seconds):
        wall = group_seconds(seconds, manager.max_concurrent)
        turns = rounds(len(group), manager.max_concurrent)
        how = (f"{manager.max_concurrent} at a time, the rest queued: {turns} turns"
               if turns > 1 else "all at once")
        over = wall > DEMO_BUDGET_S
        st.caption(f"{'⚠ ' if over else ''}On this machine ({os.cpu_count()} cores) the {len(group)} "
                   f"searches take about **{app_state.format_duration(wall)}** ({how})"
                   + (f", longer than one demo's {DEMO_BUDGET_S // 60} minutes." if over else "."))
    if st.button("Compare activations", key="compare_activations", icon=":material/view_column:"):
        _, ids = start_group(manager, "activations", group)
        st.switch_page("pages/compare_live.py", query_params={"runs": ",".join(map(str, ids))})


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
        _compare_activations(demo)
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
