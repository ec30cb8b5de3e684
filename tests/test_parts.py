"""Hand-checked values for activations, schedules, regularizers, discretization, genotypes."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from core.engine.activations import ACTIVATIONS, create_activation, list_activations
from core.engine.config import SearchConfig, make_config
from core.engine.discretize import derive_genotype, project_discrete, select_edges
from core.engine.genotype import DARTS_V1, DARTS_V2, Genotype, GenotypeError
from core.engine.ops import DARTS_PRIMITIVES, create_op, list_ops
from core.engine.regularizers import (
    ADMM,
    REGULARIZERS,
    StepReport,
    discretization_gap,
    list_regularizers,
)
from core.engine.schedules import (
    SCHEDULES,
    FixedSchedule,
    InformedSchedule,
    list_schedules,
    train_fraction,
)
from core.registry import Registry
from core.viz.cells import genotype_dot

PRIMS = list(DARTS_PRIMITIVES)
NO_NONE = [p for p in PRIMS if p != "none"]


# ---- ops -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list_ops())
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_shape_gradient_finite(name, stride):
    op = create_op(name, 4, stride, affine=False)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    y = op(x)
    assert y.shape == (2, 4, 8 // stride, 8 // stride)
    y.square().sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()


def test_unknown_op_lists_valid_names():
    with pytest.raises(KeyError, match="sep_conv_3x3"):
        create_op("conv_7x7", 4, 1, False)


# ---- activations -----------------------------------------------------------------------
def test_softmax_and_sigmoid_hand_values():
    a = torch.tensor([[0.0, math.log(3.0)]])
    torch.testing.assert_close(create_activation("softmax")(a), torch.tensor([[0.25, 0.75]]))
    torch.testing.assert_close(create_activation("sigmoid")(torch.tensor([[0.0, math.log(3.0)]])),
                               torch.tensor([[0.5, 0.75]]))


def test_crb_clamps_and_prunes_permanently():
    act = create_activation("crb")
    alpha = torch.tensor([[-0.2, 0.3, 1.7], [0.0, 0.5, 0.5]])
    torch.testing.assert_close(act(alpha), torch.tensor([[0.0, 0.3, 1.0], [0.0, 0.5, 0.5]]))
    mask = np.ones((2, 3), dtype=bool)
    mask = act.after_step(alpha, mask)
    assert mask.tolist() == [[False, True, True], [False, True, True]]
    assert alpha[0, 0] == 0 and alpha[1, 0] == 0
    alpha.data[0, 0] = 0.4  # e.g. Adam's momentum pushes it back up
    mask = act.after_step(alpha, mask)
    assert not mask[0, 0] and alpha[0, 0] == 0, "a pruned op never comes back"


@pytest.mark.parametrize("name", list_activations())
def test_activation_init_and_range(name):
    act = create_activation(name)
    a = act.init((14, 7), torch.Generator().manual_seed(0))
    w = act(a)
    assert w.shape == (14, 7) and torch.isfinite(w).all()
    lo, hi = act.y_range
    assert (w >= lo).all() and (w <= hi).all()
    if name == "crb":
        assert abs(float(a.mean()) - 1 / 7) < 1e-3
    s = act.sample(a)  # what a training forward pass uses
    assert s.shape == (14, 7) and torch.isfinite(s).all() and (s >= lo).all() and (s <= hi).all()
    if not act.stochastic:  # a deterministic activation samples its own weights
        torch.testing.assert_close(s, w, rtol=0, atol=0)


# ---- building parts from the config ------------------------------------------------------
CONFIG_FIELDS = {f.name for f in dataclasses.fields(SearchConfig)}
FAMILIES: dict[str, tuple[Registry, list[str]]] = {
    "activation": (ACTIVATIONS, list_activations()), "schedule": (SCHEDULES, list_schedules()),
    "regularizer": (REGULARIZERS, list_regularizers())}


def _extra(family: str) -> dict:
    return {"primitives": PRIMS} if family == "regularizer" else {}


@pytest.mark.parametrize("family,name", [(f, n) for f, (_, names) in FAMILIES.items() for n in names])
def test_every_part_is_built_from_the_config_fields_it_declares(family, name):
    registry, _ = FAMILIES[family]
    declared = registry.get(name).config_fields
    assert set(declared.values()) <= CONFIG_FIELDS, f"{name} reads a field SearchConfig lacks"
    part = registry.create_from_config(name, SearchConfig(**{family: name}), **_extra(family))
    assert part.name == name
    assert registry.config_kwargs(name, SearchConfig()) == {
        kw: getattr(SearchConfig(), field) for kw, field in declared.items()}


def test_parts_read_their_own_settings_from_the_config():
    cfg = make_config("tiny", "prime-admm", period=7, multiplier=1.2, ewma=0.3, init_threshold=5.0,
                      seed_threshold=False, rho=0.4, admm_every=3, admm_decay=0.5, gumbel_tau=0.3)
    informed = SCHEDULES.create_from_config("informed", cfg)
    assert (informed.period, informed.multiplier, informed.ewma, informed.threshold,
            informed.seed_threshold) == (7, 1.2, 0.3, 5.0, False)
    assert SCHEDULES.create_from_config("fixed", cfg).period == 7
    admm = REGULARIZERS.create_from_config("admm", cfg, primitives=NO_NONE)
    assert (admm.rho, admm.every, admm.decay, admm.primitives) == (0.4, 3, 0.5, NO_NONE)
    prox = REGULARIZERS.create_from_config("proximity", cfg.replace(discretization="threshold",
                                                                    op_threshold=0.7), primitives=PRIMS)
    assert (prox.rho, prox.rule, prox.threshold) == (0.4, "threshold", 0.7)
    assert ACTIVATIONS.create_from_config("gumbel", cfg).tau == 0.3
    with pytest.raises(TypeError, match="rho"):  # a setting comes from the config, once
        REGULARIZERS.create_from_config("admm", cfg, primitives=PRIMS, rho=1.0)
    with pytest.raises(KeyError, match="valid: .*informed"):
        SCHEDULES.create_from_config("cosine", cfg)


def test_gumbel_samples_around_softmax():
    torch.manual_seed(0)
    act = create_activation("gumbel", tau=0.5)
    alpha = torch.randn(14, 8)
    torch.testing.assert_close(act(alpha), torch.softmax(alpha, -1))  # the deterministic form
    a, b = act.sample(alpha), act.sample(alpha)
    assert not torch.equal(a, b), "each call draws a fresh sample"
    torch.testing.assert_close(a.sum(-1), torch.ones(14))
    torch.manual_seed(1)
    c = act.sample(alpha)
    torch.manual_seed(1)
    torch.testing.assert_close(act.sample(alpha), c, rtol=0, atol=0)  # torch's seeded generator
    # The mean of many samples' argmax follows softmax(alpha) (Gumbel-max), at any tau.
    torch.manual_seed(2)
    row = torch.tensor([[1.0, 0.0, -1.0]]).expand(20000, 3)
    picks = act.sample(row).argmax(-1).bincount(minlength=3).float() / 20000
    torch.testing.assert_close(picks, torch.softmax(row[0], -1), atol=0.02, rtol=0)
    with pytest.raises(ValueError, match="tau"):
        create_activation("gumbel", tau=0.0)


# ---- schedules -------------------------------------------------------------------------
def test_fixed_schedule_period():
    s = FixedSchedule(3)
    assert [s.should_step() for _ in range(7)] == [True, False, False, True, False, False, True]


def test_informed_schedule_hand_steps():
    s = InformedSchedule(period=2, multiplier=2.0, ewma=0.5, init_threshold=1.0)
    assert s.should_step() is False and s.threshold == 2.0  # no FI yet: threshold grows
    s.observe(3.0)
    assert s.fi_ewma == 3.0  # seeded by the first FI
    assert s.should_step() is False and s.threshold == 4.0
    s.observe(1.0)
    assert s.fi_ewma == 2.0  # 0.5*1 + 0.5*3
    assert s.should_step() is True and s.threshold == 1.0  # 4 * 2^-2


def test_informed_schedule_equilibrium_rate():
    for period in (1, 5, 10):
        s = InformedSchedule(period=period)
        steps = 0
        for _ in range(20000):
            steps += s.should_step()
            s.observe(40.0)
        # start-up ~ ln(40)/ln(1.05) = 76 iterations, then one step per period+1
        assert abs(steps / 20000 - 1 / (period + 1)) < 0.01


def test_informed_start_up_matches_formula():
    s = InformedSchedule(period=10, multiplier=1.05, init_threshold=1.0)
    s.observe(100.0)
    first = next(i for i in range(1000) if s.should_step())
    assert abs(first - math.log(100) / math.log(1.05)) <= 2


def test_seeded_threshold_steps_early():
    s = InformedSchedule(period=10, seed_threshold=True)
    s.observe(100.0)
    assert next(i for i in range(1000) if s.should_step()) <= 2


def test_state_dict_round_trip():
    s = InformedSchedule()
    s.observe(5.0)
    for _ in range(7):
        s.should_step()
    t = InformedSchedule()
    t.load_state_dict(s.state_dict())
    assert [s.should_step() for _ in range(50)] == [t.should_step() for _ in range(50)]


def test_matched_split():
    assert train_fraction("matched", 10) == pytest.approx(10 / 11)
    assert train_fraction("half", 10) == 0.5


# ---- discretization --------------------------------------------------------------------
def _weights(seed=0, ops=8):
    return torch.rand(14, ops, generator=torch.Generator().manual_seed(seed))


def test_rule_keeps_two_edges_per_node_and_ignores_none():
    w = torch.zeros(14, 8)
    w[:, 0] = 10.0  # `none` is strongest everywhere and must never be chosen
    w[1, 4] = 0.9   # node 0: edge from input 1 with sep_conv_3x3
    w[0, 3] = 0.5   # node 0: edge from input 0 with skip_connect
    g = derive_genotype(w, w, PRIMS)
    assert g.normal[:2] == (("sep_conv_3x3", 1), ("skip_connect", 0))
    assert all(op != "none" for op, _ in g.normal + g.reduce)
    assert len(g.normal) == 8 and g.normal_concat == (2, 3, 4, 5)


def test_ties_go_to_lower_edge_and_first_op():
    w = torch.full((14, 8), 0.5)
    g = derive_genotype(w, w, PRIMS)
    # every edge ties: lower edge index first, first non-none op
    assert g.normal == (("max_pool_3x3", 0), ("max_pool_3x3", 1), ("max_pool_3x3", 0),
                        ("max_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
                        ("max_pool_3x3", 0), ("max_pool_3x3", 1))


def test_fully_pruned_edges_are_ranked_last_and_still_valid():
    w = torch.rand(14, 7, generator=torch.Generator().manual_seed(1)) + 0.1
    w[5:9] = 0.0    # node 2: all edges pruned except ...
    w[7, 2] = 0.3   # ... edge 7 (input 2 = node 0)
    g = derive_genotype(w, w, NO_NONE)
    node2 = g.normal[4:6]
    assert node2[0] == (NO_NONE[2], 2)
    assert node2[1] == (NO_NONE[0], 0)  # a fully pruned edge: lowest index, first op
    D = project_discrete(w, NO_NONE)
    assert D.sum() == 8 and ((D == 0) | (D == 1)).all()


def test_project_discrete_is_one_hot_of_genotype():
    w = _weights(3)
    D = project_discrete(w, PRIMS)
    kept = select_edges(w, PRIMS)
    assert D.sum() == 8
    for e, k, _ in kept:
        assert D[e, k] == 1


# ---- regularizers ----------------------------------------------------------------------
def test_proximity_zero_on_discrete_and_hand_value():
    reg = REGULARIZERS.create("proximity", primitives=PRIMS, rho=0.1)
    D = project_discrete(_weights(2), PRIMS)
    assert float(reg.penalty({"normal": D, "reduce": D}, progress=0.7)) == 0.0
    A = _weights(4)
    gap = float(torch.linalg.vector_norm(A - project_discrete(A, PRIMS)))
    assert float(reg.penalty({"normal": A, "reduce": A}, 0.5)) == pytest.approx(0.5 * 0.05 * 2 * gap, rel=1e-5)
    assert float(discretization_gap({"normal": A}, PRIMS)) == pytest.approx(gap, rel=1e-5)


def test_admm_z_always_valid_cell_and_residuals():
    act = create_activation("softmax")
    reg = ADMM(PRIMS, rho=0.1, admm_every=2)
    alphas = {"normal": torch.randn(14, 8), "reduce": torch.randn(14, 8)}
    reg.setup(alphas, {k: act(v) for k, v in alphas.items()})
    for ct, Z in reg.Z.items():  # Z starts as the alphas themselves (the reference code)
        assert torch.equal(Z, alphas[ct]) and Z is not alphas[ct]
    reports = []
    for i in range(6):
        for v in alphas.values():
            v += 0.3 * torch.randn_like(v)
        r = reg.after_arch_step(alphas, act)
        reports.append(r)
        if r.event is None:
            assert r == StepReport()  # nothing to record between updates
            continue
        assert r.event.kind == ADMM.updates.kind and r.event.data == r.terms
        assert tuple(r.event.data) == ADMM.updates.keys  # what the class declares it carries
        for Z in reg.Z.values():
            assert Z.sum() == 8 and ((Z == 0) | (Z == 1)).all()
            assert (Z.sum(1) <= 1).all()
            for rows in ([0, 1], [2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12, 13]):
                assert Z[rows].sum() == 2  # two edges per node
    assert [r.event is not None for r in reports] == [False, True] * 3  # every 2nd step, exactly
    A = act(alphas["normal"])
    assert reports[-1].terms["admm_primal"] > 0 and reports[-1].terms["admm_dual"] > 0
    # penalty is rho/2 * ||A - Z + U|| summed over cell types
    p = reg.penalty({k: act(v) for k, v in alphas.items()}, 0.0)
    want = sum(float(torch.linalg.vector_norm(act(alphas[k]) - reg.Z[k] + reg.U[k])) for k in alphas)
    assert float(p) == pytest.approx(0.05 * want, rel=1e-5)
    del A


def test_admm_never_chooses_a_pruned_op_and_keeps_its_dual_zero():
    """Hand-made: edge 0's strongest op (alpha + U) is pruned; Z must choose among live ops,
    and U of pruned ops stays exactly 0 however A and Z move."""
    act = create_activation("crb")
    alphas = {ct: torch.full((14, 7), 0.1) for ct in ("normal", "reduce")}
    mask = torch.ones(14, 7)
    mask[0, 3] = 0.0          # sep_conv_3x3 of edge 0 is pruned ...
    mask[1, :] = 0.0          # ... and every op of edge 1
    for a in alphas.values():
        a[0, 3] = 0.0
        a[1, :] = 0.0
    reg = ADMM(NO_NONE, rho=0.1, admm_every=1)
    reg.setup(alphas, {k: act(v) for k, v in alphas.items()})
    # A dual that would make the pruned op the projection's choice without the mask.
    for U in reg.U.values():
        U[0, 3] = 5.0
    masks = {ct: mask for ct in alphas}
    reg.after_arch_step(alphas, act, masks)
    for ct in alphas:
        Z, U = reg.Z[ct], reg.U[ct]
        assert float(Z[0, 3]) == 0.0 and not Z[1].any()
        assert float((Z * (1 - mask)).abs().sum()) == 0.0
        assert float((U * (1 - mask)).abs().sum()) == 0.0
        assert Z[[0, 1]].sum() == 1 and Z[0].sum() == 1  # node 0 keeps its one live edge
    reg.after_arch_step(alphas, act, masks)
    for U in reg.U.values():
        assert float((U * (1 - mask)).abs().sum()) == 0.0


def test_zero_one_and_entropy_hand_values():
    A = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    z = REGULARIZERS.create("zero_one", primitives=["a", "b"], zero_one_weight=10.0)
    assert float(z.penalty({"normal": A}, 0.0)) == pytest.approx(-10 * (0.25 + 0.25 + 0 + 0) / 4)
    e = REGULARIZERS.create("entropy", primitives=["a", "b"], entropy_weight=1.0)
    assert float(e.penalty({"normal": A}, 0.0)) == pytest.approx(math.log(2) / 2, rel=1e-5)


@pytest.mark.parametrize("name", list_regularizers())
def test_every_regularizer_gives_finite_gradient(name):
    act = create_activation("sigmoid" if name == "zero_one" else "softmax")
    alphas = {"normal": torch.randn(14, 8, requires_grad=True), "reduce": torch.randn(14, 8, requires_grad=True)}
    reg = REGULARIZERS.create(name, primitives=PRIMS)
    reg.setup({k: v.detach() for k, v in alphas.items()}, {k: act(v).detach() for k, v in alphas.items()})
    p = reg.penalty({k: act(v) for k, v in alphas.items()}, 0.5)
    if name == "none":
        assert float(p) == 0.0
        return
    p.backward()
    assert torch.isfinite(p) and all(torch.isfinite(v.grad).all() for v in alphas.values())


@pytest.mark.parametrize("name", list_regularizers())
def test_every_regularizer_reports_only_the_events_it_declares(name):
    """Events come from the regularizer's report as is; their kind and series are what its class
    declares (the live view and the monitor read nothing else), and the cadence field it names
    is a config field."""
    decl = REGULARIZERS.get(name).updates
    assert decl is None or (decl.every_field in CONFIG_FIELDS and len(set(decl.keys)) == len(decl.series))
    every = {decl.every_field: 1} if decl is not None and decl.every_field else {}
    cfg = make_config("tiny", "darts-prime", regularizer=name, **every)  # an update every step
    reg = REGULARIZERS.create_from_config(name, cfg, primitives=PRIMS)
    act = create_activation("softmax")
    alphas = {"normal": torch.randn(14, 8), "reduce": torch.randn(14, 8)}
    reg.setup(alphas, {k: act(v) for k, v in alphas.items()})
    events = [r.event for r in (reg.after_arch_step(alphas, act) for _ in range(3)) if r.event]
    if decl is None:
        assert events == []
    else:
        assert len(events) == 3 and all(e.kind == decl.kind and tuple(e.data) == decl.keys
                                        for e in events)


# ---- genotype ----------------------------------------------------------------------------
@pytest.mark.parametrize("g", [DARTS_V1, DARTS_V2])
def test_genotype_text_and_json_round_trip(g):
    assert Genotype.parse(str(g)) == g
    assert Genotype.from_json(g.to_json()) == g
    assert str(g).startswith("Genotype(normal=[('")


def test_genotype_parse_never_evaluates():
    with pytest.raises(GenotypeError):
        Genotype.parse("__import__('os').system('echo hacked')")
    with pytest.raises(GenotypeError):
        Genotype.parse("Genotype(normal=[(print('x'), 1)], normal_concat=range(2, 6), "
                       "reduce=[], reduce_concat=range(2, 6))")


def test_genotype_dot_and_graph():
    dot = genotype_dot(DARTS_V2, "normal")
    assert dot.count("->") == 8 + 4 and "sep_conv_3x3" in dot
    g = DARTS_V2.to_networkx("reduce")
    assert g.number_of_nodes() == 7
