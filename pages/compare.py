"""Compare: methods side by side across seeds. Start a study (2-5 methods x 1-5 seeds on one
data preset), choose a study, a group or any runs, and read seed-averaged curves, the final
cells, genotype agreement and a per-method table; evaluate derived cells from scratch; export
the tables and figures. While a run of the selection is live the progress refreshes every 2 s
and the rest (curves, cells, agreement, tables) every 20 s, in two fragments; both stop once
nothing is live."""
from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

import app_state
from core.engine.activations import list_activations
from core.engine.config import METHODS, ConfigError, list_methods, list_presets, make_config
from core.engine.evaluate import list_eval_presets, make_eval_config
from core.engine.genotype import CELL_TITLES, CELL_TYPES
from core.engine.regularizers import list_regularizers
from core.engine.schedules import list_schedules
from core.runs.store import ACTIVE_STATUSES, EVAL_ACTIVE_STATUSES, FINAL_STATUSES
from core.runs.study import MAX_METHODS, MAX_SEEDS, MIN_METHODS, MIN_SEEDS, StudySpec, launch_study
from core.viz import compare
from core.viz import compare_figures as cf
from core.viz.cells import genotype_dot

# ---- session state and URL (plain keys survive page switches; widget keys do not) -------------
STUDY = "compare_study"          # the study or group shown; mirrors the URL query STUDY_QUERY
RUNS = "compare_runs"            # run ids shown in "any runs" mode; mirrors RUNS_QUERY ("3,4,7")
MODE = "compare_mode"            # MODE_STUDY or MODE_RUNS
EVAL_JOB = "compare_eval_job"    # this session's last evaluations (see _start_evaluation)
FORM_RESET = "compare_form_reset"  # set after a study starts: the form offers a fresh name
STUDY_QUERY, RUNS_QUERY = "study", "runs"
MODE_STUDY, MODE_RUNS = "A study or group", "Any runs"
# widget keys
W_MODE, W_STUDY, W_RUNS = "cmp_mode", "cmp_study", "cmp_runs"
F = "study_{}".format            # keys of the New study form

REFRESH_S = 2.0
# Curves, cells, agreement and tables of a live study redraw seldom: they are dear to build, and
# the study's own searches need the cores.
DETAIL_REFRESH_S = 20.0
MAX_CUSTOM = 3
CURVES = [  # (step column or 'size', title, y axis)
    ("train_loss", "Training loss", "loss"),
    ("val_loss", "Validation loss", "loss"),
    ("gap", "Discretization gap", "gap"),
    ("penalty", "Regularizer penalty", "penalty"),
    ("size", "Architecture size", "parameters"),
]
CELL_HEIGHT = 210  # pixels per drawn cell
READING_NOTES = """
**Reading the curves**

- **Discretization gap** ||A − D(A)||: how far the activated architecture weights are from
  the one-hot cell they would be cut to. Near 0, the supernet already is its cell and
  discretizing costs little (what DARTS-PRIME's proximity, CRB and ADMM aim for).
- **Regularizer penalty**: the term added to the architecture loss; 0 for methods without one.
- **Architecture size**: parameters of the network built from the cell derived at that iteration.
- A band is as wide as the seeds disagree; where a method has one seed there is no band.
"""

app_state.ensure_app_navigation()
store = app_state.get_store()
manager = app_state.get_manager()


# ---- reading -----------------------------------------------------------------------------------
@st.cache_data(max_entries=4000, show_spinner=False)
def _steps(path: str, run_id: int, columns: tuple[str, ...], version: Any) -> pd.DataFrame:
    """A run's step columns; ``version`` (the run's last write) makes a live run re-read."""
    return app_state.get_store().steps(run_id, columns=list(columns))


@st.cache_data(max_entries=2000, show_spinner=False)
def _genotypes(path: str, run_id: int, version: Any) -> pd.DataFrame:
    return app_state.get_store().genotypes(run_id)


class _CachedReads:
    """The two readers core.viz.compare.method_curves calls, memoised per run until the run writes
    again: a refresh re-reads only live runs, not every ended run of a large study."""

    def __init__(self, records: list[Any]):
        self.version = {r.id: (r.updated, r.iterations, r.status) for r in records}
        self.last_step_of = {r.id: (r.iterations or 0) - 1 for r in records}

    def steps(self, run_id: int, columns: list[str] | None = None, **_: Any) -> pd.DataFrame:
        return _steps(store.path, int(run_id), tuple(columns or ()), self.version.get(int(run_id)))

    def genotypes(self, run_id: int, **_: Any) -> pd.DataFrame:
        return _genotypes(store.path, int(run_id), self.version.get(int(run_id)))

    def last_step(self, run_id: int) -> int:
        return self.last_step_of.get(int(run_id), -1)


