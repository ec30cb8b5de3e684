"""The Monitor's per-panel hints (core.viz.hints) on views of small real runs: each sentence states
what the store holds for that run (pruned ops, architecture steps, ADMM updates, genotype
changes, epoch ends), follows the run's config, and is built without reading the store."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from core.engine.config import make_config
from core.engine.measures import separation
from core.engine.search import Search
from core.runs.store import RunStore
from core.viz import hints
from core.viz.live import RunView

# name -> (method preset, overrides). Epochs of 6 iterations: a few seconds each on one thread.
RUNS = {
    "crb": ("prime-crb", dict(alpha_lr=0.3, period=1)),      # prunes at its first steps
    "softmax": ("darts-prime", dict(period=1)),               # informed, proximity
    "sigmoid": ("fairdarts", {}),                             # fixed, zero-one, threshold parse
    "admm": ("prime-admm", dict(period=1, admm_every=1)),     # an ADMM update each arch step
    "darts": ("darts", {}),                                   # fixed period 1, no regularizer
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[RunStore, dict[str, int]]:
    """A store with one finished tiny run per entry of RUNS; (store, name -> run id)."""
    store = RunStore(tmp_path_factory.mktemp("hints") / "hints.sqlite")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny search on a busy 2-core machine: much faster on one
    ids = {}
    try:
        for name, (method, over) in RUNS.items():
            cfg = make_config("tiny", method, epochs=2, **over)
            ids[name] = store.create_run(cfg, name=name)
            assert Search(cfg, store, ids[name]).run().status == "finished"
    finally:
        torch.set_num_threads(threads)
    return store, ids


def _view(store: RunStore, run_id: int) -> RunView:
    view = RunView(store, run_id)
    view.refresh()
    return view


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def test_every_panel_gets_a_sentence(runs):
    store, ids = runs
    for name, rid in ids.items():
        h = hints.panel_hints(_view(store, rid))
        assert list(h) == list(hints.PANELS), name
        assert all(isinstance(t, str) and len(t) > 20 for t in h.values()), (name, h)


def test_crb_sentence_states_the_pruned_ops_of_the_events(runs):
    store, ids = runs
    rid = ids["crb"]
    events = store.events(rid, kinds=["pruned"])
    assert len(events) > 0, "alpha_lr=0.3 prunes at the first architecture steps"
    total = store.get_run(rid).summary["total_ops"]
    last = int(events["step"].max())
    text = hints.panel_hints(_view(store, rid))["weights"]
    assert text.startswith("CRB: an op whose weight reaches 0 is pruned for good")
    assert f"{len(events)} of {total} pruned so far (last at iteration {last})" in text


def test_schedule_sentences_state_the_architecture_steps(runs):
    store, ids = runs
    for name in ("softmax", "crb", "admm"):  # informed
        rid = ids[name]
        steps = store.steps(rid)
        k, n = int(steps["arch_step"].sum()), len(steps)
        text = hints.panel_hints(_view(store, rid))["schedule"]
        assert text.startswith("Informed: an architecture step runs when the FI average falls "
                               "below the threshold"), text
        assert f"{_plural(k, 'architecture step')} in {n} iterations (1 in {n / k:.1f}; " \
               f"target 1 in period+1 = 2)" in text, text
    for name in ("darts", "sigmoid"):  # fixed, period 1
        rid = ids[name]
        steps = store.steps(rid)
        text = hints.panel_hints(_view(store, rid))["schedule"]
        assert text.startswith("Fixed: an architecture step every iteration"), text
        assert f"{int(steps['arch_step'].sum())} architecture steps in {len(steps)} iterations" in text


def test_softmax_sentence_states_the_run_separation(runs):
    store, ids = runs
    rid = ids["softmax"]
    summary = store.get_run(rid).summary
    text = hints.panel_hints(_view(store, rid))["weights"]
    assert text.startswith("Softmax: the ops of an edge compete for a share that sums to 1")
    # the median over both cells' edges of the final weights, as the run summary's separation
    assert f"the top op now holds {summary['separation']:.2f}x the uniform share" in text


def test_sigmoid_sentence_states_the_share_of_decided_weights(runs):
    store, ids = runs
    rid = ids["sigmoid"]
    view = _view(store, rid)
    w = np.concatenate([view.alphas[ct][-1].ravel() for ct in ("normal", "reduce")])
    share = ((w < 0.15) | (w > 0.85)).mean()  # the fairdarts preset's op_threshold 0.85
    text = hints.panel_hints(view)["weights"]
    assert text.startswith("Sigmoid: each op's weight moves on its own; the zero-one loss pushes")
    assert f"{share:.0%} of weights are now below 0.15 or above 0.85" in text
    # its regularizer sentence reads the zero-one penalty against its floor -w0/4
    reg = hints.panel_hints(view)["regularizer"]
    pen = store.steps(rid)["penalty"].dropna().iloc[-1]
    assert reg.startswith("Zero-one loss (weight 10)") and f"{pen:.3g}" in reg and "-2.5" in reg
    # the threshold parse: the cell sentence counts the inputs it kept
    kept = sum(len(view.genotype(-1).cell(ct)) for ct in ("normal", "reduce"))
    assert f"keeps {kept} of the 16 inputs" in hints.panel_hints(view)["cell"]


def test_regularizer_sentences_follow_the_config(runs):
    store, ids = runs
    # proximity: t of the last iteration and the gap now against the first
    rid = ids["softmax"]
    steps = store.steps(rid)
    gap = steps["gap"].dropna()
    text = hints.panel_hints(_view(store, rid))["regularizer"]
    assert text.startswith("Proximity pulls the weights toward their discrete cell with strength t·rho/2")
    assert f"now t={steps['progress'].iloc[-1]:.2f}, rho 0.1" in text
    assert f"gap {gap.iloc[-1]:.3g}" in text
    # admm: the updates the events hold, and the last primal residual
    rid = ids["admm"]
    updates = store.events(rid, kinds=["admm_update"])
    assert len(updates) > 0
    primal = json.loads(updates["data"].iloc[-1])["admm_primal"]
    text = hints.panel_hints(_view(store, rid))["regularizer"]
    assert text.startswith("ADMM: every 1 architecture step Z is re-projected")
    assert f"{_plural(len(updates), 'update')}, last primal {primal:.3g}" in text
    # none
    text = hints.panel_hints(_view(store, ids["darts"]))["regularizer"]
    assert text.startswith("No regularizer: nothing pulls the weights toward their discrete cell")


def test_cell_sentence_states_the_last_genotype_change(runs):
    store, ids = runs
    for name, rid in ids.items():
        run = store.get_run(rid)
        text = hints.panel_hints(_view(store, rid))["cell"]
        last = run.summary["last_genotype_change"]
        if last:
            assert f"last at iteration {last} (of {run.iterations})" in text, (name, text)
        else:
            assert text.startswith("The cell has not changed since it was first derived"), (name, text)


def test_losses_sentence_states_the_last_epoch_end(runs):
    store, ids = runs
    rid = ids["darts"]
    ends = store.events(rid, kinds=["epoch_end"])
    last = json.loads(ends["data"].iloc[-1])
    text = hints.panel_hints(_view(store, rid))["losses"]
    assert text.startswith(f"Epoch {last['epoch']} ended at validation accuracy {last['val_acc']:.2f}")
    assert f"train {last['train_acc']:.2f}" in text


def test_hints_read_only_what_the_view_holds(runs, monkeypatch):
    """The Monitor words the hints at each refresh that brought rows: no store query of their own."""
    store, ids = runs
    views = {name: _view(store, rid) for name, rid in ids.items()}

    def no_query(*a, **k):
        raise AssertionError("core.viz.hints read the store")

    for method in ("steps", "alphas", "genotypes", "events", "get_run", "list_runs"):
        monkeypatch.setattr(store, method, no_query)
    for view in views.values():
        assert len(hints.panel_hints(view)) == len(hints.PANELS)


def test_a_run_without_rows_gets_sentences_that_say_so(tmp_path):
    store = RunStore(tmp_path / "empty.sqlite")
    rid = store.create_run(make_config("tiny", "prime-admm"), name="queued")
    view = RunView(store, rid)
    assert hints.panel_hints(view) == {}  # not refreshed yet: nothing to word
    view.refresh()
    h = hints.panel_hints(view)
    assert list(h) == list(hints.PANELS)
    assert "none of 196 pruned yet, no weights recorded yet" in h["weights"]
    assert h["schedule"].endswith("no iterations yet")
    assert "no update yet (0 of 10 architecture steps)" in h["regularizer"]
    assert h["cell"].startswith("No cell derived yet")
    assert h["losses"] == "No iterations yet"


def test_the_proportions_are_those_of_the_weights(runs):
    """The numbers in the sentences are the view's own: the softmax median equals
    core.engine.measures.separation of the latest weights of both cells."""
    store, ids = runs
    view = _view(store, ids["darts"])
    latest = {ct: view.alphas[ct][-1] for ct in ("normal", "reduce")}
    sep = separation(latest, view.primitives)
    text = hints.panel_hints(view)["weights"]
    assert re.search(rf"holds {sep:.2f}x the uniform share", text), text
