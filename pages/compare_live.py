"""Compare live: 2-4 runs side by side while they go (``?runs=3,4,5``). One column per run, the
same panels in each (the chosen edge's op weights or every edge's, the schedule's steps, the
regularizer's pull and gap, the derived cell and its size, the loss), every chart on one shared
iteration axis (core.viz.aligned), and which edges' chosen ops differ between the runs' current
genotypes. Refreshed every REFRESH_S seconds by a fragment that reads only new rows."""
from __future__ import annotations

import time
from typing import Any

import streamlit as st

import app_state
from core.engine.genotype import CELL_TITLES, CELL_TYPES
from core.runs.groups import MAX_VALUES, MIN_VALUES
from core.runs.store import ACTIVE_STATUSES
from core.viz import aligned, figures

app_state.ensure_app_navigation()

RUNS = "compare_live_runs"           # the run ids shown; mirrors the URL query RUNS_QUERY
RUNS_QUERY = "runs"
W_RUNS = "cl_runs"                   # widget key of the run picker
TIMING = "compare_live_seconds"      # server seconds of the last refresh's work (shown, measured)
# Three runs' charts at once: a 1 s refresh would double the server's and the browser's work,
# taken from the cores the searches run on, for rows that come every second or two.
REFRESH_S = 2.0
PANELS = {"weights": "Operation weights", "schedule": "Schedule", "regularizer": "Regularizer pull and gap",
          "cell": "Derived cell and size", "losses": "Loss", "accuracy": "Accuracy"}
DEFAULT_PANELS = ("weights", "schedule", "regularizer", "cell", "losses")
STATUS_COLORS = {"running": "green", "queued": "blue", "paused": "orange", "finished": "violet",
                 "stopped": "gray", "failed": "red", "interrupted": "orange"}

store = app_state.get_store()
manager = app_state.get_manager()


def _is_live(run: Any) -> bool:
    return manager.is_live(run.id) or run.status in ACTIVE_STATUSES


def _ours(run: Any) -> bool:
    """Whether this server's manager runs it and it has not ended (its worker may still be
    exiting after the run is stored as finished)."""
    return manager.is_live(run.id) and run.status in ACTIVE_STATUSES


def _query_ids(valid: set[int]) -> list[int] | None:
    q = st.query_params.get(RUNS_QUERY)
    if not q:
        return None
    ids = [int(x) for x in q.split(",") if x.strip().isdigit()]
    return [i for i in dict.fromkeys(ids) if i in valid][:MAX_VALUES] or None


def _sync_query(ids: list[int]) -> None:
    want = ",".join(map(str, ids))
    if ids and st.query_params.get(RUNS_QUERY) != want:
        st.query_params[RUNS_QUERY] = want
    elif not ids and RUNS_QUERY in st.query_params:
        del st.query_params[RUNS_QUERY]


def _on_pick() -> None:
    st.session_state[RUNS] = [int(i) for i in st.session_state[W_RUNS]]
    _sync_query(st.session_state[RUNS])


def _default_ids(runs: list[Any]) -> list[int]:
    """The newest group of 2-4 runs, in id order; else nothing."""
    for g in store.groups():
        ids = sorted(r.id for r in runs if r.group == g)
        if MIN_VALUES <= len(ids) <= MAX_VALUES:
            return ids
    return []


def _choose(runs: list[Any]) -> list[int]:
    """The runs shown: the URL, then this session's choice, then the newest group of 2-4."""
    ss = st.session_state
    valid = {r.id for r in runs}
    q = _query_ids(valid)
    if q:
        ss[RUNS] = q
    ss[RUNS] = [i for i in ss.get(RUNS) or _default_ids(runs) if i in valid][:MAX_VALUES]
    ss[W_RUNS] = ss[RUNS]
    by_id = {r.id: r for r in runs}
    st.multiselect("Runs", sorted(by_id, reverse=True), key=W_RUNS, on_change=_on_pick,
                   max_selections=MAX_VALUES, placeholder=f"Choose {MIN_VALUES} to {MAX_VALUES} runs",
                   format_func=lambda i: f"#{i} · {by_id[i].name} · {by_id[i].status}")
    _sync_query(ss[RUNS])
    return list(ss[RUNS])


def _options(nodes: int) -> aligned.Options:
    """The columns' options, as sidebar widgets (a choice reruns the page, not each refresh)."""
    with st.sidebar:
        st.subheader("Compare live view", help="What every column shows; each choice redraws the page.")
        panels = st.multiselect("Panels", list(PANELS), default=list(DEFAULT_PANELS), format_func=PANELS.get,
                                key="cl_panels")
        ct = st.segmented_control("Weights: cell", CELL_TYPES, default=CELL_TYPES[0], required=True,
                                  format_func=CELL_TITLES.get, key="cl_cell")
        grid = st.toggle("Weights: every edge", key="cl_grid",
                         help="Every edge's weights as small multiples in each column, instead of one edge.")
        edges = aligned.edge_choices(nodes)
        labels = dict(edges)
        edge = st.selectbox("Weights: edge", [e for e, _ in edges], format_func=labels.get, key="cl_edge",
                            disabled=grid, help="The same edge in every column.")
        zoom = st.toggle("Weights: zoom to data", key="cl_zoom",
                         help="y from the activation's bottom to the largest weight, not its whole range")
    return aligned.Options(cell=ct or CELL_TYPES[0], edge=int(edge or 0), grid=grid, zoom=zoom,
                           panels=tuple(panels))


