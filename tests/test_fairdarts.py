"""FairDARTS's threshold discretization and its (op, node, input) cells: the parse on hand-made
weights, the seven published FairDARTS cells (text, JSON, drawing, evaluation network, size),
and tiny fairdarts searches under both rules."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from core.engine.config import make_config
from core.engine.discretize import derive_genotype, edge_rows, project_discrete, select_edges
from core.engine.evalnet import (
    Cell,
    EvalNetwork,
    architecture_size,
    count_parameters,
    validate_genotype,
)
from core.engine.genotype import DARTS_V2, Genotype, GenotypeError
from core.engine.ops import DARTS_PRIMITIVES
from core.engine.regularizers import REGULARIZERS, discretization_gap
from core.engine.search import Search
from core.runs.store import RunStore
from core.viz.cells import genotype_dot
from core.viz.figures import genotype_changes
from core.viz.live import RunView

NO_NONE = [p for p in DARTS_PRIMITIVES if p != "none"]  # FairDARTS's op list, in its order
OP = {op: k for k, op in enumerate(NO_NONE)}

# The seven cells of xiaomi-automl/FairDARTS fairdarts/genotypes.py, as published (test data).
FAIRDARTS = {
    "FairDARTS_a": "Genotype(normal=[('sep_conv_3x3', 2, 0), ('sep_conv_5x5', 2, 1), ('max_pool_3x3', 4, 0), ('sep_conv_3x3', 5, 0)], normal_concat=range(2, 6),\n         reduce=[('max_pool_3x3', 2, 0), ('avg_pool_3x3', 2, 1), ('avg_pool_3x3', 3, 0), ('dil_conv_5x5', 3, 1), ('avg_pool_3x3', 4, 0), ('sep_conv_5x5', 4, 1),\n                 ('skip_connect', 5, 0), ('skip_connect', 5, 1)], reduce_concat=range(2, 6))",
    "FairDARTS_b": "Genotype(normal=[('sep_conv_3x3', 2, 0), ('sep_conv_3x3', 2, 1), ('sep_conv_3x3', 3, 1), ('dil_conv_3x3', 4, 0), ('sep_conv_5x5', 4, 1), ('dil_conv_5x5', 5, 1)], normal_concat=range(2, 6),\nreduce=[('skip_connect', 2, 0), ('dil_conv_3x3', 2, 1), ('skip_connect', 3, 0), ('dil_conv_3x3', 3, 1), ('max_pool_3x3', 4, 0), ('sep_conv_3x3', 4, 1), ('skip_connect', 5, 2), ('max_pool_3x3', 5, 0)], reduce_concat=range(2, 6))",
    "FairDARTS_c": "Genotype(normal=[('max_pool_3x3', 2, 0), ('sep_conv_5x5', 2, 1), ('dil_conv_3x3', 4, 0), ('dil_conv_5x5', 4, 2), ('skip_connect', 5, 3), ('sep_conv_3x3', 5, 0)], normal_concat=range(2, 6),\n                       reduce=[('dil_conv_3x3', 2, 1), ('dil_conv_5x5', 2, 0), ('dil_conv_3x3', 3, 0), ('sep_conv_3x3', 3, 1), ('sep_conv_5x5', 4, 0), ('sep_conv_5x5', 4, 3), ('sep_conv_5x5', 5, 0), ('skip_connect', 5, 1)], reduce_concat=range(2, 6))",
    "FairDARTS_d": "Genotype(normal=[('sep_conv_3x3', 2, 0), ('sep_conv_5x5', 2, 1), ('dil_conv_3x3', 3, 1), ('max_pool_3x3', 3, 0), ('dil_conv_3x3', 4, 0), ('dil_conv_3x3', 4, 1), ('sep_conv_3x3', 5, 0), ('dil_conv_5x5', 5, 1)], normal_concat=range(2, 6),\nreduce=[('max_pool_3x3', 2, 0), ('sep_conv_5x5', 2, 1), ('avg_pool_3x3', 3, 0), ('dil_conv_5x5', 3, 2), ('dil_conv_3x3', 4, 3), ('avg_pool_3x3', 4, 0), ('avg_pool_3x3', 5, 0), ('skip_connect', 5, 3)], reduce_concat=range(2, 6))",
    "FairDARTS_e": "Genotype(normal=[('sep_conv_3x3', 2, 0), ('sep_conv_3x3', 2, 1), ('dil_conv_3x3', 4, 1), ('dil_conv_3x3', 4, 2), ('dil_conv_3x3', 5, 0), ('dil_conv_5x5', 5, 1)], normal_concat=range(2, 6),\nreduce=[('max_pool_3x3', 2, 1), ('max_pool_3x3', 2, 0), ('max_pool_3x3', 3, 1), ('max_pool_3x3', 3, 0), ('sep_conv_5x5', 4, 1), ('max_pool_3x3', 4, 0), ('avg_pool_3x3', 5, 0), ('dil_conv_5x5', 5, 1)], reduce_concat=range(2, 6))",
    "FairDARTS_f": "Genotype(normal=[('max_pool_3x3', 2, 0), ('sep_conv_3x3', 2, 1), ('dil_conv_3x3', 3, 1), ('sep_conv_5x5', 4, 1), ('sep_conv_3x3', 5, 0), ('sep_conv_3x3', 5, 1)], normal_concat=range(2, 6),\nreduce=[('max_pool_3x3', 2, 0), ('max_pool_3x3', 2, 1), ('max_pool_3x3', 3, 0), ('dil_conv_3x3', 3, 1), ('dil_conv_3x3', 4, 2), ('max_pool_3x3', 4, 0), ('max_pool_3x3', 5, 0), ('sep_conv_3x3', 5, 1)], reduce_concat=range(2, 6))",
    "FairDARTS_g": "Genotype(normal=[('sep_conv_3x3', 2, 0), ('sep_conv_3x3', 2, 1), ('skip_connect', 4, 3), ('sep_conv_5x5', 4, 1), ('dil_conv_3x3', 5, 0), ('sep_conv_3x3', 5, 1)], normal_concat=range(2, 6),\nreduce=[('avg_pool_3x3', 2, 1), ('skip_connect', 2, 0), ('skip_connect', 3, 2), ('max_pool_3x3', 3, 1), ('sep_conv_5x5', 4, 3), ('max_pool_3x3', 4, 0), ('dil_conv_3x3', 5, 1), ('dil_conv_3x3', 5, 4)], reduce_concat=range(2, 6))",
}
# "Params" in the comment above each cell there, in millions (CIFAR-10, C=36, 20 layers).
PUBLISHED_PARAMS_M = {"FairDARTS_a": 2.83, "FairDARTS_b": 3.88, "FairDARTS_c": 2.59,
                      "FairDARTS_d": 3.84, "FairDARTS_e": 3.12, "FairDARTS_f": 3.62,
                      "FairDARTS_g": 3.375}


def _triples(g: Genotype, ct: str) -> list[tuple[str, int, int]]:
    return [(op, node, inp) for (op, inp), node in zip(g.cell(ct), g.nodes_of(ct))]


def _reference_parse(w: np.ndarray, ops: list[str], threshold: float) -> list[tuple[str, int, int]]:
    """The threshold_sparse rule as FairDARTS's utils.parse states it, written out plainly:
    per node, the 2 edges with the largest weight (stable sort), each one's best op if it
    reaches the threshold."""
    gene, start = [], 0
    for i in range(4):
        W = w[start:start + 2 + i]
        for j in sorted(range(i + 2), key=lambda j: -W[j].max())[:2]:
            k = int(np.argmax(W[j]))
            if W[j][k] >= threshold:
                gene.append((ops[k], i + 2, j))
        start += 2 + i
    return gene


# ---- the threshold rule -------------------------------------------------------------------
def _hand_weights() -> np.ndarray:
    """(14, 7) weights over NO_NONE, 0.1 where not set. Worked out by hand per node:

    node 0 (rows 0-1): sep_conv_3x3 0.95 <- 0, sep_conv_5x5 0.90 <- 1: both pass -> 2 inputs.
    node 1 (rows 2-4): best ops 0.80 (skip <- 0), 0.84 (dil_conv_3x3 <- 1), 0.50: the top 2 are
        edges 1 and 0, neither reaches 0.85 -> 0 inputs.
    node 2 (rows 5-8): edge 0 ties sep_conv_3x3 and dil_conv_5x5 at 0.95 (first op wins); edges 1
        and 3 tie at 0.90, so edge 1 (lower index) is the second kept edge and edge 3 is dropped
        although it passes the threshold -> 2 inputs.
    node 3 (rows 9-13): skip_connect 0.97 <- 4, then edge 1 at 0.60 (< 0.85) -> 1 input.
    """
    w = np.full((14, 7), 0.1)
    w[0, OP["sep_conv_3x3"]] = 0.95
    w[1, OP["sep_conv_5x5"]] = 0.90
    w[2, OP["skip_connect"]] = 0.80
    w[3, OP["dil_conv_3x3"]] = 0.84
    w[4, OP["max_pool_3x3"]] = 0.50
    w[5, OP["sep_conv_3x3"]] = w[5, OP["dil_conv_5x5"]] = 0.95
    w[6, OP["avg_pool_3x3"]] = 0.90
    w[8, OP["dil_conv_3x3"]] = 0.90
    w[10, OP["sep_conv_5x5"]] = 0.60
    w[13, OP["skip_connect"]] = 0.97
    return w


HAND_CELL = [("sep_conv_3x3", 2, 0), ("sep_conv_5x5", 2, 1), ("sep_conv_3x3", 4, 0),
             ("avg_pool_3x3", 4, 1), ("skip_connect", 5, 4)]


def test_threshold_parse_by_hand():
    w = _hand_weights()
    g = derive_genotype(w, w, NO_NONE, rule="threshold", threshold=0.85)
    for ct in ("normal", "reduce"):
        assert _triples(g, ct) == HAND_CELL
        assert not g.is_darts_layout(ct)
        assert g.concat(ct) == (2, 3, 4, 5)
    assert g.normal_weights == pytest.approx((0.95, 0.90, 0.95, 0.90, 0.97))
    assert str(g).startswith("Genotype(normal=[('sep_conv_3x3', 2, 0), ('sep_conv_5x5', 2, 1), "
                             "('sep_conv_3x3', 4, 0), ('avg_pool_3x3', 4, 1), ('skip_connect', 5, 4)]")
    assert {n: len(p) for n, p in g.pairs_by_node("normal").items()} == {2: 2, 3: 0, 4: 2, 5: 1}
    assert g.computed_nodes("normal") == (2, 4, 5)
    assert _triples(g, "normal") == _reference_parse(w, NO_NONE, 0.85)
    # The same weights under the DARTS rule: two per node, node 1 and node 3 filled up.
    d = derive_genotype(w, w, NO_NONE)
    assert d.is_darts_layout("normal") and len(d.normal) == 8
    assert d.normal[2:4] == (("dil_conv_3x3", 1), ("skip_connect", 0))
    assert d.normal[6:8] == (("skip_connect", 4), ("sep_conv_5x5", 1))
    # project_discrete is the one-hot of the kept pairs under each rule.
    D = project_discrete(torch.tensor(w), NO_NONE, rule="threshold")
    assert int(D.sum()) == 5 and int(project_discrete(torch.tensor(w), NO_NONE).sum()) == 8
    assert [(e, k) for e, k, _ in select_edges(w, NO_NONE, rule="threshold")] == \
        [(0, OP["sep_conv_3x3"]), (1, OP["sep_conv_5x5"]), (5, OP["sep_conv_3x3"]),
         (6, OP["avg_pool_3x3"]), (13, OP["skip_connect"])]


def test_threshold_is_inclusive_and_excludes_none():
    w = np.full((14, 8), 0.1)
    w[:, 0] = 0.99  # `none` would pass everywhere; it is never chosen
    w[0, 4] = 0.85  # exactly the threshold: kept (FairDARTS compares with >=)
    w[1, 4] = np.nextafter(0.85, 0.0)  # just below: not kept
    g = derive_genotype(w, w, list(DARTS_PRIMITIVES), rule="threshold", threshold=0.85)
    assert _triples(g, "normal") == [("sep_conv_3x3", 2, 0)]
    assert derive_genotype(w, w, list(DARTS_PRIMITIVES), rule="threshold", threshold=0.8).normal == \
        (("sep_conv_3x3", 0), ("sep_conv_3x3", 1))  # both pass: node 2 is a full DARTS node


@pytest.mark.parametrize("seed", range(6))
def test_threshold_rule_matches_fairdarts_parse_on_random_weights(seed):
    rng = np.random.default_rng(seed)
    w = 1 / (1 + np.exp(-2.5 * rng.standard_normal((14, 7))))  # sigmoid weights, some > 0.85
    g = derive_genotype(w, w, NO_NONE, rule="threshold")
    assert _triples(g, "normal") == _reference_parse(w, NO_NONE, 0.85)
    assert all(wt >= 0.85 for wt in g.normal_weights)


def test_a_cell_keeping_two_per_node_is_the_darts_cell():
    w = _hand_weights() + 0.5  # every top edge now passes 0.85
    t = derive_genotype(w, w, NO_NONE, rule="threshold")
    d = derive_genotype(w, w, NO_NONE)
    assert t == d and str(t) == str(d) and t.is_darts_layout("normal")


def test_live_mask_and_unknown_rule():
    w = _hand_weights()
    live = np.ones_like(w)
    live[13, OP["skip_connect"]] = 0  # node 3's only passing op is pruned
    kept = select_edges(w, NO_NONE, live, rule="threshold")
    assert 13 not in [e for e, _, _ in kept] and len(kept) == 4
    with pytest.raises(ValueError, match="darts, threshold"):
        select_edges(w, NO_NONE, rule="fair")


def test_empty_threshold_cell():
    w = np.full((14, 7), 0.5)  # sigmoid(0): where a FairDARTS search starts
    g = derive_genotype(w, w, NO_NONE, rule="threshold")
    assert g.normal == () and g.computed_nodes("normal") == () and g.output_states("normal") == ()
    # drawn as four greyed nodes and no edge
    assert g.steps("normal") == 4 and "->" not in genotype_dot(g, "normal")
    assert genotype_dot(g, "normal").count('style="filled,dashed"') == 4
    assert Genotype.parse(str(g)) == g and Genotype.from_json(g.to_json()) == g
    with pytest.raises(ValueError, match="2 per node"):
        validate_genotype(g)
    A = torch.tensor(w)
    assert float(discretization_gap({"normal": A}, NO_NONE, "threshold")) == \
        pytest.approx(float(torch.linalg.vector_norm(A)))
    reg = REGULARIZERS.create("proximity", primitives=NO_NONE, rho=0.1, rule="threshold", threshold=0.85)
    assert float(reg.penalty({"normal": A}, 1.0)) == pytest.approx(0.05 * float(torch.linalg.vector_norm(A)))


# ---- the seven published cells --------------------------------------------------------------
@pytest.mark.parametrize("name", list(FAIRDARTS))
def test_published_cells_text_json_and_drawing(name):
    g = Genotype.parse(FAIRDARTS[name])
    published = re.findall(r"\('(\w+)', (\d+), (\d+)\)", FAIRDARTS[name])
    n_normal = len(re.findall(r"\('\w+', \d+, \d+\)", FAIRDARTS[name].split("reduce=")[0]))
    ours = _triples(g, "normal") + _triples(g, "reduce")
    assert [(op, int(n), int(i)) for op, n, i in published] == ours
    assert len(g.normal) == n_normal
    assert Genotype.parse(str(g)) == g and Genotype.from_json(g.to_json()) == g
    assert Genotype.parse(g.to_json()) == g
    for ct in ("normal", "reduce"):
        validate_genotype(g)
        dot = genotype_dot(g, ct)
        # one edge per pair, one into c_{k} per computed node of concat
        assert dot.count("->") == len(g.cell(ct)) + len(g.output_states(ct))
        graph = g.to_networkx(ct)
        assert graph.number_of_nodes() == 2 + 4 + 1
        assert graph.number_of_edges() == dot.count("->")
        greyed = [n for n, d in graph.nodes(data=True) if d["kind"] == "node" and not d["computed"]]
        assert dot.count("style=\"filled,dashed\"") == len(greyed)
        choices = {(c, n, i, op) for c, n, i, op in g.choices() if c == ct}
        assert choices == {(ct, node - 2, inp, op) for op, node, inp in _triples(g, ct)}


def test_published_cells_layouts_and_skipped_inputs():
    g = {name: Genotype.parse(text) for name, text in FAIRDARTS.items()}
    # FairDARTS_d's normal cell keeps two inputs per node, in node order: the DARTS layout.
    assert g["FairDARTS_d"].is_darts_layout("normal")
    assert str(g["FairDARTS_d"]).startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1)")
    assert not g["FairDARTS_a"].is_darts_layout("normal") and g["FairDARTS_a"].is_darts_layout("reduce")
    # FairDARTS_a normal: node 3 has no input, so no edge into the output from it (3 of 4).
    a = g["FairDARTS_a"]
    assert a.output_states("normal") == (2, 4, 5) and genotype_dot(a, "normal").count("->") == 4 + 3
    # FairDARTS_c normal: node 3 has no input; node 5's skip_connect from node 3 is skipped (as
    # DCOCell does), so the normal cell builds 5 of its 6 ops and concatenates 3 nodes.
    c = g["FairDARTS_c"]
    assert c.computed_nodes("normal") == (2, 4, 5)
    cell = Cell(c, 16, 16, 8, reduction=False, reduction_prev=False)
    assert len(cell._ops) == 5 and cell.multiplier == 3
    assert 'style=dotted' in genotype_dot(c, "normal")  # the unused edge is drawn dotted


@pytest.mark.parametrize("name", list(FAIRDARTS))
def test_published_cells_build_and_run(name):
    torch.manual_seed(0)
    g = Genotype.parse(FAIRDARTS[name])
    net = EvalNetwork(8, 10, 5, auxiliary=True, genotype=g, drop_path_prob=0.3)
    assert architecture_size(g, 8, 10, 5) == count_parameters(net)
    x = torch.randn(2, 3, 16, 16)
    logits, aux = net.train()(x)
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    (logits.sum() + aux.sum()).backward()
    assert torch.isfinite(logits).all()
    net.eval()
    with torch.no_grad():
        a, aux = net(x)
        b, _ = net(x)
    assert aux is None and torch.equal(a, b) and torch.isfinite(a).all()


def test_published_parameter_counts():
    """Our networks at C=36, 20 layers against FairDARTS's comments: six count the auxiliary
    head (its utils.count_parameters_in_MB counts every parameter); FairDARTS_c's 2.59 M is the
    count without it (3.08 M with)."""
    for name, text in FAIRDARTS.items():
        g = Genotype.parse(text)
        net = EvalNetwork(36, 10, 20, auxiliary=True, genotype=g)
        assert architecture_size(g) == count_parameters(net)
        n = count_parameters(net, exclude_auxiliary=name == "FairDARTS_c")
        assert abs(n / 1e6 - PUBLISHED_PARAMS_M[name]) < 0.01, (name, n)


def test_hand_cell_and_unreached_nodes_build():
    w = _hand_weights()
    g = derive_genotype(w, w, NO_NONE, rule="threshold")
    net = EvalNetwork(8, 5, 5, auxiliary=False, genotype=g)
    assert net.cells[0].multiplier == 3 and architecture_size(g, 8, 5, 5) == count_parameters(net)
    assert net(torch.randn(2, 3, 16, 16))[0].shape == (2, 5)
    # node 2 has no input, node 3 only node 2's: neither is computed; node 4 is, from c_{k-1}.
    chain = Genotype(normal=[("sep_conv_3x3", 3, 2), ("skip_connect", 4, 1)], normal_concat=range(2, 6),
                     reduce=DARTS_V2.reduce, reduce_concat=DARTS_V2.reduce_concat)
    assert chain.computed_nodes("normal") == (4,) and chain.output_states("normal") == (4,)
    net = EvalNetwork(8, 5, 5, auxiliary=False, genotype=chain)
    assert net.cells[0].multiplier == 1 and len(net.cells[0]._ops) == 1
    assert architecture_size(chain, 8, 5, 5) == count_parameters(net)
    assert net(torch.randn(2, 3, 16, 16))[0].shape == (2, 5)
    dot = genotype_dot(chain, "normal")
    assert dot.count("->") == 2 + 1 and dot.count("style=dotted") == 1


def test_triple_cells_drop_the_node_output_even_for_skips():
    # DCOCell drops each node's output, identity or not (DARTS's cell never drops a skip).
    skips = [("skip_connect", 2, 0), ("skip_connect", 3, 1), ("skip_connect", 4, 2)]
    g = Genotype(normal=skips, normal_concat=range(2, 6), reduce=DARTS_V2.reduce,
                 reduce_concat=DARTS_V2.reduce_concat)
    cell = Cell(g, 8, 8, 8, reduction=False, reduction_prev=False).train()
    s = torch.randn(64, 8, 4, 4)
    torch.manual_seed(0)
    assert not torch.equal(cell(s, s, 0.5), cell(s, s, 0.0))
    cell.eval()
    assert torch.equal(cell(s, s, 0.5), cell(s, s, 0.0))


def test_parse_rejects_mixed_items_and_code():
    with pytest.raises(GenotypeError, match="mixes"):
        Genotype.parse("Genotype(normal=[('sep_conv_3x3', 2, 0), ('sep_conv_3x3', 1)], "
                       "normal_concat=range(2, 6), reduce=[], reduce_concat=range(2, 6))")
    with pytest.raises(GenotypeError):
        Genotype.parse("Genotype(normal=[('sep_conv_3x3', 2, __import__('os').getpid())], "
                       "normal_concat=range(2, 6), reduce=[], reduce_concat=range(2, 6))")
    with pytest.raises(GenotypeError, match="nodes"):
        Genotype(normal=[("sep_conv_3x3", 0)], normal_concat=(2,), reduce=(), reduce_concat=(2,),
                 normal_nodes=(2, 3))


def test_change_log_groups_triples_by_their_node(tmp_path):
    a = Genotype.parse(FAIRDARTS["FairDARTS_a"])
    # node 3 gains an input and node 5's input moves: each reported at its own node
    b = Genotype(normal=[*_triples(a, "normal")[:2], ("skip_connect", 3, 1),
                         ("max_pool_3x3", 4, 0), ("sep_conv_3x3", 5, 1)],
                 normal_concat=a.normal_concat, reduce=a.reduce, reduce_concat=a.reduce_concat)
    store = RunStore(tmp_path / "g.sqlite")
    run_id = store.create_run(make_config("tiny", "fairdarts"))
    for i, g in enumerate((a, b)):
        store.add_genotype(run_id, 10 * i, g.to_json(), None)
    view = RunView(store, run_id)
    view.refresh()
    assert view.genotype(-1) == b
    assert genotype_changes(view).to_dict("records") == [
        {"step": 10, "cell": "normal", "node": 1, "change": "normal node 1: skip_connect <- 1 added"},
        {"step": 10, "cell": "normal", "node": 3,
         "change": "normal node 3: sep_conv_3x3 <- 0 replaced by sep_conv_3x3 <- 1"},
    ]


# ---- searches ------------------------------------------------------------------------------
def _pair_weight(weights: np.ndarray, primitives: list[str], op: str, node: int, inp: int) -> float:
    return float(weights[edge_rows(4)[node - 2][inp], primitives.index(op)])


def test_tiny_fairdarts_search_gives_a_threshold_cell(tmp_path):
    store = RunStore(tmp_path / "f.sqlite")
    cfg = make_config("tiny", "fairdarts", alpha_lr=0.2)
    assert cfg.discretization == "threshold" and cfg.op_threshold == 0.85
    run_id = store.create_run(cfg)
    search = Search(cfg, store, run_id)
    result = search.run()
    assert result.status == "finished"
    g, prims = result.genotype, search.primitives
    assert g.normal or g.reduce, "alpha_lr 0.2 lets some weights pass 0.85"
    assert not (g.is_darts_layout("normal") and g.is_darts_layout("reduce"))
    for ct in ("normal", "reduce"):
        w = search.arch.weights[ct]
        for op, node, inp in _triples(g, ct):
            assert _pair_weight(w, prims, op, node, inp) >= 0.85
        assert all(n <= 2 for n in map(len, g.pairs_by_node(ct).values()))
    assert g == derive_genotype(search.arch.weights["normal"], search.arch.weights["reduce"],
                                prims, rule="threshold", threshold=0.85)
    # The store holds each genotype as JSON with its explicit nodes; early empty cells have no size.
    view = RunView(store, run_id)
    view.refresh()
    assert view.genotype(-1) == g
    sizes = view.genotypes["size"]
    assert sizes.isna().iloc[0] and sizes.notna().iloc[-1]
    genotype_changes(view)  # the change log reads triple cells
    if result.size:
        assert result.size == architecture_size(g, 36, 10, 20)


def test_tiny_fairdarts_search_under_the_darts_rule():
    cfg = make_config("tiny", "fairdarts", alpha_lr=0.2, discretization="darts")
    search = Search(cfg)
    g = search.run().genotype
    for ct in ("normal", "reduce"):
        assert g.is_darts_layout(ct) and len(g.cell(ct)) == 8
        assert all(len(p) == 2 for p in g.pairs_by_node(ct).values())


def test_search_passes_the_rule_to_proximity():
    search = Search(make_config("tiny", "darts-prime", discretization="threshold", op_threshold=0.9))
    search.setup()
    assert search.regularizer.rule == "threshold" and search.regularizer.threshold == 0.9
