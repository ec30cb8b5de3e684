"""Launch: a search's every setting, pre-filled from a method and a data preset, validated by
SearchConfig itself, with a run-time estimate from a short calibration; Start hands the config
to the RunManager and opens the monitor."""
from __future__ import annotations

import json
import math
import time
from typing import Any

import streamlit as st

import app_state
from core.data import get_dataset_spec, list_datasets
from core.engine.activations import list_activations
from core.engine.config import (
    GROUPS,
    MAX_TEXT_CHARS,
    ConfigError,
    SearchConfig,
    field_info,
    list_methods,
    list_presets,
    method_fields,
    preset_fields,
)
from core.engine.regularizers import list_regularizers
from core.engine.schedules import list_schedules
from core.runs.groups import (
    MAX_VALUES,
    MIN_VALUES,
    group_seconds,
    rounds,
    run_cpu_seconds,
    start_group,
    varied_fields,
    vary,
)
from core.runs.store import MAX_NAME_CHARS

app_state.ensure_app_navigation()

INFO = {f["name"]: f for f in field_info()}
# Fields whose choices come from a registry (the one list of each family).
REGISTRY_CHOICES = {"dataset": list_datasets, "activation": list_activations,
                    "schedule": list_schedules, "regularizer": list_regularizers}
LABELS = ("method", "preset")  # set by the two preset selectors, not typed in
KEY = "cfg_{}".format          # widget key of a field
METHOD_KEY, PRESET_KEY = "launch_method", "launch_preset"
DEFAULT_METHOD, DEFAULT_PRESET = "darts-prime", "demo"
# The Estimate button waits this long for the worker's figure before the page polls for it.
ESTIMATE_WAIT_S = 90.0


def _devices() -> list[str]:
    import torch

    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def _typed(name: str, value: Any) -> Any:
    kind = INFO[name]["kind"]
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return value


def _set_fields(values: dict[str, Any]) -> None:
    for name, v in values.items():
        if name in INFO and name not in LABELS:
            st.session_state[KEY(name)] = _typed(name, v)


def _apply_method() -> None:
    _set_fields(method_fields(st.session_state[PRESET_KEY], st.session_state[METHOD_KEY]))


def _apply_preset() -> None:
    _set_fields(preset_fields(st.session_state[PRESET_KEY], st.session_state[METHOD_KEY]))


def _reset_form() -> None:
    from core.engine.config import make_config

    _set_fields(make_config(st.session_state[PRESET_KEY], st.session_state[METHOD_KEY]).to_dict())


def _init_state() -> None:
    """Widget values survive page switches through LAUNCH_VALUES (keyed widget state is dropped
    when its page is not shown)."""
    from core.engine.config import make_config

    saved = st.session_state.get(app_state.LAUNCH_VALUES) or {}
    st.session_state.setdefault(METHOD_KEY, saved.get(METHOD_KEY, DEFAULT_METHOD))
    st.session_state.setdefault(PRESET_KEY, saved.get(PRESET_KEY, DEFAULT_PRESET))
    base = make_config(st.session_state[PRESET_KEY], st.session_state[METHOD_KEY]).to_dict()
    for name in INFO:
        if name not in LABELS and KEY(name) not in st.session_state:
            st.session_state[KEY(name)] = _typed(name, saved.get(name, base[name]))
    for k in ("run_name", "run_group"):
        st.session_state.setdefault(k, saved.get(k, ""))


def _labels(values: dict[str, Any]) -> dict[str, str]:
    """method/preset labels: the chosen presets, or 'custom' once a field they set is changed."""
    method, preset = st.session_state[METHOD_KEY], st.session_state[PRESET_KEY]
    same = lambda d: all(values.get(k) == _typed(k, v) for k, v in d.items())  # noqa: E731
    return {"method": method if same(method_fields(preset, method)) else "custom",
            "preset": preset if same(preset_fields(preset, method)) else "custom"}


def _float_step(default: float) -> float:
    if not default:
        return 0.01
    return 10.0 ** (math.floor(math.log10(abs(default))) - 1)


def _help(name: str) -> str:
    f = INFO[name]
    bounds = []
    if "gt" in f:
        bounds.append(f"> {f['gt']}")
    if f.get("min") is not None:
        bounds.append(f">= {f['min']}")
    if f.get("max") is not None:
        bounds.append(f"<= {f['max']}")
    return f["help"] + (f"  \nAllowed: {', '.join(bounds)}." if bounds else "")


