"""A tiny named registry: one per family (activations, schedules, regularizers, presets).

Register, then create (timm's habit): ``register`` decorates a class or factory, ``names``
lists them, ``create`` builds one, and an unknown name raises an error listing the valid ones.

Parts built from a run's ``SearchConfig`` (activations, schedules, regularizers) declare the
config fields they read on their own class, as ``config_fields``: a mapping from constructor
keyword to ``SearchConfig`` field name, e.g. ``{"period": "period", "tau": "gumbel_tau"}``.
``create_from_config(name, config, **extra)`` reads exactly those fields and adds ``extra``
(what the config does not hold, such as a regularizer's op list). So the search never lists a
part's settings, and a new part is one class with its ``config_fields`` and one registration.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, Mapping, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    def __init__(self, family: str, name: str, valid: list[str]):
        self.family, self.name, self.valid = family, name, valid
        super().__init__(f"unknown {family} {name!r}; valid: {', '.join(valid)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class Registry(Generic[T]):
    def __init__(self, family: str):
        self.family = family
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self._items[name] = obj
            return obj

        return deco

    def names(self) -> list[str]:
        return list(self._items)

    def get(self, name: str) -> T:
        if name not in self._items:
            raise UnknownNameError(self.family, name, self.names())
        return self._items[name]

    def create(self, name: str, **kw: Any) -> Any:
        return self.get(name)(**kw)  # type: ignore[operator]

    def config_kwargs(self, name: str, config: Any) -> dict[str, Any]:
        """The constructor keywords the registered ``name`` reads from ``config``: its class's
        ``config_fields`` (keyword -> config field name) looked up on the config."""
        fields: Mapping[str, str] = getattr(self.get(name), "config_fields", {})
        return {kw: getattr(config, field) for kw, field in fields.items()}

    def create_from_config(self, name: str, config: Any, **extra: Any) -> Any:
        """Builds ``name`` from the fields of ``config`` it declares, plus ``extra`` (what no
        config field holds). A keyword given both ways is an error, not a silent override."""
        kw = self.config_kwargs(name, config)
        both = sorted(set(kw) & set(extra))
        if both:
            raise TypeError(f"{self.family} {name!r} reads {', '.join(both)} from the config; "
                            "do not pass it as well")
        return self.get(name)(**kw, **extra)  # type: ignore[operator]
