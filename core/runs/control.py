"""Stop, pause and resume asked of a run through the store, for a run no local manager holds
(a Ray trial on another node): the request is an event on the run, and the process running
the search reads its run's requests (``core.runs.ray_study``'s trial watcher does, each second).
"""
from __future__ import annotations

from typing import Any

REQUESTS = ("stop", "pause", "resume")
_KIND = "{}_requested".format


def request_control(store: Any, run_id: int, word: str) -> None:
    """Asks the process running ``run_id`` to stop, pause or resume."""
    if word not in REQUESTS:
        raise ValueError(f"control: one of {', '.join(REQUESTS)}, not {word!r}")
    run = store.get_run(run_id)
    step = max(0, int(run.iterations or 1) - 1) if run is not None else None
    store.add_event(run_id, _KIND(word), f"{word} requested", step=step)


def control_requests(store: Any, run_id: int, after_id: int = 0) -> tuple[list[str], int]:
    """(the requests made since event ``after_id``, in order; the last event id read)."""
    df = store.events(run_id, after_id=after_id, kinds=[_KIND(w) for w in REQUESTS])
    if not len(df):
        return [], after_id
    return [k[: -len("_requested")] for k in df["kind"]], int(df["id"].max())
