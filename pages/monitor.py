"""Monitor: one run, watched live. Status, progress and controls, then the panels of
docs/algorithms.md "What to plot, live", refreshed about once a second (once an iteration when
iterations are further apart, core.viz.live.refresh_seconds) by a fragment that reads only the rows
written since its last refresh (core.viz.live.RunView, kept per run in session state). Under each
panel one line says what to watch for in this run, worded from its config and data (core.viz.hints)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

import app_state
from core.engine.genotype import CELL_TITLES, CELL_TYPES
from core.runs.store import ACTIVE_STATUSES, RESUMABLE_STATUSES
from core.viz import figures, hints, line_charts
from core.viz.live import MAX_REFRESH_S, REFRESH_S, refresh_seconds

app_state.ensure_app_navigation()

SELECT_KEY = "monitor_select"
REFRESH_SET_KEY = "_monitor_refresh_set"  # when the page last chose the panels' refresh interval
# A changed pace redraws the whole page at most this often, and not before this long after the
# page chose the interval: a run's panels first fill in within about 10 s of its start.
REFRESH_HOLD_S = 20.0
STATUS_COLORS = {"running": "green", "queued": "blue", "paused": "orange", "finished": "violet",
                 "stopped": "gray", "failed": "red", "interrupted": "orange"}

store = app_state.get_store()
manager = app_state.get_manager()


def _is_live(run) -> bool:
    # A run this app started is live while its search process or queue slot is; a run written
    # by another process (the CLI) is live while the store says it is active.
    return manager.is_live(run.id) or run.status in ACTIVE_STATUSES


def _on_select() -> None:
    run_id = st.session_state[SELECT_KEY]
    st.session_state[app_state.RUN_ID] = run_id
    st.query_params[app_state.RUN_QUERY] = str(run_id)


def _initial_run(runs) -> int:
    ids = {r.id for r in runs}
    q = st.query_params.get(app_state.RUN_QUERY)
    if q is not None and q.isdigit() and int(q) in ids:
        return int(q)
    remembered = st.session_state.get(app_state.RUN_ID)
    if remembered in ids:
        return remembered
    running = [r for r in runs if r.status in ACTIVE_STATUSES]
    return (running or runs)[0].id  # list_runs is newest first


def _pace(steps: pd.DataFrame) -> float | None:
    """Seconds per iteration over the last rows' time column (seconds since start)."""
    if steps is None or steps.empty or "time" not in steps:
        return None
    tail = steps[["step", "time"]].dropna().tail(50)
    if tail.empty:
        return None
    s, t = tail["step"].to_numpy(), tail["time"].to_numpy()
    return (t[-1] - t[0]) / (s[-1] - s[0]) if len(tail) > 1 and s[-1] > s[0] and t[-1] > t[0] else \
        t[-1] / (s[-1] + 1)


def _eta(steps: pd.DataFrame, total: int | None) -> float | None:
    """Seconds left at the pace of the last rows."""
    pace = _pace(steps)
    if pace is None or not total:
        return None
    return max(0, total - (int(steps["step"].iloc[-1]) + 1)) * pace


def _time_split(summary: dict) -> str:
    """Where the run's time went, from what its recorder last wrote to the summary."""
    split = summary.get("time_split") or {}
    elapsed = split.get("elapsed_s") or 0.0
    if elapsed <= 0:
        return ""
    parts = [(k, split.get(f"{k}_s") or 0.0) for k in ("weight", "architecture", "record")]
    other = max(0.0, elapsed - sum(v for _, v in parts))
    names = {"weight": "weight steps", "architecture": "architecture steps", "record": "recording"}
    return "time in " + ", ".join(f"{names[k]} {v / elapsed:.0%}" for k, v in parts) + \
        f", validation and the rest {other / elapsed:.0%}"


