"""Server time of a Learn page redraw (issue: under 0.3 s per control change or Step).

Two figures, CPU seconds of this process, median of 3 with the spread:
- per section: what its fragment computes on a control change (the toy, uncached, its
  figures, and Streamlit's own figure check and JSON encoding);
- the whole page in AppTest after a control change: every section at once, so an upper
  bound of one section's rerun (a fragment reruns only its own section).

    PYTHONPATH=. python scripts/perf/learn_timing.py
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import plotly.io
import plotly.tools

from core.engine.activations import op_names
from core.viz import toy_figures as TF
from core.viz import toys

ROOT = Path(__file__).resolve().parents[2]


def _serialize(fig) -> None:  # as st.plotly_chart does
    plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(fig, validate_figure=True),
                      validate=False)


def section_1(k: int) -> None:
    useful = {**toys.DEFAULT_USEFULNESS, "sep_conv_3x3": -1.0 + 0.3 * k}
    runs = toys.alpha_toy(useful, lr=0.5, noise=0.1 * k, steps=60)
    _serialize(TF.alpha_figure(runs, 30 + k))


def section_2(k: int) -> None:
    trace = toys.schedule_trace(toys.synthetic_fi(300, 1.0, 0.3, seed=k), period=3 + k)
    _serialize(TF.schedule_figure(trace, 300))


def section_3(k: int) -> None:
    traces = [toys.pull_trace(r, "crb", rho=1.0 + k, steps=40) for r in ("proximity", "admm")]
    _serialize(TF.pull_figure(traces[1], 40, toys.PULL_TOY_NODES))
    _serialize(TF.gap_figure(traces, 40))


def section_4(k: int) -> None:
    ops = op_names("softmax")
    w = toys.toy_cell_weights(4, seed=k, ops=ops)
    c = toys.cell_choice(w, ops)
    TF.choice_table(w, ops, c, 4).to_html()
    from core.viz.cells import genotype_dot
    genotype_dot(TF.partial_genotype(c, ops, 4), "normal")


def _median(f: Callable[[int], None], repeats: int = 3, settings: int = 5) -> tuple[float, float, float]:
    per = []
    for _ in range(repeats):
        t = time.process_time()
        for k in range(settings):
            f(k)
        per.append((time.process_time() - t) / settings)
    return statistics.median(per), min(per), max(per)


def page_rerun(repeats: int = 3) -> tuple[float, float, float]:
    os.environ["PRIME_EXPLORER_DB"] = os.path.join(tempfile.mkdtemp(), "t.sqlite")
    os.environ["PRIME_EXPLORER_SPARE"] = "0"
    from streamlit.testing.v1 import AppTest

    import app_state

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/learn.py")
    at.run()
    per = []
    for i in range(repeats):
        at.slider(key="l1_lr").set_value(0.6 + 0.1 * i)
        t = time.process_time()
        at.run()
        per.append(time.process_time() - t)
        assert not at.exception
    app_state.shutdown_all()
    return statistics.median(per), min(per), max(per)


def main() -> int:
    for name, f in (("1 alpha", section_1), ("2 schedule", section_2), ("3 pull", section_3),
                    ("4 cell", section_4)):
        f(0)  # warm imports and caches
        med, lo, hi = _median(f)
        print(f"section {name:<10} {med * 1000:6.1f} ms CPU (median of 3, {lo * 1000:.1f}-{hi * 1000:.1f})")
    med, lo, hi = page_rerun()
    print(f"whole page (AppTest) {med * 1000:6.1f} ms CPU (median of 3, {lo * 1000:.1f}-{hi * 1000:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