def _is_live(run: Any) -> bool:
    return manager.is_live(run.id) or run.status in ACTIVE_STATUSES


def _eval_job() -> dict[str, Any] | None:
    job = st.session_state.get(EVAL_JOB)
    return job if job and job.get("path") == store.path else None


def _job_rows(job: dict[str, Any]) -> pd.DataFrame:
    """The evaluation rows of this session's job, in the order they were asked for."""
    evals = store.evaluations(job["ids"])
    return evals[evals["id"].isin(list(job["evals"].values()))]


def _evaluating(run_ids: list[int]) -> bool:
    """An evaluation of these runs is queued or running (this session's, another tab's, or one
    the manager queued for a study with "evaluate when done"): read from the store."""
    evals = store.evaluations(run_ids)
    return bool(len(evals)) and bool(evals["status"].isin(EVAL_ACTIVE_STATUSES).any())


def _start_evaluation(run_ids: list[int], preset: str) -> None:
    """Queues one evaluation per run with the RunManager: each trains in a worker process,
    under the same limit as the searches, and goes on if this page is closed. The ids go in
    session state, so the page shows their progress and can stop them."""
    config = make_eval_config(preset)
    evals = {int(rid): manager.evaluate(int(rid), config) for rid in run_ids}
    st.session_state[EVAL_JOB] = {"path": store.path, "ids": [int(r) for r in run_ids],
                                  "preset": preset, "evals": evals}


# ---- formatting ----------------------------------------------------------------------------
def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _spec_line(spec: dict[str, Any]) -> str:
    methods = ", ".join(m if isinstance(m, str) else str(m.get("name"))
                        for m in spec.get("methods", []))
    parts = [f"methods **{methods}**", _plural(int(spec.get("seeds") or 0), "seed"),
             f"preset `{spec.get('preset')}`"]
    if spec.get("overrides"):
        parts.append("overrides " + ", ".join(f"`{k}={v}`" for k, v in spec["overrides"].items()))
    parts.append(f"evaluated with `{spec.get('eval_preset')}`" if spec.get("evaluate")
                 else "no automatic evaluation")
    return " · ".join(parts)


# ---- New study form ------------------------------------------------------------------------
def _free_name() -> str:
    taken = set(store.studies()) | set(store.groups())
    k = 1
    while f"study-{k}" in taken:
        k += 1
    return f"study-{k}"


def _init_form() -> None:
    ss = st.session_state
    ss.setdefault(F("methods"), ["darts", "darts-prime"])
    ss.setdefault(F("custom"), 0)
    ss.setdefault(F("seeds"), 2)
    ss.setdefault(F("preset"), "demo")
    ss.setdefault(F("evaluate"), False)
    ss.setdefault(F("eval_preset"), "demo")
    reset = ss.pop(FORM_RESET, False)
    if reset or F("name") not in ss:
        ss[F("name")] = _free_name()


def _part(label: str, options: list[str], default: Any, key: str) -> str:
    return st.selectbox(label, options, key=key,
                        index=options.index(default) if default in options else 0)


def _custom_methods(n: int) -> list[dict[str, Any]]:
    """The custom combinations' rows: a name, a base method preset, and the three parts (which
    start as the base method's)."""
    out = []
    bases = list_methods()
    for i in range(n):
        c = st.columns(5)
        name = c[0].text_input("Name", key=F(f"c{i}_name"), value=f"custom-{i + 1}")
        with c[1]:
            base = _part("Starts from", bases, "darts-prime", F(f"c{i}_base"))
        parts = METHODS.get(base)
        with c[2]:
            act = _part("Activation", list_activations(), parts.get("activation"), F(f"c{i}_activation"))
        with c[3]:
            sched = _part("Schedule", list_schedules(), parts.get("schedule"), F(f"c{i}_schedule"))
        with c[4]:
            reg = _part("Regularizer", list_regularizers(), parts.get("regularizer"), F(f"c{i}_regularizer"))
        out.append({"name": name.strip(), "base": base, "activation": act, "schedule": sched,
                    "regularizer": reg})
    return out


