"""Learn: the ideas of DARTS-PRIME as four live toys on the engine's own parts
(core.viz.toys computes, core.viz.toy_figures draws). Each section is a fragment: a control,
Step or the scrub slider redraws that section only, and Play reruns it on a timer."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import streamlit as st

import app_state
from core.engine.activations import ACTIVATIONS, op_names
from core.engine.discretize import DEFAULT_THRESHOLD, RULES, num_edges
from core.engine.evalnet import architecture_size, validate_genotype
from core.engine.evaluate import list_eval_presets, make_eval_config
from core.engine.genotype import CELL_TITLES, CELL_TYPES, PUBLISHED, Genotype, GenotypeError
from core.runs.cell_runs import genotype_run
from core.runs.store import EVAL_ACTIVE_STATUSES
from core.viz import toy_figures as TF
from core.viz import toys
from core.viz.cells import genotype_dot

app_state.ensure_app_navigation()

PLAY_EVERY_S = 0.1  # counted from the end of the previous run; the browser's drawing, not this, limits Play's rate
ALPHA_STEPS = 60          # steps of the alpha toy
PULL_STEPS = 40           # architecture steps of the proximity/ADMM toy
SCHEDULE_PLAY_TICKS = 60  # Play crosses an FI sequence in this many updates
EVAL_REFRESH_S = 2.0
PAPER_SIZE = dict(C=36, layers=20, num_classes=10)  # how papers report a cell's size
# Launch's own widget keys (pages/launch.py METHOD_KEY, PRESET_KEY, KEY(name) = "cfg_" + name):
# dropped here so that Launch fills its form from LAUNCH_VALUES.
LAUNCH_KEYS = ("launch_method", "launch_preset")


# ---- shared parts ---------------------------------------------------------------------------
def _player(prefix: str, last: int, per_tick: int = 1, label: str = "step",
            start_at_end: bool = False) -> int:
    """Step, Play / Pause, Reset and a slider over 0..last; returns the position to show.
    While playing, every run of the section's fragment (the timer's) moves ``per_tick``.
    ``start_at_end``: a section whose start is empty opens on the whole trajectory."""
    k_pos, k_play = f"{prefix}_pos", f"{prefix}_playing"
    pos = min(int(st.session_state.get(k_pos, last if start_at_end else 0)), last)
    playing = bool(st.session_state.get(k_play, False))
    if playing:
        pos = min(pos + per_tick, last)
    c = st.columns([1, 1, 1, 3], vertical_alignment="bottom")
    if c[0].button("Step", key=f"{prefix}_step", icon=":material/skip_next:", disabled=pos >= last):
        pos = min(pos + per_tick, last)
    play = c[1].button("Pause" if playing else "Play", key=f"{prefix}_play",
                       icon=":material/pause:" if playing else ":material/play_arrow:")
    if c[2].button("Reset", key=f"{prefix}_reset", icon=":material/replay:"):
        pos = 0
    st.session_state[k_pos] = pos
    if play or (playing and pos >= last):
        # The timer is set when the page runs: starting or stopping it reruns the page once.
        if play and not playing and pos >= last:
            st.session_state[k_pos] = 0  # Play at the end starts over
        st.session_state[k_play] = bool(play and not playing)
        st.rerun()
    return c[3].slider(f"Scrub: {label}", 0, last, key=k_pos)


def _section(prefix: str, body: Callable[[], None]) -> None:
    """Runs ``body`` as a fragment, on Play's timer while the section plays."""
    playing = bool(st.session_state.get(f"{prefix}_playing", False))
    st.fragment(body, run_every=PLAY_EVERY_S if playing else None)()


def _open_launch(method: str) -> None:
    """Opens Launch with ``method``'s demo settings in its form."""
    for k in [k for k in st.session_state if k in LAUNCH_KEYS or str(k).startswith("cfg_")]:
        del st.session_state[k]
    st.session_state[app_state.LAUNCH_VALUES] = {"launch_method": method, "launch_preset": "demo"}
    st.switch_page("pages/launch.py")


def _takeaway(prefix: str, text: str, method: str) -> None:
    c = st.columns([4, 1], vertical_alignment="center")
    c[0].info(text, icon=":material/lightbulb:")
    if c[1].button(f"Launch {method}", key=f"{prefix}_launch", icon=":material/rocket_launch:",
                   help=f"Opens Launch with the {method} demo settings filled in."):
        _open_launch(method)


@st.cache_data(max_entries=64, show_spinner=False)
def _alpha_runs(useful: tuple[tuple[str, float], ...], acts: tuple[str, ...], lr: float,
                noise: float, seed: int) -> dict[str, toys.AlphaRun]:
    return toys.alpha_toy(dict(useful), acts, lr, noise, ALPHA_STEPS, seed)