def _controls(records: list[Any]) -> None:
    """Stop, pause or resume every run at once."""
    ours = [r for r in records if _ours(r)]
    c1, c2, c3, _ = st.columns([1, 1, 1, 3])
    if c1.button("Stop all", icon=":material/stop:", key="cl_stop_all", disabled=not ours):
        for r in ours:
            manager.stop(r.id)
        app_state.flash(f"Stop requested for {len(ours)} run(s); each ends after its current iteration.", "info")
        st.rerun()
    if c2.button("Pause all", icon=":material/pause:", key="cl_pause_all",
                 disabled=not any(r.status == "running" for r in ours)):
        for r in ours:
            if r.status == "running":
                manager.pause(r.id)
        st.rerun()
    paused = [r for r in records if r.status == "paused"]
    if c3.button("Resume all", icon=":material/play_arrow:", key="cl_resume_all", disabled=not paused):
        for r in paused:
            _resume(r.id)
        st.rerun()


def _resume(run_id: int) -> None:
    try:
        manager.resume(run_id)
    except (KeyError, ValueError, RuntimeError) as exc:
        app_state.flash(f"Run #{run_id}: {exc}", "error")
    else:
        app_state.forget_run_view(run_id)  # a restart rewrites rows after its checkpoint


def _run_heading(run: Any, label: str) -> None:
    """A column's head: label, status, and its own Stop / Pause / Resume."""
    color = STATUS_COLORS.get(run.status, "gray")
    st.markdown(f"**{label}** :{color}-badge[{run.status}]")
    st.caption(f"#{run.id} · {run.name}")
    ours = _ours(run)
    b1, b2, b3 = st.columns(3)
    if b1.button("Stop", key=f"cl_stop_{run.id}", disabled=not ours, width="stretch"):
        manager.stop(run.id)
        st.rerun()
    if b2.button("Pause", key=f"cl_pause_{run.id}", disabled=not (ours and run.status == "running"),
                 width="stretch"):
        manager.pause(run.id)
        st.rerun()
    can_resume = (ours and run.status == "paused") or run.status in ("interrupted", "stopped", "failed")
    if b3.button("Resume", key=f"cl_resume_{run.id}", disabled=not can_resume, width="stretch"):
        _resume(run.id)
        st.rerun()


def _column(col: aligned.Column, key: str, chart_attr: str) -> None:
    chart = getattr(col, chart_attr)
    with st.container():  # a chart keeps its place when an element before it comes or goes
        if chart is None:
            st.caption("Queued: no rows yet." if col.queued else f"{figures.WAITING}.")
            return
        st.vega_lite_chart(chart.arrow_spec(), key=f"{key}_{col.run_id}", width="stretch", theme=None)
        st.caption(chart.caption)


def _memo_column(view: Any, label: str, opts: aligned.Options, domain: Any) -> aligned.Column:
    """The run's column built for its view's generation: a refresh that found nothing new for a
    run builds and converts nothing for it, and its charts' bytes stay the same for the browser."""
    memo = st.session_state.setdefault("_compare_live_memo", {})
    version = (view.generation, label, opts, None if domain is None else tuple(domain))
    hit = memo.get(view.run_id)
    if hit is None or hit[0] != version:
        hit = memo[view.run_id] = (version, aligned.build_column(view, label, opts, domain))
    return hit[1]


def _draw_row(columns: list[aligned.Column], title: str, attrs: list[tuple[str, str]]) -> None:
    st.markdown(f"##### {title}")
    for col, slot in zip(columns, st.columns(len(columns))):
        with slot:
            for attr, key in attrs:
                _column(col, key, attr)


