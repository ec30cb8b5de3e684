"""The gumbel activation, added as one class and one registration: it reaches the pages with no
edit to them, samples in training forwards from torch's seeded generator, and shows, stores and
discretizes softmax(alpha)."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from core.data import load_dataset
from core.engine.activations import create_activation, list_activations
from core.engine.config import make_config
from core.engine.search import Callback, Search
from core.engine.supernet import Supernet
from core.runs.store import RunStore
from tests.conftest import new_app, one_torch_thread


@pytest.fixture(scope="module")
def data():
    d = load_dataset("digits", None, 8, 0)
    return dataclasses.replace(d, train_x=d.train_x[:96], train_y=d.train_y[:96],
                               test_x=d.test_x[:16], test_y=d.test_y[:16])


def _run(store: RunStore, data, **over) -> tuple[Search, int]:
    cfg = make_config("tiny", "darts-prime", activation="gumbel", **over)
    run_id = store.create_run(cfg)
    search = Search(cfg, store, run_id, data=data)
    with one_torch_thread():
        assert search.run().status == "finished"
    return search, run_id


def _spy_samples(search: Search, out: list[torch.Tensor]) -> None:
    """Appends every sample the search's activation draws to ``out``."""
    sample = search.model.act.sample

    def spy(alpha: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        weights = sample(alpha, generator)
        out.append(weights.detach().clone())
        return weights

    search.model.act.sample = spy


def test_gumbel_is_registered():
    assert "gumbel" in list_activations()
    assert make_config("tiny", "darts-prime", activation="gumbel", gumbel_tau=0.5).gumbel_tau == 0.5


def test_training_forwards_sample_and_eval_forwards_do_not():
    torch.manual_seed(0)
    net = Supernet(4, 10, 3, activation=create_activation("gumbel", tau=0.5), in_channels=1)
    assert net.activation_name == "gumbel" and net.act.tau == 0.5 and "none" in net.primitives
    x = torch.randn(4, 1, 8, 8)
    a, b = net.sampled_arch_weights(), net.sampled_arch_weights()
    assert not torch.equal(a["normal"], b["normal"]) and not torch.equal(a["reduce"], b["reduce"])
    net.train()
    assert not torch.equal(net(x), net(x)), "two training forwards use two samples"
    net.eval()  # running BN statistics and softmax(alpha): the same numbers twice
    torch.testing.assert_close(net(x), net(x), rtol=0, atol=0)
    for ct, w in net.all_arch_weights().items():
        torch.testing.assert_close(w, torch.softmax(net.alphas()[ct], -1))


def test_weight_steps_draw_a_fresh_sample_each(data):
    """The fast path keeps the detached weights between architecture steps; a stochastic
    activation's sample must not be kept, so every weight step draws its own."""
    cfg = make_config("tiny", "darts", activation="gumbel", period=3)  # arch steps at 0 and 3
    search = Search(cfg, data=data)
    search.setup()
    _spy_samples(search, drawn := [])
    with one_torch_thread():
        for _ in range(3):
            search.iteration(0)
    # iteration 0: the arch step's forward and the weight step; 1 and 2: the weight step only
    assert len(drawn) == 2 * (1 + 3) and search._weights_detached is None
    weight_steps = [drawn[2:4], drawn[4:6], drawn[6:8]]
    for one, two in zip(weight_steps, weight_steps[1:]):
        assert not torch.equal(one[0], two[0]) and not torch.equal(one[1], two[1])


def test_fast_and_plain_paths_draw_the_same_samples(data):
    """Both paths draw a sample for every forward, in the same order, from the run's own
    generator. (A tiny alpha_lr: Adam's first steps would turn round-off into sign flips.)"""
    drawn = []
    for fast in (True, False):
        search = Search(make_config("tiny", "darts", activation="gumbel", fast=fast, alpha_lr=1e-8),
                        data=data)
        search.setup()
        _spy_samples(search, out := [])
        with one_torch_thread():
            for _ in range(3):
                search.iteration(0)
        drawn.append(out)
    assert len(drawn[0]) == len(drawn[1]) == 3 * 2 * 2  # per iteration: arch and weight step
    for fast, plain in zip(*drawn):
        torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)


def test_tiny_gumbel_search_stores_softmax_and_repeats_with_its_seed(tmp_path, data):
    store = RunStore(tmp_path / "gumbel.sqlite")
    first, id1 = _run(store, data)
    second, id2 = _run(store, data)
    for ct, alpha in first.model.alphas().items():
        steps, weights = store.alphas(id1, ct)
        assert len(steps) >= 2  # the start and at least one architecture step
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)  # rows of a softmax
        # the last stored weights are softmax of the final alphas (they change only at arch steps)
        want = torch.softmax(alpha.detach(), -1).numpy()
        np.testing.assert_allclose(weights[-1], want, atol=1e-6)
        # the same seed, the same run: the same samples, so the same weights at every step
        steps2, weights2 = store.alphas(id2, ct)
        np.testing.assert_array_equal(steps, steps2)
        np.testing.assert_array_equal(weights, weights2)
    losses = [store.steps(i)["train_loss"].to_numpy() for i in (id1, id2)]
    np.testing.assert_array_equal(*losses)
    assert str(first.arch.genotype) == str(second.arch.genotype)


def test_gumbel_search_resumes_where_it_stopped(tmp_path, data):
    """A checkpoint carries the generator the samples come from: stopping after the first epoch
    and resuming gives the run that never stopped."""
    store = RunStore(tmp_path / "resume.sqlite")
    whole, _ = _run(store, data)
    cfg = make_config("tiny", "darts-prime", activation="gumbel")
    run_id = store.create_run(cfg)
    stop = threading.Event()

    class StopAfterFirstEpoch(Callback):
        def on_epoch_end(self, search, epoch, val_acc, val_loss):
            stop.set()  # the epoch's checkpoint is written next, then the loop stops

    with one_torch_thread():
        first = Search(cfg, store, run_id, callbacks=[StopAfterFirstEpoch()], data=data)
        assert first.run(stop_event=stop).status == "stopped"
        resumed = Search(cfg, store, run_id, data=data, resume=True)
        assert resumed.run().status == "finished"
    assert resumed.step == whole.step
    for ct, alpha in whole.model.alphas().items():
        torch.testing.assert_close(resumed.model.alphas()[ct], alpha, rtol=0, atol=1e-6)


def test_compare_custom_method_form_offers_gumbel(app_db):
    at = new_app()
    at.run()
    at.switch_page("pages/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.number_input(key="study_custom").set_value(1).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "gumbel" in at.selectbox(key="study_c0_activation").options