def _study_form(expanded: bool) -> None:
    _init_form()
    with st.expander("New study", expanded=expanded, icon=":material/science:"):
        st.caption(f"{MIN_METHODS}-{MAX_METHODS} methods × {MIN_SEEDS}-{MAX_SEEDS} seeds on one data "
                   "preset: seed *s* of every method sees the same data order and initialisation. "
                   f"Runs queue and go {manager.max_concurrent} at a time.")
        c1, c2 = st.columns([3, 1])
        methods = c1.multiselect("Method presets", list_methods(), key=F("methods"))
        n_custom = int(c2.number_input("Custom combinations", 0, MAX_CUSTOM, step=1, key=F("custom"),
                                       help="Methods of your own: an activation, a schedule and a "
                                            "regularizer on top of a method preset."))
        customs = _custom_methods(n_custom)
        c = st.columns(4)
        preset = c[0].selectbox("Data preset", list_presets(), key=F("preset"))
        seeds = int(c[1].number_input("Seeds", MIN_SEEDS, MAX_SEEDS, step=1, key=F("seeds")))
        base = make_config(preset, "darts-prime") if preset in list_presets() else None
        epochs = c[2].number_input("Epochs", min_value=0, step=1, value=None, key=F("epochs"),
                                   placeholder=f"preset: {base.epochs}" if base else None)
        ipe = c[3].number_input("Iterations per epoch", min_value=0, step=1, value=None, key=F("ipe"),
                                placeholder=f"preset: {base.iters_per_epoch}" if base else None,
                                help="0 = one pass over the data.")
        c = st.columns([1, 1, 2])
        evaluate = c[0].checkbox("Evaluate when done", key=F("evaluate"),
                                 help="Train each run's final cell from scratch and measure test accuracy.")
        eval_preset = c[1].selectbox("Evaluation preset", list_eval_presets(), key=F("eval_preset"),
                                     disabled=not evaluate)
        name = c[2].text_input("Study name", key=F("name"))
        overrides = {k: int(v) for k, v in (("epochs", epochs), ("iters_per_epoch", ipe)) if v is not None}
        spec = StudySpec(name=name.strip(), methods=[*methods, *customs], seeds=seeds, preset=preset,
                         overrides=overrides, evaluate=bool(evaluate), eval_preset=eval_preset)
        n_runs = len(spec.methods) * seeds
        st.caption(f"{_plural(len(spec.methods), 'method')} × {_plural(seeds, 'seed')} = "
                   f"**{_plural(n_runs, 'run')}**.")
        c = st.columns([1, 2, 1, 1])
        on_ray = c[0].toggle("Run on Ray", key=F("ray"),
                             help="Each trial runs on whichever node of a Ray cluster has what it asks "
                                  "for; rows come back to this store, so these pages show it live.")
        address = c[1].text_input("Ray address", key=F("ray_address"), disabled=not on_ray,
                                  placeholder="blank: a local Ray on this machine; auto; ray://host:10001")
        cpus = c[2].number_input("CPUs per trial", 0.0, 64.0, 1.0, step=1.0, key=F("ray_cpus"), disabled=not on_ray)
        gpus = c[3].number_input("GPUs per trial", 0.0, 8.0, 0.0, step=0.5, key=F("ray_gpus"), disabled=not on_ray)
        if st.button("Start study", type="primary", icon=":material/play_arrow:", key=F("start")):
            try:
                if on_ray:  # ray is imported only when asked for: ~1 s the page need not pay
                    from core.runs.ray_study import RayOptions, queue_ray_study, start_ray_driver

                    options = RayOptions(address.strip() or None, float(cpus), float(gpus))
                    options.validate()
                    ids = queue_ray_study(store, spec)
                    start_ray_driver(store.path, spec.name, options)
                else:
                    ids = launch_study(manager, spec)
            except ConfigError as e:
                msg = str(e).split(": ", 1)[-1]
                st.error(f"Nothing started — **{e.field}**: {msg}", icon=":material/error:")
                return
            except ValueError as e:
                st.error(f"Nothing started — {e}", icon=":material/error:")
                return
            _show_study(spec.name)
            st.session_state[FORM_RESET] = True
            where = f" on Ray ({address.strip() or 'a local Ray'})" if on_ray else ""
            app_state.flash(f"Started study **{spec.name}**{where}: {len(ids)} runs queued.")
            st.rerun()


# ---- choosing what to compare ------------------------------------------------------------------
# Callbacks write the plain keys and the URL at once: the URL wins when the script reads it.
def _show_study(name: str) -> None:
    st.session_state[MODE] = MODE_STUDY
    st.session_state[STUDY] = name
    _sync_query(study=name)


def _on_mode() -> None:
    ss = st.session_state
    ss[MODE] = ss[W_MODE]
    if ss[MODE] == MODE_STUDY:
        _sync_query(study=ss.get(STUDY))
    else:
        _sync_query(runs=ss.get(RUNS) or [])


