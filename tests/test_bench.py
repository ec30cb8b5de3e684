"""The bench's interleaved fast/plain comparison, and the process setting that keeps a search's
freed memory for its next iteration (both behind issue 25's speed figures)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.engine.config import make_config
from core.engine.device import keep_freed_memory
from core.runs import bench

ROOT = Path(__file__).resolve().parents[1]


def test_compare_interleaves_the_two_paths_in_blocks_and_reports_their_median_ratio(monkeypatch):
    order = []
    real_block = bench._Timed.block

    def block(self, iters):
        order.append((self.config.fast, iters))
        real_block(self, iters)

    monkeypatch.setattr(bench._Timed, "block", block)
    cfg = make_config("tiny", "darts-prime", schedule="fixed", period=1)
    r = bench.bench(cfg, iters=5, warmup=1, compare_plain=True, threads=1)
    # blocks of BLOCK_ITERS (2), fast then plain, the last one short
    assert order == [(True, 2), (False, 2), (True, 2), (False, 2), (True, 1), (False, 1)]
    assert r["fast"]["iters"] == r["plain"]["iters"] == 5
    assert r["fast"]["fast"] is True and r["plain"]["fast"] is False
    assert r["fast"]["arch_steps"] == r["plain"]["arch_steps"] == 5
    assert r["blocks"] == 3
    lo, hi = r["speedup_range"]
    assert 0 < lo <= r["speedup"] <= hi


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_a_search_keeps_its_freed_memory_instead_of_faulting_it_in_every_iteration():
    """With glibc's default thresholds a demo-size fast-path iteration page-faults about ten
    thousand times; kept, a few hundred at most."""
    assert keep_freed_memory() is True and keep_freed_memory() is True  # once; then a no-op
    script = textwrap.dedent("""
        import resource, sys
        import core.engine.search as S
        if sys.argv[1] == "untuned":
            S.keep_freed_memory = lambda: False
        from core.engine.config import make_config
        s = S.Search(make_config("demo", "darts-prime", dataset="shapes", schedule="fixed", period=1))
        s.setup()
        for _ in range(2):
            s.iteration(0)
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(2):
            s.iteration(0)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 2)
    """)
    procs = {mode: subprocess.Popen([sys.executable, "-c", script, mode], cwd=ROOT, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env={**os.environ, "PRIME_EXPLORER_THREADS": "1"})
             for mode in ("tuned", "untuned")}  # side by side: the counts are per process
    faults = {}
    for mode, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        faults[mode] = float(out.split()[-1])
    assert faults["tuned"] < 1000, faults
    assert faults["untuned"] > 4 * faults["tuned"], faults
