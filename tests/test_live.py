"""RunView: incremental reads of a stored run (only rows newer than those held), deleted and
empty runs, a resumed run's rewritten rows, and the op list derived from a run's config."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from core.data import load_dataset
from core.engine.activations import list_activations
from core.engine.config import make_config
from core.engine.ops import DARTS_PRIMITIVES
from core.engine.regularizers import REGULARIZERS, Regularizer, UpdateEvents
from core.engine.search import Callback, Search
from core.runs.store import RunStore
from core.viz.live import MAX_REFRESH_S, REFRESH_S, RunView, primitives_for, refresh_seconds


class SpyStore(RunStore):
    """A RunStore that records what each reader was asked for and how many rows it gave."""

    def __init__(self, path):
        super().__init__(path)
        self.calls: list[tuple[str, int, int]] = []  # (reader, after, rows returned)

    def steps(self, run_id, after=-1, columns=None, every=1):
        df = super().steps(run_id, after, columns, every)
        self.calls.append(("steps", after, len(df)))
        return df

    def alphas(self, run_id, cell_type, after=-1):
        steps, w = super().alphas(run_id, cell_type, after)
        self.calls.append((f"alphas_{cell_type}", after, len(steps)))
        return steps, w

    def genotypes(self, run_id, after=-1):
        df = super().genotypes(run_id, after)
        self.calls.append(("genotypes", after, len(df)))
        return df

    def events(self, run_id, after_id=0, kinds=None):
        df = super().events(run_id, after_id, kinds)
        self.calls.append(("events", after_id, len(df)))
        return df

    def take(self) -> dict[str, tuple[int, int]]:
        out = {name: (after, n) for name, after, n in self.calls}
        self.calls.clear()
        return out


def _rows(start: int, stop: int, arch_every: int = 3) -> list[dict]:
    rows = []
    for s in range(start, stop):
        arch = s % arch_every == 2
        rows.append({"step": s, "epoch": 0, "progress": s / 100, "train_loss": 2.0 - 0.01 * s,
                     "train_acc": 0.1, "lr": 0.025, "fi": 5.0 + s % 4, "fi_ewma": 5.0, "threshold": 6.0,
                     "arch_step": int(arch), "gap": 1.0, "active_ops": 196,
                     **({"val_loss": 2.1, "val_acc": 0.2, "penalty": 0.01 * s,
                         "terms": {"val_ce": 2.1, "proximity": 0.01 * s}} if arch else {})})
    return rows


def _weights(step: int, ops: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(step)
    return {ct: rng.random((14, ops)).astype(np.float32) for ct in ("normal", "reduce")}


@pytest.fixture
def store(tmp_path):
    return SpyStore(tmp_path / "live.sqlite")


@pytest.fixture
def run_id(store):
    return store.create_run(make_config("tiny", "prime-crb"), name="synthetic")


def _fill(store, run_id, start, stop):
    rows = _rows(start, stop)
    store.add_steps(run_id, rows)
    for r in rows:
        if r["arch_step"]:
            store.add_alphas(run_id, r["step"], _weights(r["step"]))
    store.add_events(run_id, [{"kind": "pruned", "step": stop - 1, "message": "pruned",
                               "data": {"cell_type": "normal", "edge": 3, "op": "skip_connect"}},
                              {"kind": "epoch_end", "step": stop - 1, "message": "epoch end",
                               "data": {"epoch": 1, "val_acc": 0.5, "val_loss": 1.0, "train_acc": 0.6}}])


# ---- primitives ------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", list_activations())
def test_primitives_match_the_supernet(activation):
    from core.engine.supernet import Supernet

    net = Supernet(2, 10, 3, activation=activation, in_channels=1)
    assert primitives_for({"activation": activation}) == net.primitives


def test_primitives_for_configs():
    assert primitives_for({"activation": "softmax"}) == list(DARTS_PRIMITIVES)
    assert primitives_for({"activation": "crb"}) == [p for p in DARTS_PRIMITIVES if p != "none"]
    assert primitives_for({}) == list(DARTS_PRIMITIVES)
    assert primitives_for({"activation": "no-such-activation"}) == list(DARTS_PRIMITIVES)
    no_none = [p for p in DARTS_PRIMITIVES if p != "none"]
    assert primitives_for({"activation": "sigmoid", "include_none": False}) == no_none
    assert primitives_for({"activation": "crb", "include_none": True}) == no_none


# ---- a regularizer's own update events ----------------------------------------------------------
class Lagrange(Regularizer):
    """A made-up regularizer with update events of its own: registered only for a test (the
    ``lagrange`` fixture), to show that the view and the charts follow its declaration."""
    name = "lagrange"
    updates = UpdateEvents(kind="multiplier_update", label="Lagrange",
                           series=(("lam", "multiplier"), ("slack", "slack")), every_field="period")


@pytest.fixture
def lagrange(monkeypatch):
    monkeypatch.setitem(REGULARIZERS._items, "lagrange", Lagrange)
    return Lagrange


def _update_events(step: int) -> list[dict]:
    return [{"kind": "multiplier_update", "step": step, "message": "update",
             "data": {"lam": 0.5 * step, "slack": 1.0 / step}},
            {"kind": "admm_update", "step": step, "message": "update",
             "data": {"admm_primal": 1.0, "admm_dual": 2.0}}]


def test_view_collects_the_update_events_its_regularizer_declares(store, lagrange):
    run_id = store.create_run(make_config("tiny", "darts-prime", regularizer="lagrange"))
    view = RunView(store, run_id)
    view.refresh()
    assert view.update_events is Lagrange.updates
    assert list(view.updates.columns) == ["step", "lam", "slack"] and view.updates.empty
    store.add_events(run_id, _update_events(2))
    view.refresh()
    store.add_events(run_id, _update_events(5))
    store.take()
    view.refresh()  # incremental: only the new events are read, and appended
    assert store.take()["events"] == (2, 2)
    # the other kind is another regularizer's: kept among the events, not among the updates
    assert view.updates.to_dict("list") == {"step": [2.0, 5.0], "lam": [1.0, 2.5], "slack": [0.5, 0.2]}
    assert len(view.events) == 4


def test_view_updates_follow_the_run_regularizer(store):
    admm = store.create_run(make_config("tiny", "prime-admm"))
    none = store.create_run(make_config("tiny", "darts"))
    for run_id in (admm, none):
        store.add_events(run_id, _update_events(3))
    views = {run_id: RunView(store, run_id) for run_id in (admm, none)}
    for view in views.values():
        view.refresh()
    assert views[admm].updates.to_dict("list") == {"step": [3.0], "admm_primal": [1.0], "admm_dual": [2.0]}
    assert views[none].update_events is None and list(views[none].updates.columns) == ["step"]
    assert views[none].updates.empty


# ---- incremental refresh ----------------------------------------------------------------------
def test_refresh_fetches_only_new_rows(store, run_id):
    _fill(store, run_id, 0, 10)
    store.add_genotype(run_id, 2, json.dumps({"normal": [], "normal_concat": [], "reduce": [],
                                              "reduce_concat": []}), 1000)
    view = RunView(store, run_id)
    assert view.refresh() is True
    first = store.take()
    assert first["steps"] == (-1, 10)
    assert first["alphas_normal"] == (-1, 3) and first["alphas_reduce"] == (-1, 3)
    assert first["genotypes"] == (-1, 1)
    assert first["events"] == (0, 2)
    assert view.primitives == [p for p in DARTS_PRIMITIVES if p != "none"] and view.nodes == 4
    assert len(view.steps) == 10 and view.last_step == 9 and view.arch_steps == 3
    assert view.alphas["normal"].shape == (3, 14, 7)
    assert list(view.alpha_steps["normal"]) == [2, 5, 8]
    assert list(view.terms.columns) == ["step", "val_ce", "proximity"]
    assert len(view.pruned) == 1 and len(view.epochs) == 1

    # Nothing new: every reader is asked only for what lies after what the view holds, and the
    # view's generation (what the monitor keeps its charts by) stays.
    generation = view.generation
    assert view.refresh() is False and view.generation == generation
    again = store.take()
    assert again["steps"] == (9, 0)
    assert again["alphas_normal"] == (8, 0) and again["alphas_reduce"] == (8, 0)
    assert again["genotypes"] == (2, 0)
    assert again["events"] == (view.last_event_id, 0)

    # New rows: exactly those arrive, appended in order.
    _fill(store, run_id, 10, 15)
    assert view.refresh() is True and view.generation != generation
    new = store.take()
    assert new["steps"] == (9, 5)
    assert new["alphas_normal"] == (8, 2)  # steps 11 and 14
    assert new["events"][1] == 2
    assert view.steps["step"].tolist() == list(range(15))
    assert list(view.alpha_steps["normal"]) == [2, 5, 8, 11, 14]
    np.testing.assert_array_equal(view.alphas["reduce"][-1], _weights(14)["reduce"])
    assert view.terms["step"].tolist() == [2, 5, 8, 11, 14]
    assert len(view.pruned) == 2 and len(view.epochs) == 2
    # NULLs become NaN in float columns; integer columns stay integers.
    assert view.steps["val_loss"].isna().sum() == 10
    assert view.steps["step"].dtype == np.int64 and view.steps["arch_step"].dtype == np.int64


def test_status_change_counts_as_new(store, run_id):
    view = RunView(store, run_id)
    assert view.refresh() is True
    assert view.refresh() is False
    store.update_run(run_id, status="finished")
    assert view.refresh() is True and view.run.status == "finished"


def test_empty_run(store, run_id):
    view = RunView(store, run_id)
    assert view.run is None and view.is_empty and view.last_step == -1
    assert view.refresh() is True  # the run record arrived
    assert view.run is not None and view.run.id == run_id
    assert view.is_empty and view.arch_steps == 0 and view.genotype() is None
    assert view.alphas["normal"].shape == (0, 14, 7)
    assert list(view.steps.columns)[:3] == ["step", "epoch", "progress"]


def test_deleted_and_missing_runs(store, run_id):
    _fill(store, run_id, 0, 6)
    view = RunView(store, run_id)
    view.refresh()
    store.delete_run(run_id)
    assert view.refresh() is False
    assert view.run is None and view.deleted
    assert len(view.steps) == 6  # what was read stays readable

    missing = RunView(store, 9999)
    assert missing.refresh() is False
    assert missing.run is None and not missing.deleted


def test_resumed_run_is_read_again(store, run_id):
    """A resumed run drops its rows after the checkpoint and writes them again under the same
    step numbers; the view must not keep the stale ones."""
    _fill(store, run_id, 0, 10)
    view = RunView(store, run_id)
    view.refresh()
    store.truncate_after(run_id, 4)
    rows = _rows(5, 12)
    for r in rows:
        r["train_loss"] = 9.0
    store.add_event(run_id, "resumed", "resumed from epoch 1", step=5)
    store.add_steps(run_id, rows)
    seen = {view.generation}
    assert view.refresh() is True and view.generation not in seen
    # a view made afresh never takes a generation an earlier view had
    assert RunView(store, run_id).generation > view.generation
    assert view.steps["step"].tolist() == list(range(12))
    assert (view.steps.loc[view.steps["step"] >= 5, "train_loss"] == 9.0).all()
    assert list(view.alpha_steps["normal"]) == [2]  # later weights were dropped and not rewritten
    assert not view.steps["step"].duplicated().any()


# ---- a real run, read while it runs ----------------------------------------------------------------
def _small_digits():
    d = load_dataset("digits", None, 8, 0)
    return dataclasses.replace(d, train_x=d.train_x[:96], train_y=d.train_y[:96],
                               test_x=d.test_x[:16], test_y=d.test_y[:16])


class _RefreshEachStep(Callback):
    def __init__(self, view: RunView):
        self.view = view
        self.seen: list[int] = []

    def on_step_end(self, search, row):
        self.view.refresh()
        self.seen.append(len(self.view.steps))


def test_live_reads_equal_a_full_read(tmp_path):
    """Refreshing during a real search (CRB, pruning) ends with the same data as one read."""
    store = RunStore(tmp_path / "real.sqlite")
    cfg = make_config("tiny", "prime-crb", epochs=1, iters_per_epoch=3, alpha_lr=0.2, log_every=1)
    run_id = store.create_run(cfg)
    view = RunView(store, run_id)
    spy = _RefreshEachStep(view)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny search on a busy 2-core machine: much faster on one
    try:
        Search(cfg, store, run_id, callbacks=[spy], data=_small_digits()).run()
    finally:
        torch.set_num_threads(threads)
    view.refresh()
    full = RunView(store, run_id)
    full.refresh()
    assert spy.seen == sorted(spy.seen) and spy.seen[-1] >= 2  # rows arrived while it ran
    pd.testing.assert_frame_equal(view.steps, full.steps)
    pd.testing.assert_frame_equal(view.terms, full.terms)
    pd.testing.assert_frame_equal(view.genotypes, full.genotypes)
    pd.testing.assert_frame_equal(view.events.drop(columns="time"), full.events.drop(columns="time"))
    pd.testing.assert_frame_equal(view.pruned, full.pruned)
    for ct in ("normal", "reduce"):
        np.testing.assert_array_equal(view.alpha_steps[ct], full.alpha_steps[ct])
        np.testing.assert_array_equal(view.alphas[ct], full.alphas[ct])
    assert len(view.pruned) > 0 and view.run.status == "finished"
    assert view.alphas["normal"].shape[1:] == (14, 7)


@pytest.mark.parametrize("gaps, expected", [
    ([], REFRESH_S),                       # no rows yet
    ([0.3] * 20, REFRESH_S),               # fast iterations: the Recorder writes once a second
    ([1.63] * 20, 1.6),                    # one write an iteration: one refresh an iteration
    ([1.6] * 10 + [30.0] + [1.6], 1.6),    # an epoch end's validation is one long gap
    ([1.6] * 8 + [-40.0] + [1.6] * 3, 1.6),  # a resumed run's clock starts again
    ([7.0] * 20, MAX_REFRESH_S),           # slow iterations: the clock still moves
])
def test_refresh_follows_the_iterations(gaps, expected):
    t = np.concatenate([[5.0], 5.0 + np.cumsum(gaps)]) if gaps else np.zeros(0)
    steps = pd.DataFrame({"step": np.arange(len(t)), "time": t})
    assert refresh_seconds(steps) == expected
