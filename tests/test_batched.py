"""The supernet's fast path (core.engine.batched): the plan, the cropped depthwise convs, and
the same numbers as the plain path in the cases the demo's test does not reach."""
import pytest
import torch
import torch.nn.functional as F

import core.engine.batched as batched
from core.engine.batched import _add_shared, _repeat_channels, build_plan
from core.engine.depthwise import cut_taps as _cut_taps
from core.engine.depthwise import depthwise as _depthwise
from core.engine.discretize import num_edges
from core.engine.supernet import Supernet


@pytest.fixture(params=["batched, tails merged", "batched", "edge by edge"])
def batching(request, monkeypatch):
    """The fast path every way it runs on the CPU: edges batched with the ops' pointwise tails in
    one conv (the smallest maps), edges batched, and each op with weights edge by edge (maps
    above ``BATCH_MAX_ELEMENTS``)."""
    if request.param == "batched":
        monkeypatch.setattr(batched, "MERGE_MAX_ELEMENTS", 0)
    if request.param == "edge by edge":
        monkeypatch.setattr(batched, "BATCH_MAX_ELEMENTS", 0)
    return request.param


def _fast_and_plain(m: Supernet, x: torch.Tensor, weight_grads: bool = True):
    """Output and parameter gradients (by name) of the plain path, then of the fast one
    (channels-last, as the search runs it)."""
    results = []
    for fast in (False, True):
        m.fast = fast
        m.zero_grad(set_to_none=True)
        fmt = torch.channels_last if fast else torch.contiguous_format
        m.to(memory_format=fmt)
        y = m(x.contiguous(memory_format=fmt), weight_grads=weight_grads)
        y.square().mean().backward()
        results.append((y.detach(), {n: None if p.grad is None else p.grad.clone()
                                     for n, p in m.named_parameters()}))
    return results


def _assert_same(results):
    (y_plain, g_plain), (y_fast, g_fast) = results
    torch.testing.assert_close(y_fast, y_plain, atol=1e-5, rtol=1e-5)
    for a, b in zip(g_fast.values(), g_plain.values()):
        if a is None or b is None:
            assert (a is None or not a.any()) and (b is None or not b.any())
        else:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_plan_takes_each_live_edge_once_from_its_source_state():
    nodes = 4
    active = [list(range(8)) for _ in range(num_edges(nodes))]
    active[3] = [0, 2]        # edge 3 keeps only `none` and avg_pool
    plan = build_plan(nodes, active, skipped=[0])
    assert sorted(plan.order) == list(range(num_edges(nodes)))
    offsets = [0, 2, 5, 9]
    for sp in plan.states:
        assert list(plan.order[sp.start:sp.start + len(sp.edges)]) == list(sp.edges)
        for e, i in zip(sp.edges, sp.nodes):
            assert e == offsets[i] + sp.state  # node i's input from this state
        assert all(g.k != 0 for g in sp.groups)  # `none` never runs
    s1 = plan.states[1]  # s1 feeds edges 1, 3, 6, 10; edge 3 computes avg_pool only
    by_k = {g.k: g for g in s1.groups}
    assert by_k[2].full and not by_k[4].full and by_k[4].positions == (0, 2, 3)
    assert len(plan.states) == nodes + 1  # the last node feeds no edge


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 16])
@pytest.mark.parametrize("k,dilation,stride", [(3, 1, 1), (5, 1, 1), (3, 2, 1), (5, 2, 1), (5, 1, 2),
                                               (5, 2, 2)])
def test_depthwise_without_the_padding_only_taps_is_the_same_conv(n, k, dilation, stride):
    """Also the split weight gradient of 5-wide kernels (maps of 8x8 and up)."""
    torch.manual_seed(n * 100 + k)
    pad = dilation * (k - 1) // 2
    x = torch.randn(3, 4, n, n, requires_grad=True)
    w = torch.randn(4, 1, k, k, requires_grad=True)
    ref = F.conv2d(x, w, stride=stride, padding=pad, dilation=dilation, groups=4)
    got = _depthwise(x, w, stride=stride, padding=pad, dilation=dilation)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(got, (x, w), g), torch.autograd.grad(ref, (x, w), g),
                               atol=1e-5, rtol=1e-5)


def test_cut_taps_on_small_maps():
    assert _cut_taps(5, 2, 4, 1, 4) == 1    # dil_conv_5x5 on a 4x4 map: a dilated 3x3
    assert _cut_taps(5, 1, 2, 1, 2) == 1    # a 5x5 on a 2x2 map: a 3x3
    assert _cut_taps(5, 1, 2, 1, 1) == 2    # on one pixel only the centre tap is left
    assert _cut_taps(5, 2, 4, 1, 8) == 0    # large enough: nothing cut
    assert _cut_taps(3, 1, 1, 1, 2) == 0


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_weight_gradient_on_a_2x2_map_from_pixel_products(stride, layout):
    """A 3x3 on a 2x2 map (the polyphase dil convs of 4x4 maps): the weight gradient from every
    pair of pixels, the input gradient from the conv's own kernel; both the conv's."""
    torch.manual_seed(stride)
    x = torch.randn(5, 6, 2, 2).contiguous(memory_format=layout).requires_grad_()
    w = torch.randn(6, 1, 3, 3, requires_grad=True)
    got = _depthwise(x, w, stride=stride, padding=1)
    assert type(got.grad_fn).__name__ == "_DepthwiseTinyBackward"
    ref = F.conv2d(x, w, stride=stride, padding=1, groups=6)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-6)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(got, (x, w), g), torch.autograd.grad(ref, (x, w), g),
                               atol=1e-5, rtol=1e-5)
    # no weight gradient wanted (an architecture step): the conv itself, no function
    assert type(_depthwise(x, w.detach(), padding=1).grad_fn).__name__ != "_DepthwiseTinyBackward"


