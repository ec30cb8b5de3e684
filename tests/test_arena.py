"""The fast path's weight arena (core.engine.arena): the cell-op weights in one tensor, each
state's op weights a view of it, the optimizer stepping it; the same numbers as without."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.engine.config import make_config
from core.engine.search import Search
from core.engine.supernet import Supernet


def _supernet(arena: bool) -> Supernet:
    torch.manual_seed(0)
    m = Supernet(4, 10, 5, "softmax", 4).to(memory_format=torch.channels_last)
    if arena:
        m.use_weight_arena()
    return m


def _grads_after_two_steps(m: Supernet, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """Two backwards with the gradients zeroed between them, as the search does."""
    w = {k: v.detach() for k, v in m.all_arch_weights().items()}
    for _ in range(2):
        if m._arena is not None:
            m._arena.zero_grad()
            for p in m.parameters():
                if not m._arena.holds(p):
                    p.grad = None
        else:
            m.zero_grad(set_to_none=True)
        F.cross_entropy(m(x, w), y).backward()
    return {n: None if p.grad is None else p.grad.clone() for n, p in m.named_parameters()}


def _prune(m: Supernet) -> None:
    """Some ops off some edges, so that some of a state's runs are no longer contiguous."""
    masks = {ct: mk.copy() for ct, mk in m.masks.items()}
    masks["normal"][1, 3] = masks["normal"][3, 4] = masks["reduce"][0, 5] = False
    m.set_masks(masks)


@pytest.mark.parametrize("pruned", [False, True])
def test_the_arena_gives_each_parameter_the_gradient_it_gets_without_it(pruned):
    x = torch.randn(6, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (6,))
    plain, arena = _supernet(False), _supernet(True)
    if pruned:
        _prune(plain)
        _prune(arena)
    want, got = _grads_after_two_steps(plain, x, y), _grads_after_two_steps(arena, x, y)
    assert want.keys() == got.keys()
    for name, g in want.items():
        if g is None:  # a pruned op's weights: no gradient on either
            assert got[name] is None, name
        else:
            torch.testing.assert_close(got[name], g, atol=1e-6, rtol=1e-5, msg=name)
    # the Parameters' data and gradients are the arena's own memory
    a = arena._arena
    p = arena.cells[0]._ops[0]._ops[4].op[1].weight  # sep_conv_3x3's first depthwise
    assert a.holds(p) and p.data_ptr() == a.part(a.flat.detach(), p).data_ptr()
    assert p.grad.data_ptr() == a.part(a.flat.grad, p).data_ptr()


def test_every_run_of_an_unpruned_supernet_is_one_view():
    m = _supernet(True)
    m(torch.randn(2, 3, 16, 16).contiguous(memory_format=torch.channels_last))
    for cell in m.cells:
        for together, _ in cell._prepared:
            for st in together:
                for ws in st.op.weight_lists() + ([st.merged_pw] if st.merged_pw else []):
                    leaf = m._arena.run(ws, detach=False)
                    assert leaf is not None and leaf.is_leaf and leaf.grad is not None


def test_a_search_steps_the_same_with_and_without_the_arena(monkeypatch):
    """Three iterations (an architecture step each) of the same fast search, with the arena and
    without: the same losses, FI, alphas, weights and momentum, to rounding. (Over more
    iterations the tiny digits search amplifies rounding, with or without the arena, as it
    does between the fast and plain paths: ties in its max pools flip.)"""
    runs = {}
    for arena in (True, False):
        if not arena:
            monkeypatch.setattr(Supernet, "use_weight_arena", lambda self: None)
        s = Search(make_config("tiny", "darts-prime", schedule="fixed", period=1))
        s.setup()
        assert (s.weight_arena is not None) == arena
        rows = [s.iteration(0) for _ in range(3)]
        momentum = s._w_optimizer_state()["state"]
        runs[arena] = (rows, dict(s.model.named_parameters()), momentum)
    (rows_a, params_a, mom_a), (rows_n, params_n, mom_n) = runs[True], runs[False]
    for a, b in zip(rows_a, rows_n):
        for key in ("train_loss", "fi", "val_loss"):
            torch.testing.assert_close(torch.as_tensor(a[key]), torch.as_tensor(b[key]), atol=1e-5, rtol=1e-5)
    for name, p in params_n.items():
        torch.testing.assert_close(params_a[name], p, atol=1e-6, rtol=1e-5, msg=name)
    assert mom_a.keys() == mom_n.keys()
    for j in mom_n:
        torch.testing.assert_close(mom_a[j]["momentum_buffer"], mom_n[j]["momentum_buffer"], atol=1e-6, rtol=1e-5)


def test_the_optimizer_state_is_saved_per_parameter_and_loads_back():
    """A checkpoint holds the weight optimizer's momentum per Parameter, as the plain path
    writes it: a fast search's loads into a plain one and back, and into a fresh fast one."""
    fast = Search(make_config("tiny", "darts", schedule="fixed", period=1))
    fast.setup()
    for _ in range(3):
        fast.iteration(0)
    saved = fast._w_optimizer_state()
    assert sorted(saved["state"]) == list(range(len(fast.w_params)))
    momentum = [saved["state"][j]["momentum_buffer"] for j in range(len(fast.w_params))]
    for p, buf in zip(fast.w_params, momentum):
        assert buf.shape == p.shape

    plain = Search(make_config("tiny", "darts", fast=False, schedule="fixed", period=1))
    plain.setup()
    plain._load_w_optimizer_state(saved)
    for p, buf in zip(plain.w_params, momentum):
        torch.testing.assert_close(plain.w_optimizer.state[p]["momentum_buffer"], buf, rtol=0, atol=0)

    again = Search(make_config("tiny", "darts", schedule="fixed", period=1))
    again.setup()
    again._load_w_optimizer_state(plain.w_optimizer.state_dict())
    flat = again.w_optimizer.state[again.weight_arena.flat]["momentum_buffer"]
    torch.testing.assert_close(flat, fast.w_optimizer.state[fast.weight_arena.flat]["momentum_buffer"],
                               rtol=0, atol=0)
    assert np.isclose(again.w_optimizer.param_groups[0]["lr"], fast.w_optimizer.param_groups[0]["lr"])


def test_moving_the_supernet_after_the_arena_is_refused():
    """A move would give the modules copies of their weights while the fast path reads the
    arena's: it raises instead of letting the two paths drift apart."""
    m = _supernet(True)
    with pytest.raises(RuntimeError, match="weight arena"):
        m.to(torch.float64)
    _supernet(False).to(torch.float64)  # without an arena, as before
