"""A run in TensorBoard: event files written live as a search records itself, or later from the
store (``core.viz.tracking``), through the one mapping of ``core.runs.scalars``.

Live, the store a search records into is wrapped by ``TensorBoardTee``: every row the Recorder
writes to the store goes to the event files too, so there is no second copy of what a run
records. ``torch.utils.tensorboard`` needs the ``tensorboard`` package.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Sequence

import numpy as np

from core.engine.genotype import Genotype, GenotypeError
from core.runs.scalars import (
    RunLayout,
    event_scalars,
    size_scalars,
    step_scalars,
    weight_groups,
    weight_scalars,
)

FINAL_STATUSES = ("finished", "failed", "stopped", "interrupted")


class TensorBoardLog:
    """One run's event files in ``logdir``. ``purge_step``: a resumed run writes again from
    there, and TensorBoard drops what the first attempt wrote at or after it."""

    def __init__(self, logdir: str, layout: RunLayout, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.logdir = str(logdir)
        self.layout = layout
        self.writer = SummaryWriter(log_dir=self.logdir, purge_step=purge_step)
        # One Multiline chart per edge, its ops together, in the Custom Scalars tab.
        self.writer.add_custom_scalars({
            f"{cell} cell: operation weights per edge": {
                edge: ["Multiline", [re.escape(t) + "$" for t in tags]]
                for edge, tags in edges.items()}
            for cell, edges in weight_groups(layout).items()})

    def _scalars(self, scalars: Sequence[tuple[str, int, float]]) -> None:
        for tag, step, value in scalars:
            self.writer.add_scalar(tag, value, step)

    def steps(self, rows: Sequence[dict[str, Any]]) -> None:
        self._scalars(step_scalars(rows, self.layout))

    def weights(self, step: int, weights: dict[str, np.ndarray]) -> None:
        self._scalars(weight_scalars(step, weights, self.layout))

    def genotype(self, step: int, genotype_json: str, size: int | None) -> None:
        try:
            text = str(Genotype.from_json(genotype_json))
        except (GenotypeError, ValueError, KeyError, TypeError):
            text = genotype_json
        self.writer.add_text("genotype", text, step)
        self._scalars(size_scalars(step, size))

    def events(self, events: Sequence[dict[str, Any]]) -> None:
        self._scalars(event_scalars(events, self.layout))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class TensorBoardTee:
    """A run store that also writes what is recorded into it to TensorBoard.

    Every other call goes to the store unchanged. A store's ``recorder`` wraps the store in one
    when the run's config names a ``tensorboard_dir`` (``recording_store``)."""

    def __init__(self, store: Any, run_id: int, logdir: str):
        self._store = store
        self._run_id = int(run_id)
        self._logdir = str(logdir)
        run = store.get_run(run_id)
        self._layout = RunLayout.of(run.config if run else {})
        last = store.last_step(run_id) if run else -1
        # a resumed run goes on from its checkpoint: what the event files hold past it is redone
        self.log = TensorBoardLog(self._logdir, self._layout, purge_step=last + 1 if last >= 0 else None)
        # The store replaces a step's weights or genotype when written again (the start's and the
        # first architecture step's share step 0); event files only append. A step's record goes
        # out once the next step's arrives, or when the run ends.
        self._pending: dict[str, tuple[int, Callable[[], None]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def recorder(self, run_id: int, log_every: int = 10) -> Any:
        from core.runs.recorder import Recorder

        return Recorder(self, run_id, log_every)

    def add_steps(self, run_id: int, rows: Sequence[dict[str, Any]]) -> None:
        self._store.add_steps(run_id, rows)
        self.log.steps(rows)
        self.log.flush()  # live: TensorBoard shows a run as it goes

    def add_alphas(self, run_id: int, step: int, weights: dict[str, np.ndarray]) -> None:
        self._store.add_alphas(run_id, step, weights)
        kept = {k: np.array(v, copy=True) for k, v in weights.items()}
        self._hold("weights", int(step), lambda: self.log.weights(int(step), kept))

    def add_genotype(self, run_id: int, step: int, genotype_json: str, size: int | None) -> None:
        self._store.add_genotype(run_id, step, genotype_json, size)
        self._hold("genotype", int(step), lambda: self.log.genotype(int(step), genotype_json, size))

    def _hold(self, kind: str, step: int, write: Callable[[], None]) -> None:
        held = self._pending.get(kind)
        if held is not None and held[0] != step:
            held[1]()
        self._pending[kind] = (step, write)

    def add_event(self, run_id: int, kind: str, message: str, step: int | None = None,
                  data: dict[str, Any] | None = None) -> None:
        self._store.add_event(run_id, kind, message, step=step, data=data)
        self.log.events([{"kind": kind, "step": step, "data": data}])

    def add_events(self, run_id: int, events: Sequence[dict[str, Any]]) -> None:
        self._store.add_events(run_id, events)
        self.log.events(events)

    def update_run(self, run_id: int, **fields: Any) -> None:
        self._store.update_run(run_id, **fields)
        if fields.get("status") in FINAL_STATUSES:
            for _, write in self._pending.values():
                write()
            self._pending.clear()
            self.log.flush()


def run_logdir(root: str, run_id: int, name: str | None) -> str:
    """A run's folder under a TensorBoard log root: runs written to one root show side by side
    in ``tensorboard --logdir ROOT``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name or "").strip("-")[:60]
    return os.path.join(str(root), f"run-{int(run_id)}" + (f"-{slug}" if slug else ""))


def recording_store(store: Any, run_id: int) -> Any:
    """What a run's Recorder writes into: the store, teed to TensorBoard when the run's config
    names a ``tensorboard_dir``."""
    run = store.get_run(run_id)
    root = (run.config or {}).get("tensorboard_dir") if run is not None else None
    return TensorBoardTee(store, run_id, run_logdir(root, run_id, run.name)) if root else store


def events_of(store: Any, run_id: int) -> list[dict[str, Any]]:
    """A stored run's events as the dicts the Recorder writes."""
    df = store.events(run_id)
    return [{"kind": r.kind, "step": None if r.step is None or r.step != r.step else int(r.step),
             "data": json.loads(r.data) if isinstance(r.data, str) and r.data else r.data}
            for r in df.itertuples()]