def _widget(name: str) -> None:
    f, key, help_ = INFO[name], KEY(name), _help(name)
    kind = f["kind"]
    if name in REGISTRY_CHOICES or name == "device" or kind == "choice":
        options = (REGISTRY_CHOICES[name]() if name in REGISTRY_CHOICES else
                   _devices() if name == "device" else f["choices"])
        if st.session_state.get(key) not in options:
            options = options + [st.session_state[key]]  # keep a value we cannot offer, to show its error
        st.selectbox(name, options, key=key, help=help_)
        if name == "dataset" and st.session_state[key] in REGISTRY_CHOICES["dataset"]():
            st.caption(get_dataset_spec(st.session_state[key]).description)
    elif kind == "bool":
        st.checkbox(name, key=key, help=help_)
    elif kind == "int":
        st.number_input(name, step=1, key=key, help=help_)
    elif kind == "float":
        st.number_input(name, step=_float_step(f["default"]), format="%g", key=key, help=help_)
    else:  # the data folder: a path beyond MAX_TEXT_CHARS is cut in the browser, not sent
        st.text_input(name, key=key, help=help_, max_chars=MAX_TEXT_CHARS)


def _estimate_outcome(status: dict[str, Any] | None, slot: Any) -> bool:
    """Settles an ended calibration (the figure into session state, or its error shown);
    False while it is still queued or running."""
    if status is None:  # the manager was replaced (server restart): nothing to wait for
        st.session_state.pop(app_state.LAUNCH_ESTIMATE_JOB, None)
        return True
    if status["status"] in ("queued", "running"):
        return False
    st.session_state.pop(app_state.LAUNCH_ESTIMATE_JOB, None)
    if status["status"] == "finished":
        st.session_state[app_state.LAUNCH_ESTIMATE] = status["result"]
    elif status["status"] == "failed":  # a dataset that cannot load, a device that is missing, ...
        slot.error(f"Calibration failed: {(status.get('error') or '').strip().splitlines()[0]}")
    return True


def _wait_for_estimate(job: int, slot: Any) -> bool:
    """Waits up to ESTIMATE_WAIT_S for the worker's figure, in short slices with a ticking
    caption: the wait sleeps (no compute in the server, other tabs go on), and each caption lets
    Streamlit end this run at once if the user does something else. True once it ended."""
    manager = app_state.get_manager()
    tick = slot.empty()
    t0 = time.monotonic()
    while time.monotonic() - t0 < ESTIMATE_WAIT_S:
        status = manager.wait_estimate(job, timeout=0.25)
        if _estimate_outcome(status, slot):
            tick.empty()
            return True
        where = f"worker process {status['pid']}" if status.get("pid") else "waiting for a worker"
        tick.caption(f"{where} · {time.monotonic() - t0:.0f} s")
    tick.empty()
    return False


def _estimate_poll(job: int) -> None:
    """While a calibration that outlived its wait is going: look again every second."""
    status = app_state.get_manager().estimate_status(job)
    if status is not None and status["status"] in ("queued", "running"):
        with st.spinner(f"Timing a few iterations ({status['status']}) …", show_time=True):
            st.caption("The figure appears here when the worker process is done.")
        return
    st.rerun()  # ended: the page shows the figure (or the error)


# ---- page ------------------------------------------------------------------------------------
st.title("Launch a search")
app_state.show_flash()
_init_state()

c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
c1.selectbox("Method preset", list_methods(), key=METHOD_KEY, on_change=_apply_method,
             help="Sets activation, schedule, period, data split and regularizer (docs/algorithms.md).")
c2.selectbox("Data preset", list_presets(), key=PRESET_KEY, on_change=_apply_preset,
             help="Sets dataset, image size, supernet size and budget. demo: minutes on a CPU; "
                  "tiny: seconds; paper: CIFAR-10, needs a GPU.")
c3.button("Reset form to presets", on_click=_reset_form)

values = {name: st.session_state[KEY(name)] for name in INFO if name not in LABELS}
labels = _labels(values)
config: SearchConfig | None = None
error: ConfigError | None = None
try:
    config = SearchConfig(**values, **labels)
except ConfigError as exc:
    error = exc
error_group = INFO[error.field]["group"] if error is not None and error.field in INFO else None

st.caption(f"Labels stored with the run: method **{labels['method']}**, preset **{labels['preset']}** "
           "(custom once you change a field the preset sets).")

for group, title in GROUPS.items():
    names = [n for n, f in INFO.items() if f["group"] == group and n not in LABELS]
    with st.expander(title, expanded=group in ("data", "budget") or group == error_group):
        cols = st.columns(3)
        for i, name in enumerate(names):
            with cols[i % 3]:
                _widget(name)
    if group == error_group:
        st.error(f"**{title}** — {error}", icon=":material/error:")
if error is not None and error_group is None:
    st.error(str(error), icon=":material/error:")

st.session_state[app_state.LAUNCH_VALUES] = {
    **values, METHOD_KEY: st.session_state[METHOD_KEY], PRESET_KEY: st.session_state[PRESET_KEY],
    "run_name": st.session_state.get("run_name", ""), "run_group": st.session_state.get("run_group", "")}

st.subheader("Run time")
ec1, ec2 = st.columns([1, 3], vertical_alignment="center")
job = st.session_state.get(app_state.LAUNCH_ESTIMATE_JOB)
if job is not None and job.get("path") != app_state.get_store().path:
    job = None
