"""The discrete evaluation network: the DARTS parameter count, shapes, drop path, errors."""
from __future__ import annotations

import pytest
import torch

from core.engine import evalnet
from core.engine.evalnet import EvalNetwork, architecture_size, count_parameters, drop_path
from core.engine.genotype import DARTS_V1, DARTS_V2, Genotype
from core.engine.ops import Identity, list_ops

DARTS_V2_PARAMS = 3_349_342  # DARTS train.py "param size = 3.349342MB" (aux head excluded)


def tiny(genotype: Genotype = DARTS_V2, **kw) -> EvalNetwork:
    args = dict(C=8, num_classes=5, layers=3, auxiliary=True, genotype=genotype)
    args.update(kw)
    return EvalNetwork(**args)


def test_darts_v2_parameter_count() -> None:
    net = EvalNetwork(36, 10, 20, auxiliary=True, genotype=DARTS_V2)
    assert count_parameters(net) == DARTS_V2_PARAMS
    assert count_parameters(net, exclude_auxiliary=False) > DARTS_V2_PARAMS
    assert architecture_size(DARTS_V2) == DARTS_V2_PARAMS
    assert architecture_size(DARTS_V2, C=36, num_classes=10, layers=20) == DARTS_V2_PARAMS


def test_architecture_size_is_cached_and_exact() -> None:
    evalnet._SIZE_CACHE.clear()
    n = architecture_size(DARTS_V1, C=8, num_classes=5, layers=3)
    assert n == count_parameters(tiny(DARTS_V1, auxiliary=False))
    assert (str(DARTS_V1), 8, 5, 3, 3) in evalnet._SIZE_CACHE
    assert architecture_size(DARTS_V1, C=8, num_classes=5, layers=3) == n
    assert architecture_size(DARTS_V1, C=8, num_classes=5, layers=6) != n


def test_darts_module_names() -> None:
    net = tiny()
    names = dict(net.named_modules())
    for name in ("stem", "cells.0.preprocess0", "cells.0.preprocess1", "cells.0._ops.0",
                 "cells.2.preprocess0", "auxiliary_head", "global_pooling", "classifier"):
        assert name in names, name
    # After a reduction cell, c_{k-2} is halved by a FactorizedReduce.
    assert type(names["cells.2.preprocess0"]).__name__ == "FactorizedReduce"
    assert type(names["cells.1.preprocess0"]).__name__ == "ReLUConvBN"
    assert [c.reduction for c in net.cells] == [False, True, True]
    keys = net.state_dict().keys()
    assert "cells.0._ops.0.op.1.weight" in keys
    assert "auxiliary_head.features.2.weight" in keys
    assert "auxiliary_head.classifier.weight" in keys


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("size", [8, 16, 32])
def test_forward_shapes(size: int, in_channels: int) -> None:
    torch.manual_seed(0)
    net = tiny(in_channels=in_channels, drop_path_prob=0.2)
    x = torch.randn(2, in_channels, size, size)
    net.train()
    logits, aux = net(x)
    assert logits.shape == (2, 5) and aux is not None and aux.shape == (2, 5)
    (logits.sum() + aux.sum()).backward()
    assert torch.isfinite(logits).all() and torch.isfinite(aux).all()
    net.eval()
    with torch.no_grad():
        logits, aux = net(x)
    assert logits.shape == (2, 5) and aux is None


def test_no_auxiliary_head() -> None:
    net = tiny(auxiliary=False)
    assert not hasattr(net, "auxiliary_head")
    logits, aux = net.train()(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 5) and aux is None


def test_odd_input_size() -> None:
    logits, aux = tiny().train()(torch.randn(2, 3, 15, 13))
    assert logits.shape == (2, 5) and aux.shape == (2, 5)


def test_drop_path_function() -> None:
    torch.manual_seed(0)
    x = torch.ones(1000, 2, 3, 3)
    assert drop_path(x, 0.0) is x
    y = drop_path(x, 0.3)
    per_sample = y.flatten(1)
    # Each sample is either all zero or all scaled by 1/keep_prob.
    scaled = torch.isclose(per_sample, torch.tensor(1 / 0.7)).all(1)
    assert ((per_sample == 0).all(1) | scaled).all()
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.3) < 0.06
    assert x.eq(1).all()  # not in place


