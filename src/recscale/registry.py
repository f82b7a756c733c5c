"""Name -> object registries, so choices are data (``backbone: hstu``) not if-chains."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from recscale.errors import RecscaleError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of builders; unknown names raise a user error listing the known."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise RecscaleError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def check(self, name: str, word: str = "allowed") -> str:
        """``name`` when registered, else a ``ValueError`` listing the names (for a config
        validator, which turns it into an error naming the key)."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind}; {word}: {', '.join(self.names())}")
        return name

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