def test_batch_norm_applies_the_edges_weights_in_its_kernel():
    """The weights of an op ending in BN scale its output inside the BN call: the same values and
    gradients (the alphas' included) as BN, then a product."""
    bn = torch.nn.BatchNorm2d(8, affine=False)
    x = torch.randn(4, 8, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    scale = torch.randn(8, requires_grad=True)
    got = batched._bn(x, bn, scale)
    ref = batched._bn(x, bn) * scale.view(1, -1, 1, 1)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(got, (x, scale), g),
                               torch.autograd.grad(ref, (x, scale), g), atol=1e-5, rtol=1e-5)


def test_repeat_channels_keeps_the_layout_and_values():
    x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    r = _repeat_channels(x, 3)
    assert r.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(r, x.repeat(1, 3, 1, 1), rtol=0, atol=0)


def test_fast_path_matches_plain_on_odd_sizes(batching):
    """15x15 input: reduction cells see odd maps (factorized reduce pads, no polyphase)."""
    torch.manual_seed(1)
    m = Supernet(4, 10, 5, activation="softmax", in_channels=3)
    _assert_same(_fast_and_plain(m, torch.randn(4, 3, 15, 15)))


def test_fast_path_matches_plain_with_ops_it_runs_edge_by_edge(batching):
    """An op class without a batched form (conv_7x1_1x7 here) runs edge by edge on the fast
    path, beside batched ones."""
    torch.manual_seed(2)
    prims = ["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_5x5", "conv_7x1_1x7"]
    m = Supernet(4, 10, 3, activation="softmax", in_channels=1, primitives=prims)
    _assert_same(_fast_and_plain(m, torch.randn(4, 1, 8, 8)))


def test_fast_path_matches_plain_with_pools_pruned_on_some_edges(batching):
    """CRB prunes a pool on some edges leaving a state only: the shared output is weighted
    edge by edge; a whole node's inputs pruned gives zeros."""
    torch.manual_seed(3)
    m = Supernet(4, 10, 5, activation="crb", in_channels=1)
    with torch.no_grad():
        m.alphas_normal[[0, 2, 5], 0] = -1.0   # max_pool_3x3 off three of s0's four edges
        m.alphas_reduce[1, 1:] = -1.0          # s1 -> node 0 in the reduction cell: only max_pool
        m.alphas_reduce[[2, 3, 4], :] = -1.0   # node 1 of the reduction cell: every input pruned
    assert m.after_arch_update()
    _assert_same(_fast_and_plain(m, torch.randn(4, 1, 16, 16)))


def test_fast_path_matches_plain_edge_by_edge_on_the_demo_supernet(monkeypatch):
    """The demo's shape (C=8, 5 cells, 16x16 RGB), every op of every cell edge by edge."""
    monkeypatch.setattr(batched, "BATCH_MAX_ELEMENTS", 0)
    torch.manual_seed(4)
    m = Supernet(8, 10, 5, activation="softmax", in_channels=3)
    _assert_same(_fast_and_plain(m, torch.randn(4, 3, 16, 16)))


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_shared_op_added_on_every_edge_keeps_the_layout_of_its_gradient(layout):
    """A pool's (or the identity's) output, added on m edges with each edge's weights: the
    values and gradients of a plain broadcast, and a gradient for the pool output in its own
    layout (a default-layout gradient would send its BN down a slow mixed-layout kernel)."""
    torch.manual_seed(0)
    B, m, C, H = 4, 3, 5, 6
    together = torch.randn(B, m * C, H, H).contiguous(memory_format=layout).requires_grad_()
    y = torch.randn(B, C, H, H).contiguous(memory_format=layout).requires_grad_()
    wv = torch.randn(m * C, requires_grad=True)
    out = _add_shared(together, y, wv, m, C)
    ref = together + y.repeat(1, m, 1, 1) * wv.view(1, m * C, 1, 1)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, (together, y, wv), g)
    want = torch.autograd.grad(ref, (together, y, wv), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    assert got[1].is_contiguous(memory_format=layout)
    assert out.is_contiguous(memory_format=layout)


def test_architecture_step_forward_gives_the_alphas_the_plain_gradient_and_the_ops_none():
    torch.manual_seed(5)
    m = Supernet(8, 10, 5, activation="softmax", in_channels=3)
    (_, plain), (_, fast) = _fast_and_plain(m, torch.randn(4, 3, 16, 16), weight_grads=False)
    for name in ("alphas_normal", "alphas_reduce"):
        torch.testing.assert_close(fast[name], plain[name], atol=1e-5, rtol=1e-4)
    # the cells' op weights entered detached; stem, preprocessing and classifier did not
    assert all(g is None for n, g in fast.items() if "._ops." in n)
    assert fast["classifier.weight"] is not None