def _heading(run) -> None:
    """Name, status and what the run is, and a notice where the status needs one. Drawn outside
    the refreshed fragment: it changes only with the status, and the fragment reruns the whole
    page when the status changes (see _panels)."""
    color = STATUS_COLORS.get(run.status, "gray")
    st.markdown(f"### {run.name} :{color}-badge[{run.status}]")
    meta = [f"#{run.id}", run.config.get("method", "?"), run.config.get("dataset", "?"),
            f"preset {run.config.get('preset', '?')}"]
    if run.group:
        meta.append(f"group {run.group}")
    if run.device:
        meta.append(f"on {run.device}")
    st.caption(" · ".join(meta))

    if run.status == "queued":
        st.info(f"Queued: waiting for a free slot ({len(manager.live_runs())} live, "
                f"{manager.max_concurrent} run at once).", icon=":material/hourglass_top:")
    elif run.status == "failed":
        first = (run.error or "no error text stored").strip().splitlines()[0]
        st.error(f"This run failed: {first}", icon=":material/error:")
        if run.error:
            with st.expander("Error details"):
                st.code(run.error, language=None)
    elif run.status == "interrupted":
        seen = run.last_seen
        when = "never" if seen is None else (
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(seen))}, "
            f"{app_state.format_duration(time.time() - seen)} ago")
        st.warning(f"The process writing this run is gone (last seen {when}). Resume continues "
                   "from its latest checkpoint (written at each epoch end and at most "
                   f"{run.config.get('checkpoint_seconds', 60)} s apart); the Runs page can "
                   "delete it.", icon=":material/warning:")
    elif run.status == "paused":
        st.info("Paused. Resume continues where it stopped.", icon=":material/pause_circle:")


def _progress(view, run) -> tuple[float, str]:
    """The progress bar's fraction and text."""
    total = run.total_iterations or None
    done = run.iterations or 0
    if view.steps is not None and not view.steps.empty:
        done = max(done, int(view.steps["step"].iloc[-1]) + 1)
    frac = min(1.0, done / total) if total else 0.0
    eta = _eta(view.steps, total) if run.status == "running" else None
    elapsed = run.duration
    text = f"{done} / {total or '?'} iterations · elapsed {app_state.format_duration(elapsed)}"
    if run.status == "running":
        text += f" · ETA {app_state.format_duration(eta)}"
    pace = _pace(view.steps)
    if pace:
        text += f" · {1 / pace:.2f} it/s"
    split = _time_split(run.summary or {})
    return frac, text + (f" · {split}" if split else "")


def _controls(run) -> None:
    ours = manager.is_live(run.id)
    c1, c2, c3, _ = st.columns([1, 1, 1, 4])
    note = None if ours or run.status not in ACTIVE_STATUSES else \
        "This run was started by another process (e.g. the CLI); control it there."
    if c1.button("Stop", icon=":material/stop:", key="ctl_stop", disabled=not ours, help=note):
        manager.stop(run.id)
        app_state.flash(f"Stop requested for run #{run.id}; it ends after its current iteration.", "info")
        st.rerun()
    if c2.button("Pause", icon=":material/pause:", key="ctl_pause", disabled=not (ours and run.status == "running"), help=note):
        manager.pause(run.id)
        st.rerun()
    can_resume = (ours and run.status == "paused") or (not ours and run.status in RESUMABLE_STATUSES)
    if c3.button("Resume", icon=":material/play_arrow:", key="ctl_resume", disabled=not can_resume,
                 help="Paused runs continue at once; stopped, failed or interrupted ones restart "
                      "from their last checkpoint."):
        try:
            manager.resume(run.id)
        except (KeyError, ValueError, RuntimeError) as exc:
            st.error(str(exc))
        else:
            app_state.forget_run_view(run.id)  # a restart rewrites rows after its checkpoint
            st.rerun()


def _line(chart, key: str, stretch: bool = True) -> None:
    """A Vega-Lite line chart of core.viz.line_charts and its caption, or why it is empty. Its spec
    stays the same while rows arrive, so the browser swaps the data in place each second. Each
    sits in a container of its own: Streamlit matches elements by their place in their block,
    and an element that appears or goes before a chart (a notice, the first genotype's chart)
    would otherwise shift it to a new place and have it drawn from scratch."""
    with st.container():
        if chart is None:
            st.caption(f"{figures.WAITING}.")
            return
        st.vega_lite_chart(chart.arrow_spec(), key=key, width="stretch" if stretch else "content", theme=None)
        st.caption(chart.caption)


def _memo(name: str, version, build):
    """The figure built for ``version`` of the data, rebuilt only when the version changes. The
    line charts are kept for a generation of the run's view (``RunView.generation``): a refresh
    that found no new rows (about one in three while the demo is watched) then builds and
    converts nothing, and the charts' bytes, the same as before, cost the browser nothing. Their
    building and conversion to Arrow were most of the server's time in a refresh."""
    memo = st.session_state.setdefault("_monitor_figure_memo", {})
    hit = memo.get(name)
    if hit is None or hit[0] != version:
        hit = memo[name] = (version, build())
    return hit[1]


WEIGHT_VIEWS = ("Lines", "Heatmap")  # short: the two sit side by side in the sidebar


@dataclass(frozen=True)
class ViewOptions:
    """What the sidebar asks the refreshed panels to show."""
    cell: str = CELL_TYPES[0]  # the weight panel's cell type
    heatmap: bool = False      # the weight panel's latest weights as a heatmap, not lines over time
    zoom: bool = False         # the weight lines' y axis on the data, not the activation's range
    history: bool = True       # the genotype history slider
    changes: bool = False      # the genotype change log
    events: bool = False       # the run's events


