"""Builders by name, registered where they are defined with a decorator (timm's ``register_model``).

A :class:`Registry` maps a name to a builder and a few facts about it (``meta``). The module that
owns the registry passes ``discover``, which imports the modules that register, so a lookup never
misses a builder whose module nobody has imported yet. Attention kinds, vision models and embedding
methods use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nlp182.errors import InvalidInputError

Builder = Callable[..., Any]


@dataclass(frozen=True)
class Entry:
    """One registered builder: its name, the callable, and facts such as a task or a size rule."""

    name: str
    builder: Builder
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Names -> builders of one kind of thing (``what``, used in error messages)."""

    def __init__(self, what: str, discover: Callable[[], None]) -> None:
        self.what = what
        self.discover = discover
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Builder], Builder]:
        """Decorator: register the builder under ``name`` with ``meta``; the builder is returned as is."""

        def decorate(builder: Builder) -> Builder:
            known = self._entries.get(name)
            if known is not None and known.builder is not builder:
                raise InvalidInputError(f"{self.what} {name!r} is registered twice")
            self._entries[name] = Entry(name, builder, meta)
            return builder

        return decorate

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a test that registers a throwaway builder removes it with this)."""
        self._entries.pop(name, None)

    def names(self, **meta: Any) -> tuple[str, ...]:
        """Registered names whose meta has the given values, in registration order."""
        self.discover()
        return tuple(n for n, e in self._entries.items() if all(e.meta.get(k) == v for k, v in meta.items()))

    def entry(self, name: str) -> Entry:
        """The entry of ``name``; an unknown name is an error that lists the known ones."""
        names = self.names()
        if name not in names:
            raise InvalidInputError(f"unknown {self.what} {name!r}; use one of {', '.join(names)}")
        return self._entries[name]
