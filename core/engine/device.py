"""Device choice (cuda, then mps, then cpu), the process-wide torch thread count, and how the C
allocator keeps freed memory."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Sequence

import torch

_threads_lock = threading.Lock()
_threads_set: int | None = None

# Chosen by `python -m core bench` on the 2-core CI machines (docs/performance.md): one intra-op
# thread per search keeps a second core for the app server, the browser or a second run.
DEFAULT_THREADS = 1


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for but no CUDA GPU is visible; use cpu or auto")
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise RuntimeError(f"device: {name} does not exist; this machine has {n} CUDA GPU(s): "
                           + ", ".join(f"cuda:{i}" for i in range(n)))
    return device


def configure_threads(n: int = 0, alone: bool = False) -> int:
    """Sets torch's intra-op thread count once per process; later calls with another number
    are ignored. 0 = $PRIME_EXPLORER_THREADS, else every available core for a search ``alone``
    on the machine (the CLI's search and resume), else DEFAULT_THREADS (the app's and a study's
    searches, which share the machine)."""
    global _threads_set
    with _threads_lock:
        if _threads_set is None:
            want = (n or int(os.environ.get("PRIME_EXPLORER_THREADS", "0") or 0)
                    or (available_cores() if alone else DEFAULT_THREADS))
            torch.set_num_threads(max(1, want))
            _threads_set = torch.get_num_threads()
        return _threads_set


def to_host(tensors: Sequence[torch.Tensor], dtype: torch.dtype) -> list[torch.Tensor]:
    """Detached host copies of ``tensors`` in ``dtype``, made in one copy: on a GPU, one wait
    for the device instead of one per tensor."""
    if not tensors:
        return []
    flat = torch.cat([t.detach().flatten().to(dtype) for t in tensors]).to("cpu")
    return [chunk.view(t.shape) for t, chunk in zip(tensors, flat.split([t.numel() for t in tensors]))]


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts
_TRIM_THRESHOLD = 2**30
_allocator_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Lets glibc's malloc keep the memory a search iteration frees for the next one, once per
    process. By default it hands large freed blocks back to the kernel, and the next iteration
    faults the same pages in again (thousands a fast-path iteration, a few percent of its time:
    docs/performance.md). Blocks up to 32 MiB now come from the heap, and the heap gives back
    only what exceeds 1 GiB free at its top; the process's peak memory is unchanged. Returns
    whether it applied (False off glibc: macOS, Windows, musl)."""
    global _allocator_tuned
    with _threads_lock:
        if _allocator_tuned is None:
            _allocator_tuned = False
            name = ctypes.util.find_library("c")
            try:
                libc = ctypes.CDLL(name) if name else None
                mallopt = getattr(libc, "mallopt", None)
                gnu = getattr(libc, "gnu_get_libc_version", None)
            except OSError:
                mallopt = gnu = None
            if mallopt is not None and gnu is not None:  # glibc's semantics, not another libc's
                _allocator_tuned = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                                        and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
        return _allocator_tuned