def _on_study() -> None:
    st.session_state[STUDY] = st.session_state[W_STUDY]
    _sync_query(study=st.session_state[STUDY])


def _on_runs() -> None:
    st.session_state[RUNS] = [int(i) for i in st.session_state[W_RUNS]]
    _sync_query(runs=st.session_state[RUNS])


def _query_runs(valid: set[int]) -> list[int] | None:
    q = st.query_params.get(RUNS_QUERY)
    if not q:
        return None
    ids = [int(x) for x in q.split(",") if x.strip().isdigit()]
    ids = [i for i in ids if i in valid]
    return ids or None


def _choose(runs: list[Any]) -> tuple[str | None, list[int]]:
    """(study or group name or None, run ids) from the URL, then session state, then newest."""
    ss = st.session_state
    studies = store.studies()
    groups = [g for g in store.groups() if g not in studies]
    options = studies + groups
    counts: dict[str, int] = {}
    for r in runs:
        if r.group:
            counts[r.group] = counts.get(r.group, 0) + 1
    valid = {r.id for r in runs}

    q_study, q_runs = st.query_params.get(STUDY_QUERY), _query_runs(valid)
    if q_study in options:
        ss[MODE], ss[STUDY] = MODE_STUDY, q_study
    elif q_runs:
        ss[MODE], ss[RUNS] = MODE_RUNS, q_runs
    ss.setdefault(MODE, MODE_STUDY if options else MODE_RUNS)
    if ss.get(STUDY) not in options:
        ss[STUDY] = options[0] if options else None
    ss[RUNS] = [i for i in ss.get(RUNS, []) if i in valid]
    # widget values follow the plain keys (they are dropped when the page is not shown)
    ss[W_MODE] = ss[MODE]
    if ss[STUDY] is not None:
        ss[W_STUDY] = ss[STUDY]
    ss[W_RUNS] = ss[RUNS]

    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    mode = c1.radio("Compare", [MODE_STUDY, MODE_RUNS], key=W_MODE, on_change=_on_mode, horizontal=False)
    by_id = {r.id: r for r in runs}
    if mode == MODE_STUDY:
        if not options:
            c2.info("No studies or groups yet: start a study above, or pick runs.")
            return None, []
        c2.selectbox("Study or group", options, key=W_STUDY, on_change=_on_study,
                     format_func=lambda g: f"{g} · {'study' if g in studies else 'group'} · "
                                           f"{counts.get(g, 0)} runs")
        name = ss[STUDY]
        _sync_query(study=name)
        return name, sorted(r.id for r in store.list_runs(group=name))
    c2.multiselect("Runs", sorted(by_id, reverse=True), key=W_RUNS, on_change=_on_runs,
                   format_func=lambda i: f"#{i} · {by_id[i].name} · {by_id[i].status}",
                   placeholder="Choose two or more runs")
    ids = sorted(ss[RUNS])
    _sync_query(runs=ids)
    return None, ids


def _sync_query(study: str | None = None, runs: list[int] | None = None) -> None:
    want = {STUDY_QUERY: study, RUNS_QUERY: ",".join(map(str, runs)) if runs else None}
    for k, v in want.items():
        if v is None:
            if k in st.query_params:
                del st.query_params[k]
        elif st.query_params.get(k) != v:
            st.query_params[k] = v


# ---- the comparison --------------------------------------------------------------------------
def _progress(records: list[Any], evals: pd.DataFrame, spec: dict[str, Any] | None,
              live: bool) -> None:
    st.subheader("1 · Progress")
    total = len(records)
    by_status: dict[str, int] = {}
    for r in records:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    finished = by_status.get("finished", 0)
    ended = sum(by_status.get(s, 0) for s in FINAL_STATUSES)
    # The bar moves with iterations (ended runs count as complete); the text counts runs.
    tot = sum(r.total_iterations or 0 for r in records)
    its = sum(r.total_iterations or 0 if r.status in FINAL_STATUSES else
              min(r.iterations or 0, r.total_iterations or 0) for r in records)
    frac = 1.0 if ended == total else its / tot if tot else ended / total
    done_eval = set(evals.loc[evals["status"] == "finished", "run_id"]) if len(evals) else set()
    running_eval = set(evals.loc[evals["status"].isin(EVAL_ACTIVE_STATUSES), "run_id"]) if len(evals) else set()
    text = f"{finished} / {total} runs finished"
    if by_status.get("running") or by_status.get("queued"):
        text += f" · {by_status.get('running', 0)} running · {by_status.get('queued', 0)} queued"
    st.progress(frac, text=text)
    c = st.columns(4)
    c[0].metric("Runs finished", f"{finished} / {total}")
    c[1].metric("Running · queued", f"{by_status.get('running', 0) + by_status.get('paused', 0)} · "
                                    f"{by_status.get('queued', 0)}")
    c[2].metric("Evaluations done", f"{len(done_eval)} / {finished}",
                help="Finished runs whose final cell was trained from scratch and tested"
                     + (f"; {len(running_eval)} evaluating or queued now" if running_eval else ""))
    bad = {s: n for s, n in by_status.items() if s in ("failed", "stopped", "interrupted")}
    stopped = bad.get("stopped", 0) + bad.get("interrupted", 0)
    c[3].metric("Failed · stopped", f"{bad.get('failed', 0)} · {stopped}")
    if bad:
        st.caption("Runs that did not finish: " + ", ".join(
            f"#{r.id} {r.name} ({r.status})" for r in records if r.status in bad)
            + ". Open them in the monitor or the Runs page to see why or to resume.")
    if spec and spec.get("evaluate") and finished > len(done_eval) and not live:
        st.caption("Some finished runs are not evaluated: the evaluation was stopped or this "
                   "server restarted. Evaluate them below.")


