"""A minimal observer, so the GUI-free workspace can announce changes and any view (a Qt
dock, a test, a script) can follow them without the core importing Qt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Event:
    """Callbacks run in connection order, on the thread that emits."""

    def __init__(self, name: str):
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, fn: Callable[..., Any]) -> None:
        if fn not in self._callbacks:
            self._callbacks.append(fn)

    def disconnect(self, fn: Callable[..., Any]) -> None:
        if fn in self._callbacks:
            self._callbacks.remove(fn)

    def emit(self, *args: Any) -> None:
        for fn in list(self._callbacks):
            fn(*args)

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {len(self._callbacks)} listeners)"