if ec1.button("Estimate run time", disabled=config is None or job is not None,
              help="Times 3 iterations (after one warm-up) of this config in a worker process."):
    try:
        n = app_state.get_manager().estimate(config)
    except ConfigError as exc:
        ec2.error(f"Calibration failed: {exc}")
    else:
        job = {"path": app_state.get_store().path, "job": n}
        st.session_state[app_state.LAUNCH_ESTIMATE_JOB] = job
        with ec2, st.spinner("Timing a few iterations in a worker process…"):
            if _wait_for_estimate(n, ec2):
                job = None
elif job is not None and _estimate_outcome(app_state.get_manager().estimate_status(job["job"]), ec2):
    job = None
if job is not None:
    with ec2:
        st.fragment(_estimate_poll, run_every=1.0)(job["job"])
est = st.session_state.get(app_state.LAUNCH_ESTIMATE)
if est and job is None:
    stale = config is None or json.loads(est["config"]) != json.loads(config.to_json())
    ec2.markdown(
        f"About **{app_state.format_duration(est['seconds'])}**: {est['iterations']} iterations × "
        f"{est['sec_per_iter']:.2f} s on {est['device']}"
        + (" — *settings changed since; estimate again*" if stale else "")
        + ". Runs already going share the machine and slow each other.")
elif job is None:
    ec2.caption("Times a few iterations of this config in a worker process, then multiplies by "
                "the iterations.")

st.subheader("Start")
n1, n2 = st.columns(2)
n1.text_input("Run name", key="run_name", placeholder="empty: method-seed-id", max_chars=MAX_NAME_CHARS,
              help="A label for the runs table; need not be unique.")
n2.text_input("Group", key="run_group", placeholder="optional, e.g. schedule-ablation",
              max_chars=MAX_NAME_CHARS, help="Runs in one group can be filtered and compared together.")

manager = app_state.get_manager()
manager.prepare_spare()  # a search started from here begins without importing torch first
live = manager.live_runs()
if live:
    st.caption(f"{len(live)} run(s) live; {manager.max_concurrent} run at once, more wait in a queue.")
if st.button("Start search", type="primary", key="start_search"):
    if config is None:
        st.error(f"Nothing started: {error}", icon=":material/error:")
    else:
        try:
            run_id = manager.start(config, name=st.session_state["run_name"].strip() or None,
                                   group=st.session_state["run_group"].strip() or None)
        except ConfigError as exc:  # a name or group too long (a saved form can hold one)
            st.error(f"Nothing started: {exc}", icon=":material/error:")
        else:
            app_state.open_in_monitor(run_id)

st.subheader("Vary one field")
st.caption("Starts one run per value of one field, everything else from the form above, as one "
           "group, and shows them side by side on Compare live.")
v1, v2 = st.columns([1, 2])
vary_field = v1.selectbox("Field to vary", varied_fields(), key="vary_field",
                          index=varied_fields().index("activation"))
choices = (REGISTRY_CHOICES[vary_field]() if vary_field in REGISTRY_CHOICES
           else INFO[vary_field].get("choices") or [])
v2.text_input(f"{MIN_VALUES}-{MAX_VALUES} values, separated by commas", key="vary_values",
              placeholder=", ".join(map(str, choices[:3])) if choices else "e.g. 0, 1, 2",
              help=(f"Allowed: {', '.join(map(str, choices))}." if choices else _help(vary_field)))
texts = [t for t in st.session_state.get("vary_values", "").split(",") if t.strip()]
variants, vary_error = [], None
if config is not None and texts:
    try:
        variants = vary(config, vary_field, texts)
    except ConfigError as exc:
        vary_error = exc
if vary_error is not None:
    st.error(f"**Vary one field** — {vary_error}", icon=":material/error:")
elif variants:
    cpu = [run_cpu_seconds(cfg) for _, cfg in variants]
    timing = ""
    if all(s is not None for s in cpu):
        timing = (f" About **{app_state.format_duration(group_seconds(cpu, manager.max_concurrent))}** "
                  f"on this machine, {manager.max_concurrent} at a time"
                  + (f" ({rounds(len(variants), manager.max_concurrent)} turns)."
                     if len(variants) > manager.max_concurrent else "."))
    st.caption(f"{len(variants)} runs: " + ", ".join(label for label, _ in variants) + "." + timing)
if st.button("Start group", key="start_group", disabled=config is None):
    if not variants:
        st.error(f"Nothing started: {vary_error or f'{vary_field}: give {MIN_VALUES} to {MAX_VALUES} values'}",
                 icon=":material/error:")
    else:
        try:
            _, group_ids = start_group(manager, st.session_state["run_group"].strip() or f"vary-{vary_field}",
                                       variants)
        except ConfigError as exc:
            st.error(f"Nothing started: {exc}", icon=":material/error:")
        else:
            st.switch_page("pages/compare_live.py", query_params={"runs": ",".join(map(str, group_ids))})