def _curves(runs: pd.DataFrame, records: list[Any], colors: dict[str, str]) -> dict[str, Any]:
    st.subheader("2 · Curves over iterations")
    st.caption("Mean over seeds (line) and mean ± std (band) per method, on a shared iteration "
               "axis; *n* is the number of seeds.")
    reads = _CachedReads(records)
    figs = {}
    for col, title, y in CURVES:
        figs[col] = cf.curves_figure(compare.method_curves(reads, runs, col), title=title, y_title=y,
                                     colors=colors, height=320)
    for row in (CURVES[0:2], CURVES[2:4], CURVES[4:5]):
        cols = st.columns(2)
        for (col, _, _), slot in zip(row, cols):
            with slot:
                app_state.show_plotly(figs[col], f"cmp_curve_{col}")
    with cols[1]:  # the slot next to the size chart
        st.markdown(READING_NOTES)
    return figs


def _cells(runs: pd.DataFrame, colors: dict[str, str]) -> None:
    st.subheader("3 · Final cells")
    genos = compare.final_genotypes(store, runs["id"].tolist())
    if not genos:
        st.caption("No genotypes yet; each run's cell appears once its supernet derives one.")
        return
    c1, c2 = st.columns([1, 2], vertical_alignment="center")
    show = c1.segmented_control("Cells", ["Both", "Normal", "Reduction"], default="Both",
                                key="cmp_cells_show", label_visibility="collapsed")
    c2.caption("Edge colour = operation, label = its weight. A chart's fullscreen button "
               "(top right, on hover) enlarges it.")
    cell_types = {"Normal": ("normal",), "Reduction": ("reduce",)}.get(show or "Both", CELL_TYPES)
    per_row = max(len(g) for _, g in runs.groupby("method", sort=False))
    per_row = min(per_row, 5)
    for method, g in runs.groupby("method", sort=False):
        st.markdown(f"<span style='color:{colors.get(method, '#333')};font-size:1.4em'>■</span> "
                    f"**{method}**", unsafe_allow_html=True)
        items = list(g.itertuples())
        for start in range(0, len(items), per_row):
            cols = st.columns(per_row, border=True)
            for r, col in zip(items[start:start + per_row], cols):
                with col:
                    seed = "?" if pd.isna(r.seed) else int(r.seed)
                    st.caption(f"seed {seed} · #{r.id} · {r.status}")
                    gt = genos.get(int(r.id))
                    if gt is None:
                        st.caption("no genotype yet")
                        continue
                    for ct in cell_types:
                        # one height for every cell, so that cells compare at a glance
                        st.graphviz_chart(genotype_dot(gt, ct, title=CELL_TITLES[ct]), width="stretch",
                                          height=CELL_HEIGHT)


