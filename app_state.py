"""What the pages share: session-state key names, URL query names, and the cached store and
run manager (one per process and database file).

The run manager is a process-wide ``st.cache_resource`` singleton; every job that computes
(searches, evaluations, the Launch page's estimate) runs in one of its worker processes, never in
the server. An ``atexit`` hook stops them, so that stopping the server leaves every run and
evaluation stored as stopped.
Tests call ``shutdown_all()`` and ``st.cache_resource.clear()`` between cases.
"""
from __future__ import annotations

import atexit
import os
import threading
from typing import Any

import streamlit as st

from core.engine.config import ConfigError, SearchConfig, make_config, parse_value
from core.runs.runner import RunManager
from core.runs.store import RunStore, default_db_path

# ---- session-state keys ---------------------------------------------------------------------
RUN_ID = "monitor_run_id"          # the run the monitor shows (mirrors the URL query RUN_QUERY)
VIEWS = "run_views"                # {(db path, run id): core.viz.live.RunView}, one per run watched
LAUNCH_VALUES = "launch_values"    # the Launch form's values, kept across page switches
LAUNCH_ESTIMATE = "launch_estimate"  # {"config": json, "seconds": float, ...} of the last calibration
LAUNCH_ESTIMATE_JOB = "launch_estimate_job"  # {"path": store, "job": n}: a calibration still going
FLASH = "flash_message"            # one-shot message shown at the top of the next page
APP_RAN = "app_ran"                # set by app.py: this session's runs go through st.navigation

# ---- URL query ----------------------------------------------------------------------------------
RUN_QUERY = "run"                  # ?run=ID opens that run in the monitor

# ---- environment ------------------------------------------------------------------------------
# The Home page's "Run the demo" button runs make_config($PRIME_EXPLORER_DEMO_PRESET or "demo",
# "darts-prime"); $PRIME_EXPLORER_DEMO_OVERRIDES ("key=value,key=value") changes fields of it.
# The browser test sets a tiny demo through these so it finishes in seconds.
DEMO_PRESET_ENV = "PRIME_EXPLORER_DEMO_PRESET"
DEMO_OVERRIDES_ENV = "PRIME_EXPLORER_DEMO_OVERRIDES"
# How many searches run at once in this server process; more are queued.
MAX_RUNS_ENV = "PRIME_EXPLORER_MAX_RUNS"
# "0": no spare search process kept ready (it saves ~3 s at a launch, costs one idle process;
# the AppTests turn it off, since each test makes a new manager).
SPARE_ENV = "PRIME_EXPLORER_SPARE"

_managers: list[RunManager] = []
_managers_lock = threading.Lock()


@st.cache_resource(show_spinner=False)
def _store(path: str) -> RunStore:
    return RunStore(path)


@st.cache_resource(show_spinner=False)
def _manager(path: str) -> RunManager:
    manager = RunManager(_store(path), max_concurrent=int(os.environ.get(MAX_RUNS_ENV, "2") or 2),
                         spare=os.environ.get(SPARE_ENV, "1").strip() != "0")
    with _managers_lock:
        _managers.append(manager)
    atexit.register(manager.shutdown)
    return manager


def get_store() -> RunStore:
    """The store at default_db_path() ($PRIME_EXPLORER_DB or runs/explorer.sqlite)."""
    return _store(os.path.abspath(default_db_path()))


def get_manager() -> RunManager:
    """The process-wide run manager over get_store()."""
    return _manager(os.path.abspath(default_db_path()))


def shutdown_all(timeout: float = 10.0) -> None:
    """Stops every run of every manager made here (tests; the atexit hooks do it at exit)."""
    with _managers_lock:
        managers, _managers[:] = list(_managers), []
    for m in managers:
        m.shutdown(timeout)


def ensure_app_navigation() -> None:
    """Call first in every page. Until some session of the server process has run app.py's
    st.navigation, Streamlit serves a direct link such as /monitor?run=3 in its legacy
    pages-directory mode: pages/monitor.py alone, without app.py (no sidebar, no page config).
    That mode is a process-wide flag which st.navigation clears; clear it and rerun, so this
    and every later request goes through app.py."""
    if st.session_state.get(APP_RAN):
        return  # this session already went through app.py (and AppTest lands here on reruns)
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the legacy mode
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()  # a session's first run: no widget event is lost


def demo_config() -> SearchConfig:
    """The config the Home page's demo button runs (see DEMO_PRESET_ENV)."""
    preset = os.environ.get(DEMO_PRESET_ENV, "").strip() or "demo"
    overrides: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in os.environ.get(DEMO_OVERRIDES_ENV, "").split(","))):
        if "=" not in pair:
            raise ConfigError(DEMO_OVERRIDES_ENV, f"expected key=value, got {pair!r}")
        k, v = (s.strip() for s in pair.split("=", 1))
        overrides[k] = parse_value(k, v)
    return make_config(preset, "darts-prime", **overrides)


def open_in_monitor(run_id: int) -> None:
    """Remembers the run for the monitor and goes there with ?run=ID in the URL."""
    st.session_state[RUN_ID] = int(run_id)
    st.switch_page("pages/monitor.py", query_params={RUN_QUERY: str(int(run_id))})


def run_view(run_id: int) -> Any:
    """The RunView of a run, kept in session state so each refresh fetches only new rows."""
    from core.viz.live import RunView

    views = st.session_state.setdefault(VIEWS, {})
    store = get_store()
    key = (store.path, int(run_id))
    if key not in views:
        views[key] = RunView(store, int(run_id))
    return views[key]


def forget_run_view(run_id: int) -> None:
    views = st.session_state.get(VIEWS, {})
    views.pop((get_store().path, int(run_id)), None)


def flash(message: str, kind: str = "success") -> None:
    st.session_state[FLASH] = (kind, message)


def show_flash() -> None:
    item = st.session_state.pop(FLASH, None)
    if item:
        kind, message = item
        getattr(st, kind, st.info)(message)


# ---- what several pages draw or write alike --------------------------------------------------
def format_duration(seconds: float | None) -> str:
    """"42 s", "3 min 05 s", "2 h 04 min"; "—" when unknown."""
    if seconds is None or seconds != seconds:
        return "—"
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def first_line(text: Any) -> str:
    """The first line of an error text (the rest is a traceback), or ""."""
    lines = text.strip().splitlines() if isinstance(text, str) else []
    return lines[0] if lines else ""


def show_plotly(fig: Any, key: str, mode_bar_on_hover: bool = False) -> None:
    """A Plotly figure with the project's chart settings (no Streamlit theme, no Plotly logo)."""
    config = {"displaylogo": False, **({"displayModeBar": "hover"} if mode_bar_on_hover else {})}
    st.plotly_chart(fig, key=key, theme=None, config=config)