def _view_options(run_id: int, live: bool) -> ViewOptions:
    """The panels' options, as sidebar widgets. They stay out of the refreshed fragment (a
    choice reruns the page): widgets drawn in it cost the browser at every refresh, on the
    cores the search runs on (docs/performance.md)."""
    with st.sidebar:
        st.subheader("Monitor view", help="What the panels show; each choice redraws the page.")
        ct = st.segmented_control("Weights: cell", CELL_TYPES, default=CELL_TYPES[0], required=True,
                                  format_func=CELL_TITLES.get, key=f"wcell_{run_id}")
        mode = st.segmented_control("Weights: view", WEIGHT_VIEWS, default=WEIGHT_VIEWS[0], required=True,
                                    key=f"wview_{run_id}",
                                    help="Lines: each op's weight over the iterations, one small chart "
                                         "per edge. Heatmap: the latest weights, edges by ops.")
        # Softmax shares start near 1/ops and move little early on: zooming shows the motion.
        zoom = st.toggle("Weights: zoom to data", key=f"wfit_{run_id}",
                         help="y from 0 to the largest weight instead of the activation's range")
        # A run that has ended is not redrawn each second: its slider costs nothing there.
        history = not live or st.toggle(
            "Cells: history slider", key=f"geno_browse_{run_id}",
            help="While the run goes the cells follow the newest genotype; this adds a slider "
                 "that goes back through the genotypes derived so far.")
        changes = st.toggle("Cells: change log", key=f"changes_open_{run_id}",
                            help="What changed in the genotype, and at which iteration.")
        events = st.toggle("Events", key=f"events_open_{run_id}",
                           help="The run's events: start, epoch ends, pruning, ADMM updates, pauses, the end, errors.")
    return ViewOptions(ct or CELL_TYPES[0], mode == WEIGHT_VIEWS[1], zoom, history, changes, events)


@dataclass
class Frame:
    """Everything one refresh of the panels draws, built before the first element is written
    (_build), so that the server's work does not overlap the browser drawing the elements
    already sent, which pushed the search off its cores (docs/performance.md)."""
    weights: Any = None          # the weight panel's LineChart, or its heatmap (Plotly figure)
    schedule: Any = None
    regularizers: list = field(default_factory=list)
    size: Any = None
    losses: list = field(default_factory=list)
    progress: tuple[float, str] = (0.0, "")  # the progress bar's fraction and text
    cells: list[str] = field(default_factory=list)  # DOT of each cell type; none before a genotype
    genotypes: int = 0           # genotypes derived so far (the history slider's range)
    changes: pd.DataFrame | None = None  # the change log, when shown
    events: pd.DataFrame | None = None   # the events table, when shown
    hints: dict[str, str] = field(default_factory=dict)  # panel -> what to watch for (core.viz.hints)


def _hint(frame: Frame, panel: str) -> None:
    """The panel's line of what to watch for in this run (core.viz.hints), under the panel."""
    text = frame.hints.get(panel)
    if text:
        st.caption(f":material/lightbulb: {text}")


def _weights_panel(frame: Frame, opts: ViewOptions) -> None:
    st.subheader("1 · Operation weights per edge",
                 help="Cell type, view (lines over time or a heatmap of the latest weights) and "
                      "zoom: in the sidebar.")
    if opts.heatmap:
        app_state.show_plotly(frame.weights, f"w_heat_{opts.cell}", mode_bar_on_hover=True)
    else:
        _line(frame.weights, f"w_grid_{opts.cell}", stretch=False)
    _hint(frame, "weights")


def _history_key(run_id: int) -> str:
    """The session state key of the genotype history slider's choice (counted from 1)."""
    return f"geno_idx_{run_id}"


def _genotype_index(view, run_id: int) -> int:
    """The genotype to draw (python index; -1 the newest): the history slider's choice, counted
    from 1 as the cells' titles count them ("genotype 3 of 6"). The slider itself is drawn
    later (_history_slider) from the same session state key."""
    g = view.genotypes
    n = 0 if g is None else len(g)
    if n <= 1:
        return -1
    key, max_key = _history_key(run_id), f"geno_idx_max_{run_id}"
    prev_max = st.session_state.get(max_key)
    # Follow the newest genotype unless the user went back in the history.
    if key not in st.session_state or st.session_state[key] == prev_max or st.session_state[key] > n:
        st.session_state[key] = n
    st.session_state[max_key] = n
    return st.session_state[key] - 1


