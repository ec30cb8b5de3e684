"""Fixtures of the app tests (AppTest) and the browser test: a temporary store per test, a
finished tiny run made once per session, and a clean RunManager singleton per test.

Nothing here is autouse: tests of the engine do not pay for these fixtures."""
from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


class _NoScriptRunContextWarning(logging.Filter):
    """Threads outside a script run log 'missing ScriptRunContext'; harmless in tests."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "missing ScriptRunContext" not in record.getMessage()


logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
    _NoScriptRunContextWarning())


@pytest.fixture(scope="session")
def finished_template(tmp_path_factory) -> tuple[str, int]:
    """(path, run id) of a store holding one tiny DARTS-PRIME search run to completion."""
    from core.engine.config import make_config
    from core.engine.search import Search
    from core.runs.store import RunStore

    path = str(tmp_path_factory.mktemp("template") / "finished.sqlite")
    store = RunStore(path)
    config = make_config("tiny", "darts-prime")
    run_id = store.create_run(config, name="tiny finished", group="tests")
    result = Search(config, store, run_id).run()
    assert result.status == "finished"
    store.close()
    return path, run_id


def copy_store(src: str, dst: str) -> None:
    """Copies a WAL-mode SQLite file with the backup API (a file copy could miss the WAL)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


@pytest.fixture
def app_db(tmp_path, monkeypatch):
    """Points the app at its own empty store; afterwards stops every run the app started and
    drops the cached store and manager (shared by all AppTests of the process)."""
    import streamlit as st

    import app_state

    path = tmp_path / "explorer.sqlite"
    monkeypatch.setenv("PRIME_EXPLORER_DB", str(path))
    monkeypatch.setenv("PRIME_EXPLORER_SPARE", "0")  # a spare per test's manager: CPU for nothing
    app_state.shutdown_all()
    st.cache_resource.clear()
    yield path
    app_state.shutdown_all()
    st.cache_resource.clear()


@pytest.fixture
def finished_db(app_db, finished_template):
    """The app's store holds one finished run; yields (path, run id)."""
    copy_store(finished_template[0], str(app_db))
    return app_db, finished_template[1]


RUNNING_UNTIL = 5  # the simulated running run has iterations 0..RUNNING_UNTIL


@pytest.fixture
def running_db(app_db, finished_template):
    """The app's store holds one run marked running by another (CLI) process, with its first
    RUNNING_UNTIL + 1 iterations; yields (path, run id)."""
    from core.runs.store import RunStore

    copy_store(finished_template[0], str(app_db))
    run_id = finished_template[1]
    store = RunStore(app_db)
    store.truncate_after(run_id, RUNNING_UNTIL)
    store.update_run(run_id, status="running", finished=None, genotype=None, size=None,
                     iterations=RUNNING_UNTIL + 1, host="cli-host", pid=None, summary={})
    store.close()
    return app_db, run_id


def new_app(default_timeout: float = 60):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=default_timeout)


@contextlib.contextmanager
def one_torch_thread():
    """Tiny searches on a shared 2-core machine run several times faster on one thread
    (OpenMP spin-waits); the previous count is restored for the other tests."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