def _agreement(runs: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    st.subheader("4 · Genotype agreement")
    st.caption("Jaccard index of two runs' chosen (cell, node, input, op) edges: 1 = the same "
               "cell, 0 = nothing shared. High within a method means the search is robust to the "
               "seed; high across methods means they find the same cell.")
    mat, mm = compare.agreement_summary(store, runs)
    wa = compare.within_across(mm)
    fig = cf.agreement_heatmap(mat)
    if len(mat) <= cf.MAX_LABELLED:
        left, right = st.columns([3, 2])
    else:  # a large matrix takes the full width; the summary goes below it
        left, right = st.container(), st.container()
    with left:
        app_state.show_plotly(fig, "cmp_agreement")
    with right:
        m = st.columns(2)
        fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
        m[0].metric("Within methods", fmt(wa["within"]),
                    help="Mean agreement of distinct pairs of runs of the same method (seeds).")
        m[1].metric("Across methods", fmt(wa["across"]),
                    help="Mean agreement of pairs of runs of different methods.")
        st.markdown("**Method × method mean agreement**")
        if mm.empty:
            st.caption("No genotypes yet.")
        else:
            st.dataframe(mm.style.format("{:.2f}", na_rep="—"), key="cmp_mm")
            st.caption("The diagonal averages distinct runs of one method (— with a single seed).")
    return fig, mm


# What a search did, as the tables show it: (label, help) per column of core.viz.compare's tables.
_WHAT_IT_DID = {
    "pruned_ops": ("pruned ops", "Operations pruned for good by the search's end (CRB prunes an op "
                   "whose weight reaches 0); 0 for methods that never prune."),
    "pruned_pct": ("pruned %", "Pruned operations as a share of both cells' operations."),
    "separation": ("separation (x uniform)", "Median over the edges of the strongest non-`none` op's "
                   "weight over the edge's mean weight, at the end. 1 = no op stands out (the "
                   "cell would be chosen on noise); higher = the search has made up its mind."),
    "separated_edges": ("edges ≥ 2x", "Share of edges whose strongest op has at least twice the "
                        "edge's mean weight."),
    "last_genotype_change": ("cell last changed (it)", "Iteration at which the derived cell last "
                             "changed (0: never changed after the first). Early, and the search "
                             "settled early; near the end, and it was still moving."),
    "arch_steps": ("arch steps", "Architecture (alpha) steps taken: every iteration or every "
                   "`period` iterations under the fixed schedule, when FI says under the informed one."),
}
# Per-method table: core.viz.compare.method_table's columns -> (label, help). Means over seeds.
METHOD_COLUMNS = {
    "val_acc_mean": ("supernet val acc", "Supernet accuracy on the architecture split at the last "
                     "epoch end, mean over seeds."),
    "val_acc_std": ("± val", "Standard deviation over seeds."),
    "test_acc_mean": ("test acc", "Test accuracy of the final cell trained from scratch "
                      "(evaluation), mean over seeds."),
    "test_acc_std": ("± test", "Standard deviation over seeds."),
    "size_mean": ("size (params)", "Parameters of the network built from the final cell, mean "
                  "over seeds."),
    "size_std": ("± size", "Standard deviation over seeds."),
    **{f"{k}_mean": (label, help + " Mean over seeds.") for k, (label, help) in _WHAT_IT_DID.items()},
    "seconds_mean": ("wall time (s)", "Search time, mean over seeds."),
}
# Per-run table: core.viz.compare.runs_table's columns -> (label, help).
RUN_COLUMNS = {
    "val_acc": ("val acc", "Supernet accuracy on the architecture split at the last epoch end."),
    "test_acc": ("test acc", "Test accuracy of the final cell trained from scratch (evaluation)."),
    "size": ("size", "Parameters of the network built from the final cell."),
    **_WHAT_IT_DID,
    "iterations": ("iterations", "Iterations (weight steps) run."),
    "seconds": ("seconds", "Search time."),
}
# Display format per column key (its _mean and _std share it); counts, the rest, show "%d".
_FORMATS = {"val_acc": "percent", "test_acc": "percent", "separated_edges": "percent",
            "size": "localized", "pruned_pct": "%.1f%%", "separation": "%.2f", "seconds": "%.1f"}


def _column(label: str, key: str, help: str) -> Any:
    """A number column: its label, its help, and its key's format (a count has no decimals, a
    mean or std of counts over seeds one)."""
    base = key.removesuffix("_mean").removesuffix("_std")
    fmt = _FORMATS.get(base, "%d")
    if key != base and fmt == "%d":
        fmt = "%.1f"
    return st.column_config.NumberColumn(label, help=help, format=fmt)


def _method_table(runs: pd.DataFrame, spec: dict[str, Any] | None, colors: dict[str, str]
                  ) -> tuple[pd.DataFrame, dict[str, Any]]:
    st.subheader("5 · Results per method")
    table = compare.method_table(runs)
    if table.empty:
        st.caption("No runs.")
        return table, {}
    shown = table.rename(columns={k: label for k, (label, _) in METHOD_COLUMNS.items()})
    st.dataframe(shown, hide_index=True, key="cmp_method_table", column_config={
        label: _column(label, k, help) for k, (label, help) in METHOD_COLUMNS.items()})
    st.caption("Means and standard deviations over seeds. Test accuracy comes from training the "
               "final cell from scratch (evaluation); size is the parameter count of the network "
               "built from the final cell. Pruned ops, separation, the cell's last change and the "
               "architecture steps say what each method did to its operation weights; a column's "
               "name shows its meaning on hover.")
    figs = {
        "val_acc": cf.method_bar(table, "val_acc_mean", "val_acc_std", title="Supernet validation accuracy",
                                 colors=colors, percent=True),
        "test_acc": cf.method_bar(table, "test_acc_mean", "test_acc_std", title="Test accuracy (evaluated)",
                                  colors=colors, percent=True, empty_message="not evaluated yet"),
        "size": cf.method_bar(table, "size_mean", "size_std", title="Architecture size (parameters)",
                              colors=colors),
    }
    cols = st.columns(3)
    for (k, fig), col in zip(figs.items(), cols):
        with col:
            app_state.show_plotly(fig, f"cmp_bar_{k}")
    _evaluate_controls(runs, spec)
    with st.expander(f"Per-run results ({len(runs)} runs)"):
        st.dataframe(runs, hide_index=True, key="cmp_runs_table", column_config={
            **{k: _column(label, k, help) for k, (label, help) in RUN_COLUMNS.items()},
            "genotype": st.column_config.TextColumn("genotype", width="large")})
    return table, figs


def _evaluate_controls(runs: pd.DataFrame, spec: dict[str, Any] | None) -> None:
    job = _eval_job()
    rows = _job_rows(job) if job is not None else None
    active = rows[rows["status"].isin(EVAL_ACTIVE_STATUSES)] if rows is not None else None
    busy = active is not None and len(active) > 0
    todo = runs[(runs["status"] == "finished") & runs["test_acc"].isna()]
    if len(runs):  # a run whose evaluation is already queued or running is not offered again
        going = store.evaluations(runs["id"].astype(int).tolist())
        going = set(going.loc[going["status"].isin(EVAL_ACTIVE_STATUSES), "run_id"].astype(int))
        todo = todo[~todo["id"].astype(int).isin(going)]
    names = dict(zip(runs["id"].astype(int), runs["name"]))
    candidates = [int(i) for i in todo["id"]]
    with st.container(border=True):
        st.markdown("**Evaluate derived cells**")
        key = "cmp_eval_pick"
        picked = st.session_state.get(key)
        st.session_state[key] = candidates if picked is None else [i for i in picked if i in candidates]
        c = st.columns([4, 1, 1], vertical_alignment="bottom")
        pick = c[0].multiselect("Finished runs not evaluated yet", candidates, key=key,
                                format_func=lambda i: f"#{i} · {names.get(i, '?')}",
                                placeholder="every finished run is evaluated" if not candidates else None)
        presets = list_eval_presets()
        st.session_state.setdefault("cmp_eval_preset", (spec or {}).get("eval_preset", "demo")
                                    if (spec or {}).get("eval_preset") in presets else presets[0])
        preset = c[1].selectbox("Evaluation preset", presets, key="cmp_eval_preset")
        if c[2].button("Evaluate", icon=":material/science:", key="cmp_evaluate",
                       disabled=busy or not pick, width="stretch",
                       help="Each run's cell trains in a worker process, queued with the searches."):
            _start_evaluation(pick, preset)
            st.rerun()  # the whole page: the comparison refreshes while the evaluations go
        if busy:
            k = len(rows) - len(active)
            running = [int(r) for r in active.loc[active["status"] == "running", "run_id"]]
            queued = [int(r) for r in active.loc[active["status"] == "queued", "run_id"]]
            what = "; ".join(filter(None, [
                "training " + ", ".join(f"#{r} · {names.get(r, '')}" for r in running) if running else "",
                f"{len(queued)} queued" if queued else ""]))
            i1, i2 = st.columns([5, 1], vertical_alignment="center")
            i1.info(f"Evaluating ({k} of {len(job['ids'])} done, preset `{job['preset']}`): {what} …",
                    icon=":material/hourglass_top:")
            if i2.button("Stop", icon=":material/stop:", key="cmp_eval_stop", width="stretch",
                         help="Drops the queued evaluations and ends the running ones after their "
                              "current iteration."):
                for eid in active["id"]:
                    manager.stop_evaluation(int(eid))
                st.rerun()
        elif rows is not None and len(rows):
            done = rows[rows["status"] == "finished"]
            failed = rows[rows["status"] != "finished"]
            if len(failed):
                st.warning(f"Evaluated {len(done)} of {len(job['ids'])} runs; " + "; ".join(
                    f"#{int(r.run_id)} {r.status}: {app_state.first_line(r.error) or r.status}"
                    for r in failed.itertuples()), icon=":material/warning:")
            else:
                st.caption(f"Last evaluation: {len(done)} runs with preset `{job['preset']}`.")


def _export(label: str, table: pd.DataFrame, runs: pd.DataFrame, figs: dict[str, Any]) -> None:
    st.subheader("6 · Export")
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label) or "comparison"
    c = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
    c[0].download_button("Method table (CSV)", table.to_csv(index=False), file_name=f"{stem}_methods.csv",
                         mime="text/csv", key="cmp_dl_methods", icon=":material/download:")
    c[1].download_button("Per-run table (CSV)", runs.to_csv(index=False), file_name=f"{stem}_runs.csv",
                         mime="text/csv", key="cmp_dl_runs", icon=":material/download:")
    names = list(figs)
    which = c[2].selectbox("Figure", names, key="cmp_dl_fig_pick",
                           format_func=lambda k: figs[k]["title"])
    fig = figs[which]["figure"]
    c[3].download_button("Figure (HTML)", lambda: fig.to_html(include_plotlyjs=True, full_html=True),
                         file_name=f"{stem}_{which}.html", mime="text/html", key="cmp_dl_fig",
                         icon=":material/download:")
    st.caption("The HTML file is standalone (plotly.js inside, works offline). The camera button "
               "in each chart's toolbar downloads it as PNG.")


