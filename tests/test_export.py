"""``python -m core export RUN --format json``: the final operation weights of both cells, the
pruning masks from the store's events, and the figures of what the search did, for a finished
CRB run that pruned, a run with no rows yet, and an older run whose summary lacks the figures."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.__main__ import main
from core.engine.config import make_config
from core.engine.search import Search
from core.runs.store import RunStore
from core.viz.export import RUN_FIGURES, export_run, run_figures
from core.viz.live import primitives_for


@pytest.fixture(scope="module")
def crb_run(tmp_path_factory) -> tuple[str, int]:
    """(store path, run id) of a finished tiny prime-crb run that pruned (alpha_lr 0.3, an
    architecture step as often as the informed schedule allows)."""
    path = str(tmp_path_factory.mktemp("export") / "export.sqlite")
    store = RunStore(path)
    cfg = make_config("tiny", "prime-crb", alpha_lr=0.3, period=1)
    rid = store.create_run(cfg, name="crb export")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny search on a busy 2-core machine: much faster on one
    try:
        assert Search(cfg, store, rid).run().status == "finished"
    finally:
        torch.set_num_threads(threads)
    store.close()
    return path, rid


def _export(path: str, run_id: int, capsys) -> dict:
    """The CLI's JSON export, parsed."""
    assert main(["--db", path, "export", str(run_id), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_export_has_final_weights_and_pruning_masks(crb_run, capsys):
    path, rid = crb_run
    store = RunStore(path)
    run = store.get_run(rid)
    ops = primitives_for(run.config)
    assert len(ops) == 7 and "none" not in ops  # CRB drops `none`
    d = _export(path, rid, capsys)
    pruned = store.events(rid, kinds=["pruned"])
    assert len(pruned) > 0, "alpha_lr=0.3 prunes at the first architecture steps"
    for ct in ("normal", "reduce"):
        steps, alphas = store.alphas(rid, ct)
        cell = d["weights"][ct]
        assert cell["ops"] == ops and cell["step"] == int(steps[-1])
        w = np.array(cell["weights"])
        assert w.shape == (14, 7)
        np.testing.assert_allclose(w, alphas[-1], rtol=1e-6, atol=1e-7)  # the last alphas row
        mask = np.array(d["masks"][ct])
        assert mask.shape == (14, 7) and mask.dtype == bool
        expected = np.ones((14, 7), dtype=bool)
        for data in pruned["data"]:
            e = json.loads(data)
            if e["cell_type"] == ct:
                expected[e["edge"], ops.index(e["op"])] = False
        np.testing.assert_array_equal(mask, expected)  # false exactly where pruned
        # a pruned op's weight is 0 (CRB re-zeroes it), a live one's is not
        assert (w[~mask] == 0).all() and (w[mask] > 0).all()
    assert sum((~np.array(d["masks"][ct])).sum() for ct in ("normal", "reduce")) == len(pruned)


def test_json_export_has_the_summary_figures(crb_run, capsys):
    path, rid = crb_run
    store = RunStore(path)
    run = store.get_run(rid)
    d = _export(path, rid, capsys)
    figures = d["figures"]
    assert set(figures) == set(RUN_FIGURES)
    for k in RUN_FIGURES:
        assert figures[k] == run.summary[k], k  # what the search wrote at its end
    assert figures["pruned_ops"] == len(store.events(rid, kinds=["pruned"])) > 0
    assert figures["total_ops"] == 2 * 14 * 7
    assert figures["pruned_pct"] == pytest.approx(100 * figures["pruned_ops"] / 196, abs=0.01)
    assert figures["arch_steps"] == int(store.steps(rid)["arch_step"].sum())
    assert figures["separation"] > 1 and 0 <= figures["separated_edges"] <= 1
    assert d["summary"]["pruned_ops"] == figures["pruned_ops"]


def test_figures_of_an_old_run_come_from_its_rows(crb_run):
    """A run stored before its summary held these figures gets the same numbers from its rows."""
    path, rid = crb_run
    store = RunStore(path)
    run = store.get_run(rid)
    old = {k: v for k, v in run.summary.items() if k not in RUN_FIGURES}
    from dataclasses import replace
    computed = run_figures(store, replace(run, summary=old))
    for k in RUN_FIGURES:
        assert computed[k] == pytest.approx(run.summary[k]), k


def test_a_run_without_alphas_exports_nulls(tmp_path, capsys):
    path = str(tmp_path / "empty.sqlite")
    store = RunStore(path)
    rid = store.create_run(make_config("tiny", "prime-crb"), name="queued")
    d = _export(path, rid, capsys)
    assert d["weights"] == {"normal": None, "reduce": None}
    assert d["masks"] == {"normal": None, "reduce": None}
    assert d["genotype"] is None
    f = d["figures"]
    assert f["pruned_ops"] == 0 and f["total_ops"] == 196 and f["pruned_pct"] == 0.0
    assert f["separation"] is None and f["last_genotype_change"] is None and f["arch_steps"] is None
    # the module's function answers alike
    assert json.loads(export_run(store, rid, "json"))["weights"]["reduce"] is None
