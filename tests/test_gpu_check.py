"""scripts/gpu_check.py, the prepared GPU check, on this CPU machine: without CUDA it skips with
its reason and exit status 0; with --quick on the CPU it runs every step it runs on a GPU (the
benches of both configurations, fast and plain, float32 and bf16, and a short search) and prints one JSON object."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.engine.config import make_config
from scripts.gpu_check import projected_hours

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/gpu_check.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={"PRIME_EXPLORER_THREADS": "1", "PATH": "/usr/bin:/bin",
                                                       "HOME": str(Path.home())})


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here: the check would run")
def test_without_cuda_it_skips_and_says_why():
    proc = _run()
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"skipped": "cuda was asked for but no CUDA GPU is visible; use cpu or auto"}
    assert "gpu_check: skipped: cuda was asked for" in proc.stderr


def test_quick_on_the_cpu_runs_every_step():
    proc = _run("--quick", "--device", "cpu", "--iters", "2", "--search-iters", "6")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["device"] == "cpu"
    for name in ("bench_demo", "bench_paper", "bench_demo_bf16", "bench_paper_bf16"):
        b = out[name]
        assert b["config"]["precision"] == ("bf16" if name.endswith("bf16") else "fp32")
        assert b["fast"]["iters_per_s"] > 0 and b["plain"]["iters_per_s"] > 0 and b["speedup"] > 0
        assert b["fast"]["arch_steps"] == 2  # an architecture step every iteration
    s = out["search_paper"]
    assert s["status"] == "finished" and s["iterations"] == 6 and s["images_per_s"] > 0
    assert s["projected_hours_50_epochs_cifar10"] == pytest.approx(35_550 / s["iters_per_s"] / 3600)


def test_the_projection_counts_a_full_paper_search():
    # 50 epochs of ceil(50,000 x 10/11 / 64) = 711 iterations, for the matched split with period 10
    assert projected_hours(make_config("paper", "darts-prime"), 1.0) == pytest.approx(35_550 / 3600)
    # DARTS's 50/50 split: 391 iterations an epoch
    assert projected_hours(make_config("paper", "darts"), 1.0) == pytest.approx(50 * 391 / 3600)


def test_a_cuda_index_beyond_the_machine_is_named():
    from core.engine.config import ConfigError
    from core.runs.runner import check_device

    with pytest.raises(ConfigError) as e:
        check_device(make_config("tiny", "darts", device="cuda:7"))
    assert e.value.field == "device" and ("no CUDA GPU is visible" in str(e.value) or "cuda:7 does not exist" in str(e.value))
