"""Runs: every run in the store (from this app, another tab or the CLI) as a filterable table;
open one in the monitor, delete it, download its genotype, JSON, cell graphs and iterations, or
evaluate its cell from scratch (in a worker process of the RunManager: queued with the searches,
stoppable, and going on when this page is closed)."""
from __future__ import annotations

import json
import os
import shutil
import time

import pandas as pd
import streamlit as st

import app_state
from core.engine.evaluate import list_eval_presets, make_eval_config
from core.engine.genotype import CELL_TYPES
from core.runs.store import ACTIVE_STATUSES, EVAL_ACTIVE_STATUSES, RESUMABLE_STATUSES
from core.viz.export import export_run
from core.viz.tracking import DEFAULT_MLFLOW_DIR, export_mlflow, mlflow_uri, tensorboard_zip

app_state.ensure_app_navigation()

PICK_KEY = "runs_pick"
EVAL_REFRESH_S = 2.0  # the evaluation status of the selected run, while one is queued or running

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
            # when its process last wrote or stamped it: for a dead run, when it died
            "last seen": None if r.last_seen is None else
            pd.to_datetime(r.last_seen, unit="s", utc=True).tz_convert(None),
            "iterations": r.iterations, "of": r.total_iterations,
            "best val acc": r.summary.get("best_val_acc"),
            "size (params)": r.size,
            "genotype": r.genotype or "", "error": err[0] if err else "",
        })
    return pd.DataFrame(rows)


def _seen(t: float | None) -> str:
    if t is None:
        return "never"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))}, " \
           f"{app_state.format_duration(time.time() - t)} ago"


def _options(df: pd.DataFrame, col: str) -> list[str]:
    return sorted(v for v in df[col].dropna().unique() if v != "")


def _export(run_id: int, fmt: str, cell_type: str = "normal") -> str | None:
    try:
        return export_run(store, run_id, fmt, cell_type)
    except (ValueError, KeyError):
        return None  # no genotype yet, or the run was deleted meanwhile