def _live_columns(ids: list[int], labels: list[str], drawn: tuple[str, ...], started_live: bool,
                  opts: aligned.Options) -> None:
    """Everything that moves while the runs go. Reruns the page when a run's status changes."""
    t0 = time.perf_counter()
    views = [app_state.run_view(i) for i in ids]
    for v in views:
        v.refresh()
    if any(v.run is None for v in views):
        st.warning("A run of this comparison is no longer in the store; choose the runs again.")
        return
    statuses = tuple(v.run.status for v in views)
    if statuses != drawn or (started_live and not any(_is_live(v.run) for v in views)):
        st.rerun()  # a run started, paused or ended: the whole page again (controls, timers)
    domain = aligned.shared_domain(views)
    columns = [_memo_column(v, label, opts, domain) for v, label in zip(views, labels)]
    diff = aligned.differences(views, labels)
    spent = time.perf_counter() - t0
    st.session_state[TIMING] = spent

    for col, slot in zip(columns, st.columns(len(columns))):
        with slot:
            frac = min(1.0, col.done / col.total) if col.total else 0.0
            st.progress(frac, text=f"{col.done} / {col.total or '?'} iterations")
            st.caption(" · ".join(f"{k} **{v}**" for k, v in col.facts.items()))
    if "weights" in opts.panels:
        what = "every edge" if opts.grid else dict(aligned.edge_choices(views[0].nodes)).get(opts.edge, "")
        _draw_row(columns, f"Operation weights · {CELL_TITLES.get(opts.cell, opts.cell)} · {what}",
                  [("weights", "w")])
    if "schedule" in opts.panels:
        _draw_row(columns, "Schedule: when architecture steps run", [("schedule", "sched")])
    if "regularizer" in opts.panels:
        _draw_row(columns, "Regularizer: its pull and the discretization gap", [("penalty", "pen"), ("gap", "gap")])
    if "cell" in opts.panels:
        st.markdown(f"##### Derived cell ({CELL_TITLES.get(opts.cell, opts.cell)}) and size")
        for col, slot in zip(columns, st.columns(len(columns))):
            with slot:
                with st.container():
                    if col.cell is None:
                        st.caption("No genotype derived yet.")
                    else:
                        st.graphviz_chart(col.cell, width="stretch")
        # a row of its own: cells of different heights would stagger the size charts
        for col, slot in zip(columns, st.columns(len(columns))):
            with slot:
                _column(col, "size", "size")
    if "losses" in opts.panels:
        _draw_row(columns, "Loss", [("loss", "loss")])
    if "accuracy" in opts.panels:
        _draw_row(columns, "Accuracy", [("accuracy", "acc")])

    st.markdown("##### Where the current cells differ")
    if diff.empty or len(diff.columns) < 4:
        st.caption("Shown once at least two runs have derived a cell.")
    else:
        n = int(diff["differs"].sum())
        st.caption(f"{n} of {len(diff)} edges kept by some run differ between the runs' current cells "
                   f"(marked ✱; · = the run keeps no op there).")
        shown = diff.assign(differs=diff["differs"].map({True: "✱", False: ""}))
        st.dataframe(shown, hide_index=True, key="cl_diff", height=min(420, 36 + 35 * len(shown)))
    if started_live:
        st.caption(f"Live · refreshed {time.strftime('%H:%M:%S')} every {REFRESH_S:g} s · "
                   f"server work {spent:.2f} s")


def _open_in_compare(records: list[Any]) -> None:
    """The comparison on the Compare page, with this group (or these runs) chosen."""
    groups = {r.group for r in records}
    query = {"study": groups.pop()} if len(groups) == 1 and None not in groups else \
        {"runs": ",".join(str(r.id) for r in records)}
    if st.button("Open in Compare", type="primary", icon=":material/compare:", key="cl_open_compare",
                 help="Curves with seed bands, final cells, genotype agreement, tables, evaluation."):
        st.switch_page("pages/compare.py", query_params=query)


# ---- page ------------------------------------------------------------------------------------
st.html("<style>[data-testid='stElementContainer'] {transition: none !important; "
        "opacity: 1 !important;}</style>")  # no stale fade at each refresh (see the Monitor)
st.title("Compare live")
app_state.show_flash()
all_runs = store.list_runs()
if not all_runs:
    st.info("No runs yet. \"Compare activations\" on Home starts three, and Launch's "
            "\"Vary one field\" starts a group.")
    st.page_link("pages/home.py", label="Home", icon=":material/home:")
    st.stop()

ids = _choose(all_runs)
if len(ids) < MIN_VALUES:
    st.info(f"Choose {MIN_VALUES} to {MAX_VALUES} runs to see them side by side.")
    st.stop()

by_id = {r.id: r for r in store.list_runs(ids=ids)}
records = [by_id[i] for i in ids if i in by_id]
labels = aligned.column_labels([r.config for r in records], [r.name for r in records])
group = {r.group for r in records}
if len(group) == 1 and None not in group:
    st.caption(f"Group **{group.pop()}** · each column one run, every chart on the same iteration axis.")
live = any(_is_live(r) for r in records)
queued = [r for r in records if r.status == "queued"]
if queued:
    st.info(f"{len(queued)} of these runs are queued: they start in turn as runs end "
            f"({manager.max_concurrent} run at once on this server).", icon=":material/hourglass_top:")
_controls(records)
for r, label, slot in zip(records, labels, st.columns(len(records))):
    with slot:
        _run_heading(r, label)
opts = _options(max(int(r.config.get("nodes", 4)) for r in records))
st.fragment(_live_columns, run_every=REFRESH_S if live else None)(
    [r.id for r in records], labels, tuple(r.status for r in records), live, opts)
if not live:
    _open_in_compare(records)
