"""How often a search iteration waits for its device (issue 25): at most one host sync without
an architecture step, a handful with one.

On a CUDA machine, ``torch.cuda.set_sync_debug_mode`` counts the real syncs. Everywhere (CI has
no GPU) the same loop runs on the CPU under a torch function mode that counts what our code
asks of a tensor that would make a GPU wait: reading a value (``item``, ``float``, ``bool``,
``numpy``, ``tolist``, ``nonzero``) or a blocking copy between devices (``to``/``cpu``)."""
from __future__ import annotations

import collections
import traceback
import warnings
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from core.engine.config import make_config
from core.engine.search import Search
from tests.conftest import one_torch_thread

CORE = str(Path(__file__).resolve().parents[1] / "core") + "/"
_READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.__float__,
          torch.Tensor.__int__, torch.Tensor.__bool__, torch.Tensor.__index__,
          torch.Tensor.nonzero, torch.nonzero, torch.Tensor.cpu}


def _names_a_device(args, kwargs) -> bool:
    return "device" in kwargs or any(isinstance(a, (str, torch.device)) for a in args[1:])


class _HostWaits(TorchFunctionMode):
    """Counts, by line of ``core``, the calls that would make the host wait for a GPU."""

    def __init__(self):
        super().__init__()
        self.sites: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        waits = func in _READS or (func is torch.Tensor.to and _names_a_device(args, kwargs)
                                   and not kwargs.get("non_blocking", False))
        if waits:
            frame = traceback.extract_stack(limit=2)[0]  # the caller
            if frame.filename.startswith(CORE):  # our code's call, not torch's own
                self.sites[f"{frame.filename[len(CORE):]}:{frame.lineno} {frame.line}"] += 1
        return func(*args, **kwargs)


def _search(device: str = "cpu", **over) -> Search:
    s = Search(make_config("tiny", "darts-prime", device=device, **over))
    s.setup()
    return s


def test_a_weight_step_asks_nothing_of_the_device_on_a_fixed_schedule():
    s = _search(schedule="fixed", period=1000, batch_size=512)  # three batches a pass
    with one_torch_thread():
        s.iteration(0)
        passes = s.w_stream.epoch
        with _HostWaits() as waits:
            rows = [s.iteration(0) for _ in range(2 * s.w_stream.batches_per_epoch)]
    assert sum(r["arch_step"] for r in rows) == 0
    assert s.w_stream.epoch >= passes + 2  # across pass boundaries: the order's upload does not wait
    assert not waits.sites, dict(waits.sites)


def test_the_informed_schedule_reads_one_number_a_weight_step():
    s = _search(batch_size=8)  # darts-prime's informed schedule
    per_weight_step = []
    with one_torch_thread():
        s.iteration(0)
        while len(per_weight_step) < 4:
            with _HostWaits() as waits:
                row = s.iteration(0)
            if not row["arch_step"]:
                per_weight_step.append(dict(waits.sites))
    for sites in per_weight_step:
        assert list(sites.values()) == [1], sites
        assert "float(fi)" in next(iter(sites))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="counts CUDA syncs; no CUDA GPU here")
@pytest.mark.parametrize("method, period, most", [
    ("darts-prime", 1000, 0),    # weight steps only
    ("darts-prime", 1, 2),       # an architecture step every iteration
    ("prime-crb", 1, 4),
])
def test_syncs_per_iteration_on_a_gpu(method, period, most):
    s = Search(make_config("demo", method, device="cuda", schedule="fixed", period=period))
    s.setup()
    for _ in range(2):
        s.iteration(0)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(4):
                s.iteration(0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 4 * most, [str(w.message) for w in syncs[:8]]