@st.cache_data(max_entries=64, show_spinner=False)
def _pull(regularizer: str, activation: str, rho: float, every: int, t: float, lr: float,
          seed: int) -> toys.PullTrace:
    return toys.pull_trace(regularizer, activation, rho, every, t, lr, PULL_STEPS, seed)


@st.cache_data(max_entries=16, show_spinner=False, ttl=60)
def _run_fi(path: str, run_id: int) -> np.ndarray:
    steps = app_state.get_store().steps(run_id, columns=["step", "fi"])
    return steps["fi"].dropna().to_numpy(dtype=float)


# ---- 1. how alpha becomes operation weights -------------------------------------------------
def _alpha_body() -> None:
    left, right = st.columns([1, 3], gap="medium")
    with left:
        acts = st.multiselect("Activations", ACTIVATIONS.names(), key="l1_acts",
                              default=list(toys.ALPHA_TOY_ACTIVATIONS),
                              help="Each gets the same usefulness, noise and learning rate.")
        lr = st.slider("Learning rate", 0.05, 2.0, 0.5, 0.05, key="l1_lr")
        noise = st.slider("Noise on the usefulness", 0.0, 1.0, 0.0, 0.05, key="l1_noise",
                          help="A fresh random amount per step and op, as a real batch gives.")
        with st.expander("Usefulness of each op", expanded=True):
            useful = {op: st.slider(op, -1.0, 1.0, toys.DEFAULT_USEFULNESS[op], 0.05,
                                    key=f"l1_u_{op}")
                      for op in toys.DEFAULT_USEFULNESS}
    with right:
        if not acts:
            st.warning("Activations: pick at least one of " + ", ".join(ACTIVATIONS.names()) + ".")
            return
        runs = _alpha_runs(tuple(useful.items()), tuple(acts), lr, noise, 0)
        step = _player("l1", ALPHA_STEPS)
        app_state.show_plotly(TF.alpha_figure(runs, step), key="l1_chart")
        notes = []
        for name, run in runs.items():
            w = run.weights[step]
            top = run.ops[int(np.argmax(w))]
            gone = [f"`{op}` at step {s}" for op, s in run.pruned_at.items() if s <= step]
            notes.append(f"**{name}**: weights sum to {w.sum():.2f}, strongest `{top}`"
                         + (f"; pruned: {', '.join(gone)}" if gone else "; nothing pruned"))
        st.markdown("  \n".join(notes))


def alpha_section() -> None:
    st.header("1. How alpha becomes operation weights")
    st.markdown(
        "Every edge of the supernet runs all its operations at once and adds their outputs, each "
        "scaled by a **weight**. The weights come from learnable numbers α through an "
        "**activation**. Here one edge gets a made-up *usefulness* per op: how much the loss "
        "falls when that op's weight grows. Each step moves α down the gradient of")
    st.latex(r"\mathcal{L}(\alpha) = -\sum_k u_k\, w_k(\alpha),\qquad "
             r"\alpha \leftarrow \alpha - \eta\, \nabla_\alpha \mathcal{L}")
    st.markdown(
        "With **softmax** the weights always sum to 1, so when one op rises the others must fall. "
        "**Sigmoid** weights move on their own. **CRB** clamps α to [0, 1]: an op whose α reaches 0 "
        "is pruned for good and never computed again.")
    _section("l1", _alpha_body)
    _takeaway("l1", "In a real search the usefulness is the validation loss's gradient: with CRB "
                    "most ops reach zero early and the supernet gets cheaper as it goes.",
              "prime-crb")