def _live_progress(run_ids: list[int], study: str | None, started_live: bool) -> None:
    records = sorted(store.list_runs(ids=run_ids), key=lambda r: r.id)
    if not records:
        st.warning("These runs are no longer in the store.")
        return
    live = any(_is_live(r) for r in records) or _evaluating([r.id for r in records])
    if started_live and not live:
        st.rerun()  # everything ended: draw the page once more, without the timers
    spec = store.get_study(study) if study else None
    _progress(records, store.evaluations([r.id for r in records]), spec, live)
    if started_live:
        st.caption(f"Live · progress refreshed {time.strftime('%H:%M:%S')} every {REFRESH_S:g} s; "
                   f"the sections below every {DETAIL_REFRESH_S:g} s")


def _comparison(label: str, run_ids: list[int], study: str | None, started_live: bool) -> None:
    records = sorted(store.list_runs(ids=run_ids), key=lambda r: r.id)
    if not records:
        return
    spec = store.get_study(study) if study else None
    runs = compare.runs_table(store, [r.id for r in records])
    colors = cf.method_colors(list(dict.fromkeys(runs["method"])))
    curve_figs = _curves(runs, records, colors)
    _cells(runs, colors)
    agreement_fig, _ = _agreement(runs)
    table, bar_figs = _method_table(runs, spec, colors)
    figs = {col: {"title": title, "figure": curve_figs[col]} for col, title, _ in CURVES}
    figs["agreement"] = {"title": "Genotype agreement", "figure": agreement_fig}
    titles = {"val_acc": "Supernet validation accuracy", "test_acc": "Test accuracy",
              "size": "Architecture size"}
    figs.update({f"bar_{k}": {"title": f"{titles[k]} (bars)", "figure": f} for k, f in bar_figs.items()})
    _export(label, table, runs, figs)
    if started_live:
        st.caption(f"Sections 2-6 refreshed {time.strftime('%H:%M:%S')}")


# ---- page ----------------------------------------------------------------------------------
st.title("Compare")
st.caption("Methods side by side across seeds: curves, final cells, genotype agreement and "
           "evaluated accuracy.")
app_state.show_flash()
all_runs = store.list_runs()
_study_form(expanded=not all_runs)
if not all_runs:
    st.info("No runs yet. Start a study above, or launch runs from the Launch page and pick them here.")
    st.stop()

study, run_ids = _choose(all_runs)
if study is not None:
    spec = store.get_study(study)
    if spec:
        st.markdown(f"Study **{study}**: " + _spec_line(spec))
if not run_ids:
    if study is None and st.session_state.get(MODE) == MODE_RUNS:
        st.info("Choose the runs to compare.")
    elif study is not None:
        st.info(f"The group **{study}** has no runs.")
    st.stop()

label = study or "runs_" + "_".join(map(str, run_ids[:8]))
live_now = any(_is_live(r) for r in store.list_runs(ids=run_ids)) or _evaluating(run_ids)
st.fragment(_live_progress, run_every=REFRESH_S if live_now else None)(run_ids, study, live_now)
st.fragment(_comparison, run_every=DETAIL_REFRESH_S if live_now else None)(label, run_ids, study, live_now)