def _history_slider(frame: Frame, run_id: int) -> None:
    if frame.genotypes > 1:  # the cells' own titles say the iteration each was derived at
        st.slider("Genotype history", 1, frame.genotypes, key=_history_key(run_id),
                  help="Go back through the genotypes derived during the search (one per change); "
                       "the newest is on the right.")


def _cell_panel(frame: Frame, run_id: int, opts: ViewOptions) -> None:
    st.subheader("4 · The derived cell",
                 help="While the run goes the cells follow the newest genotype, and the history "
                      "slider is a toggle in the sidebar; the change log is a toggle there too.")
    if not frame.cells:
        st.caption("No genotype derived yet; the first appears once the supernet is built.")
        return
    with st.container():  # the slider appears with the second genotype
        if opts.history:
            _history_slider(frame, run_id)
    for dot, col in zip(frame.cells, st.columns(2)):
        with col:  # the drawing's title names the cell and the iteration
            st.graphviz_chart(dot, width="stretch")
    _hint(frame, "cell")
    c1, c2 = st.columns(2)
    with c1:
        _line(frame.size, "size")
        _hint(frame, "size")
    if opts.changes:
        with c2:
            st.markdown("**Change log** (newest first)")
            changes = frame.changes
            if changes is None or changes.empty:
                st.caption("The genotype has not changed yet.")
            else:
                # the change text names the cell and node already
                st.dataframe(changes.iloc[::-1], hide_index=True, height=300, key=f"changes_{run_id}",
                             column_order=["step", "change"],
                             column_config={"step": st.column_config.NumberColumn("iteration", width="small"),
                                            "change": st.column_config.TextColumn(width="large")})


def _events_shown(view) -> pd.DataFrame | None:
    ev = view.events
    if ev is None or len(ev) == 0:
        return None
    shown = ev[["step", "time", "kind", "message"]].iloc[::-1].copy()
    shown["time"] = pd.to_datetime(shown["time"], unit="s").dt.strftime("%H:%M:%S")
    return shown


def _events_table(frame: Frame) -> None:
    st.markdown("**Events** (newest first)")
    if frame.events is None:
        st.caption("No events recorded yet.")
        return
    st.dataframe(frame.events, hide_index=True, height=240)


def _build(view, run_id: int, opts: ViewOptions) -> Frame:
    """The refresh's charts (kept by _memo where nothing they show has changed), their Arrow
    bytes, the cells' drawings and the tables that are shown."""
    ct, fit = opts.cell, opts.zoom
    # Alphas change only at architecture steps: rebuild the figure only when they did. The
    # grid's datasets are then the same bytes at every other refresh, and the browser leaves
    # the chart alone.
    version = (len(view.alpha_steps[ct]), len(view.pruned), fit, view.run.status)
    frame = Frame(progress=_progress(view, view.run))
    if opts.heatmap:
        frame.weights = _memo(f"heat_{ct}_{run_id}", version, lambda: figures.op_weights_heatmap(view, ct))
    else:
        frame.weights = _memo(f"grid_{ct}_{run_id}", version,
                              lambda: line_charts.op_weights_chart(view, ct, fit_y=fit))
    gen = view.generation
    frame.schedule = _memo(f"schedule_{run_id}", gen, lambda: line_charts.schedule_chart(view))
    frame.regularizers = _memo(f"regularizers_{run_id}", gen, lambda: line_charts.regularizer_charts(view))
    frame.losses = _memo(f"losses_{run_id}", gen, lambda: line_charts.losses_charts(view))
    frame.genotypes = 0 if view.genotypes is None else len(view.genotypes)
    if frame.genotypes:
        frame.size = _memo(f"size_{run_id}", gen, lambda: line_charts.size_chart(view))
        idx = _genotype_index(view, run_id) if opts.history else -1
        frame.cells = [figures.cell_dot(view, c, idx) for c in CELL_TYPES]
        if opts.changes:
            frame.changes = figures.genotype_changes(view)
    if opts.events:
        frame.events = _events_shown(view)
    # Worded from what the view holds: built again only when it took in new rows.
    frame.hints = _memo(f"hints_{run_id}", gen, lambda: hints.panel_hints(view))
    line = [] if opts.heatmap else [frame.weights]
    for chart in [*line, frame.schedule, frame.size, *frame.regularizers, *frame.losses]:
        if chart is not None:
            chart.arrow_spec()  # converted now, kept on the chart for _line
    return frame