def test_drop_path_only_in_training() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 3, 16, 16)
    net = tiny(drop_path_prob=0.0)
    net.train()
    a, _ = net(x)
    b, _ = net(x)
    assert torch.equal(a, b)  # zero probability: deterministic in training
    net.drop_path_prob = 0.5
    c, _ = net(x)
    assert not torch.allclose(a, c)  # active in training
    net.eval()
    with torch.no_grad():
        d, _ = net(x)
        net.drop_path_prob = 0.0
        e, _ = net(x)
    assert torch.equal(d, e)  # inactive in eval


def test_identity_edges_never_dropped() -> None:
    # Every edge a skip: nothing may be dropped, so the output matches drop_path_prob 0.
    skips = tuple(("skip_connect", i) for i in (0, 1, 0, 1, 0, 1, 0, 1))
    g = Genotype(normal=skips, normal_concat=(2, 3, 4, 5),
                 reduce=DARTS_V2.reduce, reduce_concat=(2, 3, 4, 5))
    net = tiny(g, auxiliary=False)
    assert all(isinstance(op, Identity) for op in net.cells[0]._ops)
    cell = net.cells[0].train()
    s = torch.randn(4, 24, 8, 8)
    torch.manual_seed(1)
    a = cell(s, s, 0.9)
    b = cell(s, s, 0.0)
    assert torch.equal(a, b)


def test_darts_v1_builds() -> None:
    net = tiny(DARTS_V1)
    logits, aux = net.train()(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 5) and aux.shape == (2, 5)
    assert architecture_size(DARTS_V1) > 0


def _with(normal=None, normal_concat=None) -> Genotype:
    return Genotype(
        normal=DARTS_V2.normal if normal is None else normal,
        normal_concat=DARTS_V2.normal_concat if normal_concat is None else normal_concat,
        reduce=DARTS_V2.reduce, reduce_concat=DARTS_V2.reduce_concat,
    )


@pytest.mark.parametrize("genotype, match", [
    (_with(normal=DARTS_V2.normal[:7]), "2 per node"),
    (_with(normal=()), "2 per node"),
    (_with(normal=(("conv_7x7", 0),) + DARTS_V2.normal[1:]), "unknown operation 'conv_7x7'"),
    (_with(normal=(("sep_conv_3x3", 2),) + DARTS_V2.normal[1:]), "inputs"),
    (_with(normal_concat=(2, 3, 9)), "concat"),
    (_with(normal_concat=()), "concat"),
])
def test_bad_genotype_errors(genotype: Genotype, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(genotype)


def test_unknown_op_error_lists_valid_ops() -> None:
    g = _with(normal=(("conv_7x7", 0),) + DARTS_V2.normal[1:])
    with pytest.raises(ValueError) as e:
        architecture_size(g)
    for op in list_ops():
        assert op in str(e.value)


@pytest.mark.parametrize("layers", [0, 1, 2])
def test_too_few_layers(layers: int) -> None:
    with pytest.raises(ValueError, match="layers"):
        tiny(layers=layers)


@pytest.mark.parametrize("size", [1, 2, 4, 5, 7, 8, 10, 11, 16])
def test_aux_pool_always_gives_2x2(size: int) -> None:
    pool = evalnet._AuxPool()
    x = torch.randn(2, 4, size, size)
    assert pool(x).shape == (2, 4, 2, 2)
    if size == 8:  # CIFAR's case: exactly DARTS's AvgPool2d(5, stride=3)
        ref = torch.nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False)(x)
        assert torch.equal(pool(x), ref)


def test_architecture_size_equals_built_network_for_random_genotypes():
    from core.engine.discretize import derive_genotype
    from core.engine.ops import DARTS_PRIMITIVES

    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        g = derive_genotype(torch.rand(14, 8, generator=gen), torch.rand(14, 8, generator=gen),
                            DARTS_PRIMITIVES)
        net = EvalNetwork(16, 7, 8, auxiliary=True, genotype=g)
        assert architecture_size(g, 16, 7, 8) == count_parameters(net)
