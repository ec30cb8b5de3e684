"""The measurement scripts' own arithmetic (scripts/app_vs_cli.py)."""
from __future__ import annotations

import pytest

from core.config import make_config
from core.store import RunStore
from scripts.app_vs_cli import watch_cost


def test_watch_cost_compares_like_iterations_in_watched_and_unwatched_windows(tmp_path):
    """Iterations take 1.0 s (architecture steps 2.0 s, the one after an epoch end 3.0 s) with
    the browser stopped and 25% longer watched; windows of 10 s alternate. The ratio must be
    0.8 although the watched windows hold a different mix of slow iterations."""
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run(make_config("tiny", "darts-prime"))
    store.mark_started(run_id, "cpu")
    started = store.get_run(run_id).started
    switches = [(started + 10.0 * k, k % 2 == 0) for k in range(40)]

    def watched_at(t: float) -> bool:
        return switches[int((t - started) // 10.0)][1]

    rows, t = [], 0.0
    for step in range(200):
        arch = step % (6 if watched_at(started + t) else 2) == 0  # more slow ones when not watched
        after_epoch = step % 50 == 1
        base = 3.0 if after_epoch else 2.0 if arch else 1.0
        t += base * (1.25 if watched_at(started + t) else 1.0)
        rows.append({"step": step, "time": t, "arch_step": int(arch)})
        if step % 50 == 0:
            store.add_event(run_id, "epoch_end", "end", step=step)
    store.add_steps(run_id, rows)
    out = watch_cost(store, run_id, switches)
    assert out["ratio_watched"] == pytest.approx(0.8, abs=1e-3)
    assert out["iterations_watched"] > 20 and out["iterations_not_watched"] > 20
    assert out["s_per_iter_watched"] > out["s_per_iter_not_watched"]