def _pace_changed(view, every: float) -> bool:
    """Whether the run's pace has moved its refresh interval (core.viz.live.refresh_seconds) by
    more than a fifth since the page chose it, and long enough ago that the page may be redrawn
    for it: Streamlit sets a fragment's interval when the page runs."""
    want = refresh_seconds(view.steps)
    if abs(want - every) <= 0.2 * every:
        return False
    return time.monotonic() - st.session_state.get(REFRESH_SET_KEY, 0.0) > REFRESH_HOLD_S


def _panels(run_id: int, started_live: bool, drawn_status: str, opts: ViewOptions,
            every: float | None = None) -> None:
    """Everything that moves while the run goes, redrawn every ``every`` seconds: once a second,
    or once an iteration when iterations are further apart (core.viz.live.refresh_seconds). What
    changes only with the run's status (heading, notices, controls) stays out of here: each
    element redrawn costs the browser at every refresh, on the cores the search runs on
    (docs/performance.md)."""
    view = app_state.run_view(run_id)
    view.refresh()
    run = view.run
    if run is None:
        st.warning(f"Run #{run_id} is no longer in the store.")
        return
    if run.status != drawn_status or (started_live and not _is_live(run)):
        st.rerun()  # new status or the run ended: the whole page again (without auto-refresh)
    if every is not None and _pace_changed(view, every):
        st.rerun()  # the whole page again, for the fragment's new interval

    frame = _build(view, run_id, opts)
    st.progress(*frame.progress)
    # Containers keep what appears and goes (this caption, the genotype slider) from moving the
    # charts after them to new places in the page (see _line).
    with st.container():
        if view.steps is None or view.steps.empty:
            st.caption("No iterations recorded yet — the charts fill in as the run writes rows.")

    _weights_panel(frame, opts)
    left, right = st.columns(2)
    with left:
        st.subheader("2 · Schedule")
        _line(frame.schedule, "schedule")
        _hint(frame, "schedule")
    with right:
        st.subheader("3 · Regularizers")
        for n, chart in enumerate(frame.regularizers or [None]):
            _line(chart, f"regularizer_{n}")
        _hint(frame, "regularizer")
    with st.container():
        _cell_panel(frame, run_id, opts)
    st.subheader("5 · Losses and accuracies")
    for col, chart, key in zip(st.columns(2), frame.losses or [None, None], ("loss", "accuracy")):
        with col:
            _line(chart, key)
    _hint(frame, "losses")
    if opts.events:
        _events_table(frame)
    if started_live:
        pace = "every second" if every is None or every <= REFRESH_S else \
            f"every {every:g} s" + (", once an iteration" if every < MAX_REFRESH_S else "")
        st.caption(f"Live · refreshed {time.strftime('%H:%M:%S')} · {pace}")


# ---- page ------------------------------------------------------------------------------------
# Streamlit fades the elements a script run has not yet redrawn ("stale"), and the live panels'
# refresh each second started that opacity transition on their containers over and over: the
# browser's compositor then worked at every refresh for a fade nobody needs to see here. First
# on the page, so that a rerun whose elements change (a new status) never drops it midway.
st.html("<style>[data-testid='stElementContainer'] {transition: none !important; "
        "opacity: 1 !important;}</style>")
st.title("Monitor")
app_state.show_flash()
runs = store.list_runs()
if not runs:
    st.info("No runs yet. Start one from the Launch page, or run the demo from Home.")
    st.page_link("pages/launch.py", label="Launch a search", icon=":material/rocket_launch:")
    st.page_link("pages/home.py", label="Run the demo", icon=":material/home:")
    st.stop()

ids = [r.id for r in runs]
by_id = {r.id: r for r in runs}
initial = _initial_run(runs)
if st.session_state.get(SELECT_KEY) not in ids or (
        st.query_params.get(app_state.RUN_QUERY) == str(initial) and st.session_state.get(SELECT_KEY) != initial):
    st.session_state[SELECT_KEY] = initial
st.selectbox("Run", ids, key=SELECT_KEY, on_change=_on_select,
             format_func=lambda i: f"#{i} · {by_id[i].name}")
run_id = st.session_state[SELECT_KEY]
st.session_state[app_state.RUN_ID] = run_id
if st.query_params.get(app_state.RUN_QUERY) != str(run_id):
    st.query_params[app_state.RUN_QUERY] = str(run_id)

shown = by_id[run_id]
live = _is_live(shown)
_heading(shown)
_controls(shown)
every = None
if live:
    live_view = app_state.run_view(run_id)
    live_view.refresh()
    every = refresh_seconds(live_view.steps)
    st.session_state[REFRESH_SET_KEY] = time.monotonic()
st.fragment(_panels, run_every=every)(run_id, live, shown.status, _view_options(run_id, live), every)
