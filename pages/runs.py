"""Runs: every run in the store (from this app, another tab or the CLI) as a filterable table;
open one in the monitor, delete it, or download its genotype, JSON, cell graphs and iterations."""
from __future__ import annotations

import shutil

import pandas as pd
import streamlit as st

import app_state
from core.export import export_run
from core.genotype import CELL_TYPES
from core.store import ACTIVE_STATUSES

app_state.ensure_app_navigation()

PICK_KEY = "runs_pick"

store = app_state.get_store()
manager = app_state.get_manager()


def _table(runs) -> pd.DataFrame:
    rows = []
    for r in runs:
        err = (r.error or "").strip().splitlines()
        rows.append({
            "id": r.id, "name": r.name, "method": r.method or r.config.get("method"),
            "dataset": r.dataset or r.config.get("dataset"), "group": r.group or "",
            "status": r.status,
            "started": pd.to_datetime(r.started or r.created, unit="s", utc=True).tz_convert(None),
            "duration (s)": None if r.duration is None else round(r.duration, 1),
            "iterations": r.iterations, "of": r.total_iterations,
            "best val acc": r.summary.get("best_val_acc"),
            "size (params)": r.size,
            "genotype": r.genotype or "", "error": err[0] if err else "",
        })
    return pd.DataFrame(rows)


def _options(df: pd.DataFrame, col: str) -> list[str]:
    return sorted(v for v in df[col].dropna().unique() if v != "")


def _export(run_id: int, fmt: str, cell_type: str = "normal") -> str | None:
    try:
        return export_run(store, run_id, fmt, cell_type)
    except (ValueError, KeyError):
        return None  # no genotype yet, or the run was deleted meanwhile


def _svg(dot: str) -> bytes:
    import graphviz

    return graphviz.Source(dot).pipe(format="svg")


st.title("Runs")
app_state.show_flash()
runs = store.list_runs()
if not runs:
    st.info("The store has no runs yet. Start one from the Launch page, run the demo from Home, "
            "or from a shell: `python -m core search --preset demo`.")
    st.caption(f"Store: `{store.path}`")
    st.stop()

df = _table(runs)
f1, f2, f3, f4, f5 = st.columns([2, 2, 2, 2, 3])
status = f1.multiselect("Status", _options(df, "status"), key="flt_status")
method = f2.multiselect("Method", _options(df, "method"), key="flt_method")
dataset = f3.multiselect("Dataset", _options(df, "dataset"), key="flt_dataset")
group = f4.multiselect("Group", _options(df, "group"), key="flt_group")
text = f5.text_input("Search", key="flt_text", placeholder="name, genotype, error…")

shown = df
for col, chosen in (("status", status), ("method", method), ("dataset", dataset), ("group", group)):
    if chosen:
        shown = shown[shown[col].isin(chosen)]
if text.strip():
    needle = text.strip().lower()
    hay = (shown["name"] + " " + shown["genotype"] + " " + shown["error"] + " " + shown["group"]).str.lower()
    shown = shown[hay.str.contains(needle, regex=False)]

st.caption(f"{len(shown)} of {len(df)} runs · click a column header to sort")
st.dataframe(
    shown, hide_index=True, key="runs_table",
    column_config={
        "id": st.column_config.NumberColumn("id", width="small"),
        "started": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "best val acc": st.column_config.ProgressColumn("best val acc", min_value=0.0, max_value=1.0,
                                                        format="percent"),
        "size (params)": st.column_config.NumberColumn("size (params)", format="localized"),
        "genotype": st.column_config.TextColumn("final genotype", width="large"),
        "error": st.column_config.TextColumn("error", width="medium"),
    },
)
if shown.empty:
    st.stop()

st.subheader("Selected run")
ids = shown["id"].tolist()
if st.session_state.get(PICK_KEY) not in ids:
    remembered = st.session_state.get(app_state.RUN_ID)
    st.session_state[PICK_KEY] = remembered if remembered in ids else ids[0]
by_id = {r.id: r for r in runs}
run_id = st.selectbox("Run", ids, key=PICK_KEY,
                      format_func=lambda i: f"#{i} · {by_id[i].name}")
run = by_id[run_id]

a1, a2 = st.columns([1, 3], vertical_alignment="top")
with a1:
    if st.button("Open in monitor", icon=":material/monitoring:", type="primary", key="open_run"):
        app_state.open_in_monitor(run_id)
with a2:
    live = manager.is_live(run_id) or run.status in ACTIVE_STATUSES
    with st.popover("Delete…", icon=":material/delete:"):
        if live:
            st.warning("This run is still going: stop it in the monitor before deleting it.")
        confirm = st.checkbox(f"Yes, delete run #{run_id} ({run.name}) and all its rows",
                              key=f"confirm_delete_{run_id}", disabled=live)
        if st.button("Delete for good", key="delete_run", disabled=not confirm or live):
            store.delete_run(run_id)
            app_state.forget_run_view(run_id)
            if st.session_state.get(app_state.RUN_ID) == run_id:
                st.session_state.pop(app_state.RUN_ID, None)
            app_state.flash(f"Deleted run #{run_id} ({run.name}).")
            st.rerun()

if run.status == "failed":
    st.error(f"Failed: {(run.error or 'no error text').strip().splitlines()[0]}", icon=":material/error:")
    with st.expander("Error details"):
        st.code(run.error or "", language=None)
if run.genotype:
    st.code(run.genotype, language=None, wrap_lines=True)

st.markdown("**Downloads**")
stem = f"run{run_id}"
genotype_text = _export(run_id, "genotype")
d = st.columns(4)
d[0].download_button("Genotype (text)", genotype_text or "", file_name=f"{stem}_genotype.txt",
                     mime="text/plain", disabled=genotype_text is None, key="dl_genotype")
d[1].download_button("Run (JSON)", _export(run_id, "json") or "", file_name=f"{stem}.json",
                     mime="application/json", key="dl_json")
d[2].download_button("Iterations (CSV)", lambda: _export(run_id, "csv") or "", file_name=f"{stem}_steps.csv",
                     mime="text/csv", key="dl_csv")
if genotype_text is None:
    d[3].caption("No genotype yet: cell graphs appear once one is derived.")
else:
    dots = {ct: _export(run_id, "dot", ct) for ct in CELL_TYPES}
    g = st.columns(4)
    for i, ct in enumerate(CELL_TYPES):
        g[i].download_button(f"{ct.capitalize()} cell (DOT)", dots[ct] or "", file_name=f"{stem}_{ct}.dot",
                             mime="text/vnd.graphviz", key=f"dl_dot_{ct}")
    if shutil.which("dot"):
        for i, ct in enumerate(CELL_TYPES):
            g[2 + i].download_button(f"{ct.capitalize()} cell (SVG)", lambda dot=dots[ct]: _svg(dot),
                                     file_name=f"{stem}_{ct}.svg", mime="image/svg+xml", key=f"dl_svg_{ct}")
    else:
        g[2].caption("SVG export needs Graphviz's `dot` program (Debian: `apt-get install graphviz`); "
                     "the DOT files open in any Graphviz viewer.")
