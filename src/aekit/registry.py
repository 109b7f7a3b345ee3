"""Name → part registries.

Every swappable part of an autoencoder (architecture, code, penalty, corruption), every
preset and every CLI command is registered under a stable name. The CLI, configs and the
contract tests read these registries; nothing dispatches on names with ``if`` chains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from aekit.errors import AekitError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dictionary of named parts with a decorator to fill it and a clear error on misses."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            doc = help or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            self._help[name] = doc
            return obj

        return deco

    def add(self, name: str, obj: T, help: str = "") -> T:
        return self.register(name, help)(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise AekitError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Look a part up and call it (a class or factory) with the given arguments."""
        factory = self.get(name)
        try:
            return factory(*args, **kwargs)  # type: ignore[operator]
        except (TypeError, ValueError) as e:  # an unknown option, or a value of the wrong kind
            raise AekitError(f"bad options for {self.kind} {name!r}: {e}") from None

    def help(self, name: str) -> str:
        return self._help.get(name, "")

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
