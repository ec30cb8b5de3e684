"""When an architecture step runs: a fixed period (DARTS) or the informed schedule (DARTS-PRIME).

The informed schedule watches FI, the squared gradient norm of the network weights after each
weight step, and runs an architecture step when its moving average falls below a threshold that
grows while it waits and shrinks when it steps (docs/algorithms.md "Schedules"). At equilibrium it
steps once every period+1 iterations.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

from core.registry import Registry

SCHEDULES: Registry[type["Schedule"]] = Registry("schedule")
register_schedule = SCHEDULES.register


def list_schedules() -> list[str]:
    return SCHEDULES.names()


class Schedule:
    """``should_step()`` at the start of each iteration, ``observe(fi)`` after the weight step."""

    name = "base"
    period: int = 1
    needs_fi = False  # whether the loop must read FI on the host every iteration
    # Constructor keyword -> SearchConfig field, read by SCHEDULES.create_from_config.
    config_fields: ClassVar[dict[str, str]] = {}

    def should_step(self) -> bool:
        raise NotImplementedError

    def observe(self, fi: float) -> None:
        pass

    # Plotted per iteration; None where the schedule has no such quantity.
    @property
    def fi_ewma(self) -> float | None:
        return None

    @property
    def threshold(self) -> float | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@register_schedule("fixed")
class FixedSchedule(Schedule):
    """An architecture step every ``period`` iterations, starting with the first."""

    name = "fixed"
    config_fields = {"period": "period"}

    def __init__(self, period: int = 1):
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = int(period)
        self._iteration = 0

    def should_step(self) -> bool:
        step = self._iteration % self.period == 0
        self._iteration += 1
        return step

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self._iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._iteration = int(state["iteration"])


@register_schedule("informed")
class InformedSchedule(Schedule):
    """DARTS-PRIME's dynamic schedule.

    ``seed_threshold`` (not in the paper) sets the threshold to the first FI, so short runs step
    from the start instead of waiting ~ln(FI_0/init_threshold)/ln(multiplier) iterations.
    """

    name = "informed"
    needs_fi = True
    config_fields = {"period": "period", "multiplier": "multiplier", "ewma": "ewma",
                     "init_threshold": "init_threshold", "seed_threshold": "seed_threshold"}

    def __init__(self, period: int = 10, multiplier: float = 1.05, ewma: float = 0.2,
                 init_threshold: float = 1.0, seed_threshold: bool = False):
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        if multiplier <= 1.0:
            raise ValueError(f"multiplier must be > 1, got {multiplier}")
        if not 0.0 < ewma <= 1.0:
            raise ValueError(f"ewma must be in (0, 1], got {ewma}")
        self.period = int(period)
        self.multiplier = float(multiplier)
        self.ewma = float(ewma)
        self._threshold = float(init_threshold)
        self.seed_threshold = bool(seed_threshold)
        self._fi_ewma: float | None = None
        self._step_factor = self.multiplier ** (-self.period)

    def should_step(self) -> bool:
        f = self._fi_ewma
        if f is not None and 0.0 < f < self._threshold:
            self._threshold *= self._step_factor
            return True
        self._threshold *= self.multiplier
        return False

    def observe(self, fi: float) -> None:
        fi = float(fi)
        if not math.isfinite(fi):
            return  # the NaN guard reports it; the average stays usable
        if self._fi_ewma is None:
            self._fi_ewma = fi
            if self.seed_threshold:
                self._threshold = fi
        else:
            self._fi_ewma = self.ewma * fi + (1.0 - self.ewma) * self._fi_ewma

    @property
    def fi_ewma(self) -> float | None:
        return self._fi_ewma

    @property
    def threshold(self) -> float | None:
        return self._threshold

    def state_dict(self) -> dict[str, Any]:
        return {"threshold": self._threshold,
                "fi_ewma": -1.0 if self._fi_ewma is None else self._fi_ewma}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._threshold = float(state["threshold"])
        f = float(state["fi_ewma"])
        self._fi_ewma = None if f < 0 else f


def train_fraction(split: str, period: int) -> float:
    """Share of the training set used for weight steps.

    "matched": k : 1 between weight data and architecture data for a period k
    (1 - 1/(1+k)); "half": DARTS's 50/50.
    """
    if split == "matched":
        return 1.0 - 1.0 / (1.0 + period)
    if split == "half":
        return 0.5
    raise ValueError(f"split must be 'half' or 'matched', got {split!r}")