# ---- 2. when to take an architecture step ---------------------------------------------------
def _schedule_body() -> None:
    left, right = st.columns([1, 3], gap="medium")
    with left:
        source = st.radio("FI sequence", ["synthetic", "a stored run"], key="l2_source",
                          horizontal=True)
        fi = None
        if source == "synthetic":
            level = st.select_slider("FI level", [0.01, 0.1, 1.0, 10.0, 100.0], value=1.0,
                                     key="l2_level")
            noise = st.slider("FI noise", 0.0, 1.5, 0.3, 0.05, key="l2_noise")
            fi = toys.synthetic_fi(300, level, noise, seed=0)
        else:
            runs = [r for r in app_state.get_store().list_runs() if r.iterations]
            if not runs:
                st.caption("No stored run has iterations yet: start one from Launch or Home.")
            else:
                run = st.selectbox("Run", runs, key="l2_run",
                                   format_func=lambda r: f"#{r.id} {r.name} ({r.method})")
                fi = _run_fi(app_state.get_store().path, run.id)
                if not len(fi):
                    st.caption("This run recorded no FI.")
                    fi = None
        period = st.slider("Period", 1, 20, 10, key="l2_period",
                           help="The schedule aims at one architecture step every period+1 iterations.")
        multiplier = st.slider("Multiplier", 1.01, 1.5, 1.05, 0.01, key="l2_mult",
                               help="The threshold grows by this each iteration without a step.")
        ewma = st.slider("EWMA weight of the newest FI", 0.05, 1.0, 0.2, 0.05, key="l2_ewma")
        init = st.select_slider("Initial threshold", [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0],
                                value=1.0, key="l2_init")
        seed = st.checkbox("Seed the threshold with the first FI", key="l2_seed",
                           help="The demo preset's departure: steps from the start.")
    with right:
        if fi is None:
            return
        trace = toys.schedule_trace(fi, period, multiplier, ewma, init, seed)
        n = len(fi)
        upto = _player("l2", n, per_tick=max(1, -(-n // SCHEDULE_PLAY_TICKS)), label="iterations",
                       start_at_end=True)
        app_state.show_plotly(TF.schedule_figure(trace, upto), key="l2_chart")
        i = max(1, upto)
        c = st.columns(3)
        c[0].metric("Architecture steps", int(trace.stepped[:i].sum()), help=f"in {i} iterations")
        c[1].metric("Step ratio so far", f"{trace.ratio[i - 1]:.3f}")
        c[2].metric("Target 1/(period+1)", f"{trace.target:.3f}")


def schedule_section() -> None:
    st.header("2. When to take an architecture step")
    st.markdown(
        "DARTS updates the architecture after every weight step. DARTS-PRIME's **informed "
        "schedule** waits until the network weights have settled: it watches **FI**, the size "
        "of the weights' gradient, and steps when FI's moving average falls below a threshold. "
        "The threshold grows while it waits and shrinks sharply when it steps:")
    st.latex(r"\tau \leftarrow \tau\cdot m \text{ (no step)},\qquad "
             r"\tau \leftarrow \tau\cdot m^{-\text{period}} \text{ (step)}")
    st.markdown("So on steady FI it settles at one step every period+1 iterations, whatever the "
                "level of FI.")
    _section("l2", _schedule_body)
    _takeaway("l2", "In a real search the schedule spends architecture steps when the weights "
                    "are ready for them: fewer steps than DARTS, each on better-trained weights.",
              "darts-prime")


# ---- 3. pulled toward a cell: proximity and ADMM --------------------------------------------
def _pull_body() -> None:
    left, right = st.columns([1, 3], gap="medium")
    with left:
        reg = st.radio("Regularizer", ["proximity", "admm"], key="l3_reg", horizontal=True)
        act = st.radio("Activation", ["crb", "softmax"], key="l3_act", horizontal=True)
        rho = st.slider("rho (strength of the pull)", 0.1, 5.0, 1.0, 0.1, key="l3_rho")
        every = st.slider("ADMM: update Z and U every ... steps", 1, 10, 3, key="l3_every")
        t = st.slider("Progress t of the search (proximity pulls with t·rho/2)", 0.0, 1.0, 1.0,
                      0.05, key="l3_t")
        lr = st.slider("Learning rate", 0.01, 0.3, 0.05, 0.01, key="l3_lr")
        seed = st.number_input("Starting weights (seed)", 0, 999, 0, key="l3_seed")
    with right:
        traces = {r: _pull(r, act, rho, every, t, lr, int(seed)) for r in ("proximity", "admm")}
        trace = traces[reg]
        step = _player("l3", PULL_STEPS, start_at_end=True)
        app_state.show_plotly(TF.pull_figure(trace, step, toys.PULL_TOY_NODES), key="l3_bars")
        app_state.show_plotly(TF.gap_figure([traces["proximity"], traces["admm"]], step),
                              key="l3_gap")
        c = st.columns(3)
        c[0].metric("Gap at the start", f"{trace.gap[0]:.3f}")
        c[1].metric(f"Gap at step {step}", f"{trace.gap[step]:.3f}",
                    delta=f"{trace.gap[step] - trace.gap[0]:+.3f}", delta_color="inverse")
        if trace.updates:
            c[2].metric("ADMM updates so far", sum(u <= step for u in trace.updates))


def pull_section() -> None:
    st.header("3. Pulled toward a cell: proximity and ADMM")
    st.markdown(
        "At the end, a search keeps only the best two inputs of each node and the best op on "
        "each: the **discrete cell** D(A). The weights A are usually far from it, so the network "
        "trained with A is not the one that is kept. DARTS-PRIME adds a penalty that pulls A "
        "toward its own discrete projection; ADMM pulls it toward a target Z that it updates "
        "every few steps, with U remembering how far A kept from Z. Here the penalty is the only "
        "loss, on a cell of two nodes (five edges) and four ops:")
    st.latex(r"\text{proximity: } t\,\tfrac{\rho}{2}\,\lVert A - D(A)\rVert,\qquad "
             r"\text{ADMM: } \tfrac{\rho}{2}\,\lVert A - Z + U\rVert")
    _section("l3", _pull_body)
    _takeaway("l3", "In a real search the pull makes the weights at the end say which cell was "
                    "found: a small gap means the evaluated cell is the one the supernet trained.",
              "prime-admm")


# ---- 4. from weights to a cell --------------------------------------------------------------
TOY_OPS = op_names("softmax")


def _weights_editor(nodes: int, seed: int) -> np.ndarray:
    start = toys.toy_cell_weights(nodes, seed, TOY_OPS)
    df = pd.DataFrame(start, index=toys.edge_labels(nodes), columns=TOY_OPS)
    cfg = {op: st.column_config.NumberColumn(op, min_value=0.0, max_value=1.0, step=0.001,
                                              format="%.3f") for op in TOY_OPS}
    edited = st.data_editor(df, key=f"l4_editor_{nodes}_{seed}", column_config=cfg,
                            width="stretch")
    return edited.to_numpy(dtype=float)


def _cell_body() -> None:
    left, right = st.columns([1, 4], gap="medium")
    with left:
        nodes = st.slider("Nodes", 2, 4, 3, key="l4_nodes")
        rule = st.radio("Rule", list(RULES), key="l4_rule", horizontal=True,
                        help="darts: the two strongest edges per node. threshold (FairDARTS): "
                             "of those, only edges whose best op reaches the threshold.")
        threshold = st.slider("Threshold", 0.0, 1.0, DEFAULT_THRESHOLD, 0.05, key="l4_threshold",
                              disabled=rule != "threshold")
        seed = int(st.number_input("Starting weights (seed)", 0, 999, 0, key="l4_seed"))
    with right:
        with st.expander(f"Edit the weights ({num_edges(nodes)} edges × {len(TOY_OPS)} ops)",
                         expanded=True):
            weights = _weights_editor(nodes, seed)
        try:
            choice = toys.cell_choice(weights, TOY_OPS, rule, threshold)
        except ValueError as exc:
            st.error(str(exc))
            return
        upto = _player("l4", nodes, label="nodes decided", start_at_end=True)
        c = st.columns([3, 2])
        c[0].dataframe(TF.choice_table(weights, TOY_OPS, choice, upto), key="l4_choice")
        c[1].graphviz_chart(genotype_dot(TF.partial_genotype(choice, TOY_OPS, upto), "normal",
                                         redraw=f"{upto}"))
        kept = choice.decided(upto)
        labels = toys.edge_labels(nodes)
        st.caption("Kept: " + ("; ".join(f"{labels[e]}: `{TOY_OPS[k]}` ({w:.2f})"
                                         for e, k, w in kept) or "nothing yet: press Step"))
    st.session_state["l4_genotype"] = str(choice.genotype)


def cell_section() -> None:
    st.header("4. From weights to a cell")
    st.markdown(
        "The **DARTS rule** reads a cell off the weights: for each node, rank its incoming edges "
        "by their strongest op (`none` never counts), keep the top two, and on each keep that "
        "strongest op. Edit any weight and watch the choice follow; Step decides one node at a "
        "time, as the rule does.")
    _section("l4", _cell_body)
    _takeaway("l4", "In a real search this rule runs on the final weights; when two edges or two "
                    "ops are close, a tiny change of weight changes the cell.", "darts")


# ---- published cells ------------------------------------------------------------------------
PASTE = "paste a genotype"
TOY_CELL = "the cell of section 4"


def _cell_panel(g: Genotype, key: str) -> None:
    st.metric("Evaluation-network size", f"{architecture_size(g, **PAPER_SIZE):,}",
              help="Parameters at C=36, 20 layers, 10 classes, auxiliary head excluded.")
    for ct in CELL_TYPES:
        st.graphviz_chart(genotype_dot(g, ct, title=CELL_TITLES[ct]))


def _found_cell() -> tuple[str, Genotype | None, int | None]:
    """(name, genotype, stored run id or None) of the left side's cell."""
    store = app_state.get_store()
    runs = [r for r in store.list_runs() if r.genotype]
    options = [TOY_CELL] + [f"run #{r.id} {r.name}" for r in runs]
    pick = st.selectbox("Found cell", options, key="l5_found")
    if pick == TOY_CELL:
        text = st.session_state.get("l4_genotype")
        g = Genotype.parse(text) if text else None
        try:
            if g is not None:
                validate_genotype(g)
        except ValueError as exc:
            st.caption(f"The cell of section 4 cannot be built: {exc}")
            g = None
        return "Learn: cell of section 4", g, None
    run = runs[options.index(pick) - 1]
    return run.name, Genotype.parse(run.genotype), run.id


def _published_cell() -> tuple[str, Genotype | None]:
    pick = st.selectbox("Published cell", [*PUBLISHED, PASTE], key="l5_published",
                        index=list(PUBLISHED).index("NASNet-A"))
    if pick != PASTE:
        return pick, PUBLISHED[pick]
    text = st.text_area("Genotype text (DARTS form)", key="l5_text", height=120,
                        placeholder="Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], "
                                    "reduce=[...], reduce_concat=[2, 3, 4, 5])")
    if not text.strip():
        st.caption("Paste a genotype as DARTS's genotypes.py writes it.")
        return "pasted cell", None
    try:
        g = Genotype.parse(text)
        validate_genotype(g)
    except (GenotypeError, ValueError) as exc:
        st.error(f"Genotype text: {exc}")
        return "pasted cell", None
    return "pasted cell", g


def _evaluations(run_ids: tuple[int, ...]) -> None:
    evals = app_state.get_store().evaluations(list(run_ids))
    if not len(evals):
        return
    show = evals[["id", "run_id", "status", "test_acc", "params", "error"]].rename(
        columns={"id": "evaluation", "run_id": "run", "test_acc": "test acc"})
    st.dataframe(show, hide_index=True, key="l5_evals", column_config={
        "test acc": st.column_config.NumberColumn("test acc", format="percent"),
        "params": st.column_config.NumberColumn("params", format="localized")})


def published_section() -> None:
    st.header("Set a found cell beside a published one")
    st.markdown(
        "Cells from the literature in the same form: DARTS's own, NASNet-A and AmoebaNet-A "
        "(five nodes, operations outside our search space, their own output lists), P-DARTS "
        "and PC-DARTS; or paste any genotype text. **Evaluate** trains a cell from scratch with "
        "an evaluation preset, in a worker process, exactly as a found cell is evaluated; the "
        "cell is kept as a run of the group `published cells` on the Runs page.")
    preset = st.selectbox("Evaluation preset", list_eval_presets(), key="l5_preset",
                          index=list_eval_presets().index("demo"),
                          help="demo: a few minutes on a CPU; tiny: seconds; paper: a GPU.")
    manager, store = app_state.get_manager(), app_state.get_store()
    cols = st.columns(2, gap="large")
    ids: list[int] = []
    for side, col in zip(("found", "published"), cols):
        with col:
            if side == "found":
                name, g, run_id = _found_cell()
            else:
                (name, g), run_id = _published_cell(), None
            if g is None:
                continue
            _cell_panel(g, f"l5_{side}")
            if st.button(f"Evaluate {name}", key=f"l5_eval_{side}", icon=":material/science:"):
                run_id = run_id or genotype_run(store, g, name)
                eid = manager.evaluate(run_id, make_eval_config(preset))
                st.session_state.setdefault("l5_eval_runs", []).append(run_id)
                st.success(f"Evaluation #{eid} of run #{run_id} queued (preset `{preset}`).")
    ids = list(dict.fromkeys(st.session_state.get("l5_eval_runs", [])))
    if ids:
        evals = store.evaluations(ids)
        going = bool(len(evals)) and evals["status"].isin(EVAL_ACTIVE_STATUSES).any()
        st.fragment(_evaluations, run_every=EVAL_REFRESH_S if going else None)(tuple(ids))


# ---- the page -------------------------------------------------------------------------------
st.title("Learn")
# No stale fade: a playing section reruns five times a second, and Streamlit's opacity fade on
# each of its elements at every rerun reads as flicker (the Monitor does the same).
st.html("<style>[data-testid='stElementContainer'] {transition: none !important; "
        "opacity: 1 !important;}</style>")
app_state.show_flash()
st.markdown(
    "Four small toys, each on the engine's own code: what you see here is exactly what a search "
    "does, on a few dozen numbers instead of a network. Move a control and the section answers "
    "at once; **Step** goes one update further, **Play** animates, **Reset** starts over, and the "
    "slider goes back through what was computed.")
alpha_section()
schedule_section()
pull_section()
cell_section()
published_section()
