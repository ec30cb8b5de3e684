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
import weakref
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from core.engine.config import make_config
from core.engine.search import Search
from tests.conftest import one_torch_thread

CORE = str(Path(__file__).resolve().parents[1] / "core") + "/"
TO_HOST_FILE = CORE + "engine/device.py"
_READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.__array__,
          torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__bool__,
          torch.Tensor.__index__, torch.Tensor.nonzero, torch.nonzero}


def _tensors(tree) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, (list, tuple)):
        return [t for x in tree for t in _tensors(x)]
    if isinstance(tree, dict):
        return [t for x in tree.values() for t in _tensors(x)]
    return []


def _device_roots(s: Search) -> list[torch.Tensor]:
    """What a search keeps on its device: the model's parameters and buffers, the streams'
    images, labels and order, the normalisation constants, the regularizer's and the
    optimizers' state, the cached weights, the weight arena."""
    roots = list(s.model.parameters()) + list(s.model.buffers())
    for stream in (s.w_stream, s.a_stream):
        roots += [stream.x, stream.y, stream._perm_on_device]
    roots += [t for pair in s.data._stats_on.values() for t in pair]
    roots += _tensors(vars(s.regularizer))
    for opt in (s.w_optimizer, s.alpha_optimizer):
        roots += [t for t in _tensors(list(opt.state.values())) if t.dim() > 0]  # (Adam's step: host)
    if s._weights_detached is not None:
        roots += _tensors(s._weights_detached)
    if s.weight_arena is not None:
        roots += s.weight_arena.tensors()
    return roots


class _HostWaits(TorchFunctionMode):
    """Counts, by line of ``core``, the calls that would make the host wait for a GPU.

    Which tensors would be on the device there is followed through the calls: what the search
    keeps there (``_device_roots``), what is moved there (``.to`` a device object), made there
    (a ``device`` argument), or computed from any of these; a ``.cpu()`` or ``.to("cpu")`` copy
    (our code's way of asking for the host) and everything else is on the host. A wait is:
    reading a value of a device tensor, copying one to the host, or a blocking copy of a host
    tensor to the device (``.to(device)`` without ``non_blocking``)."""

    def __init__(self, search: Search):
        super().__init__()
        self.sites: collections.Counter = collections.Counter()
        self._device: set[int] = set()
        self._mark(_device_roots(search))

    def _mark(self, out) -> None:
        for t in _tensors(out):
            if id(t) not in self._device:
                self._device.add(id(t))
                weakref.finalize(t, self._device.discard, id(t))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = _tensors(args) + _tensors(kwargs)
        on_device = any(id(t) in self._device for t in inputs)
        target = next((a for a in list(args[1:]) + [kwargs.get("device")]
                       if isinstance(a, (str, torch.device))), None)
        to_host = func is torch.Tensor.cpu or (func is torch.Tensor.to and target == "cpu")
        to_device = func is torch.Tensor.to and isinstance(target, torch.device)
        waits = (((func in _READS or to_host) and on_device)
                 or (to_device and not on_device and not kwargs.get("non_blocking", False)))
        if waits:
            stack = traceback.extract_stack()[:-1]
            frame = stack[-1]  # the caller; our code's call, not torch's own
            if frame.filename.startswith(CORE):
                while frame.filename == TO_HOST_FILE:  # the shared copy helper: name its caller
                    stack.pop()
                    frame = stack[-1]
                self.sites[f"{frame.filename[len(CORE):]}:{frame.lineno} {frame.line.strip()}"] += 1
        out = func(*args, **kwargs)
        if to_host and any(out is t for t in inputs):  # on the CPU the "copy" is the tensor itself
            out = out.view_as(out)
        made_there = not inputs and isinstance(kwargs.get("device"), torch.device)
        if to_device or made_there or (on_device and not to_host):
            self._mark(out)
        return out


def _search(method: str = "darts-prime", **over) -> Search:
    s = Search(make_config("tiny", method, **over))
    s.setup()
    return s


def test_a_weight_step_asks_nothing_of_the_device_on_a_fixed_schedule():
    s = _search(schedule="fixed", period=1000, batch_size=512)  # three batches a pass
    with one_torch_thread():
        s.iteration(0)
        passes = s.w_stream.epoch
        with _HostWaits(s) as waits:
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
            with _HostWaits(s) as waits:
                row = s.iteration(0)
            if not row["arch_step"]:
                per_weight_step.append(dict(waits.sites))
    for sites in per_weight_step:
        assert list(sites.values()) == [1], sites
        assert "float(fi)" in next(iter(sites))


@pytest.mark.parametrize("method, most", [
    ("darts", 1),        # both cells' weights to the host, in one copy
    ("fairdarts", 1),
    ("darts-prime", 2),  # and the proximity target's choice, made on the host for both cells
    ("prime-crb", 4),    # and CRB's read of each cell's alphas
    ("prime-admm", 5),   # an ADMM update (here every step): its projection and one read of its norms
])
def test_an_architecture_step_waits_a_handful_of_times(method, most):
    s = _search(method, schedule="fixed", period=1, batch_size=8, admm_every=1)
    with one_torch_thread():
        s.iteration(0)
        for _ in range(3):
            with _HostWaits(s) as waits:
                row = s.iteration(0)
            assert row["arch_step"]
            assert sum(waits.sites.values()) <= most, dict(waits.sites)
            copies = [site for site in waits.sites if "search.py" in site]
            assert len(copies) == 1 and waits.sites[copies[0]] == 1, dict(waits.sites)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="counts CUDA syncs; no CUDA GPU here")
@pytest.mark.parametrize("method, period, most", [
    ("darts-prime", 1000, 0),    # weight steps only
    ("darts-prime", 1, 2),       # an architecture step every iteration: as counted above
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