def _eval_table(evals: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for e in evals.itertuples():
        preset = json.loads(e.config).get("preset") if e.config else None
        rows.append({"evaluation": int(e.id), "status": e.status, "preset": preset,
                     "test acc": e.test_acc, "params": e.params,
                     "seconds": None if pd.isna(e.seconds) else round(float(e.seconds), 1),
                     # while queued the row holds the app's pid: no worker to name yet
                     "process": None if pd.isna(e.pid) or e.pid == os.getpid() else int(e.pid),
                     "error": app_state.first_line(e.error)})
    return pd.DataFrame(rows)


def _evaluation_status(run_id: int, started_live: bool) -> None:
    """The selected run's evaluations; refreshed every EVAL_REFRESH_S while one is going."""
    evals = store.evaluations([run_id])
    active = evals[evals["status"].isin(EVAL_ACTIVE_STATUSES)] if len(evals) else evals
    if started_live and not len(active):
        st.rerun()  # it ended: the whole page once more (the run's summary has its test acc)
    for e in active.itertuples():
        eid = int(e.id)
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        if e.status == "running":
            where = f"training in worker process {int(e.pid)}"
        elif manager.evaluation_state(eid) == "started":
            where = f"worker process {int(e.pid)} starting"
        else:
            where = "waiting for a free slot (searches and evaluations share them)"
        c1.info(f"Evaluation #{eid}: {e.status} · {where} …", icon=":material/hourglass_top:")
        if c2.button("Stop", icon=":material/stop:", key=f"run_eval_stop_{eid}", width="stretch",
                     help="Ends the evaluation after its current iteration."):
            manager.stop_evaluation(eid)
            st.rerun()
    if len(evals):
        last = evals.iloc[-1]
        if last["status"] == "failed":
            st.error(f"Evaluation #{int(last['id'])} failed: {app_state.first_line(last['error'])}",
                     icon=":material/error:")
            with st.expander("Evaluation error details"):
                st.code(last["error"] or "", language=None)
        st.dataframe(_eval_table(evals), hide_index=True, key=f"run_evals_{run_id}", column_config={
            "test acc": st.column_config.NumberColumn("test acc", format="percent"),
            "params": st.column_config.NumberColumn("params", format="localized"),
            "process": st.column_config.NumberColumn("process", help="The worker process's id"),
        })
    if started_live:
        st.caption(f"Live · refreshed {time.strftime('%H:%M:%S')} every {EVAL_REFRESH_S:g} s")


def _evaluation(run_id: int, has_genotype: bool, live: bool) -> None:
    st.markdown("**Evaluation**")
    st.caption("Trains the run's final cell from scratch and tests it on held-out data, in a "
               "worker process: it waits for a free slot like a search, goes on if you close this "
               "page, and its result lands in the run's summary and the Compare page.")
    evals = store.evaluations([run_id])
    going = bool(len(evals)) and evals["status"].isin(EVAL_ACTIVE_STATUSES).any()
    presets = list_eval_presets()
    c = st.columns([2, 1, 3], vertical_alignment="bottom")
    preset = c[0].selectbox("Evaluation preset", presets, key="run_eval_preset",
                            index=presets.index("demo") if "demo" in presets else 0,
                            help="demo: a few minutes on a CPU; tiny: seconds; paper: DARTS's "
                                 "600 epochs, needs a GPU.")
    why = ("the run is still going" if live else "the run has no genotype yet" if not has_genotype
           else "an evaluation of this run is already queued or running" if going else "")
    if c[1].button("Evaluate", icon=":material/science:", key="run_evaluate", disabled=bool(why),
                   width="stretch"):
        eid = manager.evaluate(run_id, make_eval_config(preset))
        app_state.flash(f"Evaluation #{eid} of run #{run_id} queued (preset `{preset}`).")
        st.rerun()
    if why:
        c[2].caption(f"Evaluate is off: {why}.")
    st.fragment(_evaluation_status, run_every=EVAL_REFRESH_S if going else None)(run_id, going)


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
        "last seen": st.column_config.DatetimeColumn(
            "last seen (UTC)", format="YYYY-MM-DD HH:mm:ss",
            help="When the run's process last wrote or stamped it (every few seconds while alive)"),
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

a1, a3, a2 = st.columns([1, 1, 2], vertical_alignment="top")
with a1:
    if st.button("Open in monitor", icon=":material/monitoring:", type="primary", key="open_run"):
        app_state.open_in_monitor(run_id)
with a3:
    if st.button("Resume", icon=":material/play_arrow:", key="resume_run",
                 disabled=run.status not in RESUMABLE_STATUSES or manager.is_live(run_id),
                 help="Interrupted, stopped and failed runs continue from their latest checkpoint "
                      "(written at most a minute apart) in a worker process."):
        try:
            manager.resume(run_id)
        except (KeyError, ValueError, RuntimeError) as exc:
            st.error(str(exc), icon=":material/error:")
        else:
            app_state.forget_run_view(run_id)  # a restart rewrites rows after its checkpoint
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

if run.status == "interrupted":
    st.warning(f"Interrupted: its process is gone (last seen "
               f"{_seen(run.last_seen)}). Resume continues from its latest checkpoint; Delete "
               "removes it.", icon=":material/warning:")
if run.status == "failed":
    st.error(f"Failed: {(run.error or 'no error text').strip().splitlines()[0]}", icon=":material/error:")
    with st.expander("Error details"):
        st.code(run.error or "", language=None)
if run.genotype:
    st.code(run.genotype, language=None, wrap_lines=True)

genotype_text = _export(run_id, "genotype")
_evaluation(run_id, genotype_text is not None, live)

st.markdown("**Downloads**")
stem = f"run{run_id}"
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

st.markdown("**TensorBoard and MLflow**")
t = st.columns([1, 2, 1], vertical_alignment="bottom")
t[0].download_button("TensorBoard (zip)", lambda: tensorboard_zip(store, run_id),
                     file_name=f"{stem}_tensorboard.zip", mime="application/zip", key="dl_tensorboard",
                     help="Event files of every scalar, each edge's op weights, the genotypes and the "
                          "config as hparams. Unzip under a folder and run `tensorboard --logdir` on it.")
where = t[1].text_input("MLflow tracking URI or folder", key="mlflow_where", placeholder=DEFAULT_MLFLOW_DIR,
                        help="A folder here (default mlruns/, a SQLite tracking store) or a server's "
                             "URI such as http://host:5000.")
if t[2].button("Log to MLflow", key="mlflow_log"):
    uri = mlflow_uri(where)
    try:
        mlflow_id = export_mlflow(store, run_id, uri)
    except Exception as exc:  # an unreachable server or a bad URI: say so, keep the page
        st.error(f"MLflow tracking URI or folder: {uri} refused the run: {app_state.first_line(exc)}",
                 icon=":material/error:")
    else:
        st.success(f"Logged as MLflow run `{mlflow_id}` at `{uri}`. See it with "
                   f"`mlflow ui --backend-store-uri {uri}`.", icon=":material/check:")
