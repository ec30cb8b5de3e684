"""A tiny named registry: one per family (activations, schedules, regularizers, presets).

Register, then create (timm's habit): ``register`` decorates a class or factory, ``names``
lists them, ``create`` builds one, and an unknown name raises an error listing the valid ones.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

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
