"""Name -> builder maps, one per kind of variant, so that a new variant is one class plus one registration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

B = TypeVar("B")


class Registry(dict[str, B], Generic[B]):
    """The variants of one kind (norm, shortcut, scale, merge, activation, stack design, model, ...) by name.

    Models and tasks validate their options against these maps, so a variant registered from user code is
    usable everywhere by its name, e.g. `MERGES.register("mean", lambda slot: Mean())`.

    Args:
        kind: the option's name, used in error messages ("merge", "norm", ...).
        builders: the initial entries.
        home: where the registry lives, for the message that says how to add an entry.
    """

    def __init__(self, kind: str, builders: dict[str, B] | None = None, home: str | None = None) -> None:
        super().__init__(builders or {})
        self.kind = kind
        self.home = home or f"residual_kit.{kind.upper()}S"

    def register(self, name: str, builder: B | None = None, *, replace: bool = False) -> Callable:
        """Add `builder` under `name`; usable as a decorator. Refuses to overwrite unless `replace`."""

        def add(fn: B) -> B:
            if name in self and not replace:
                raise ValueError(f"{self.kind}={name!r} is already registered: pick another name or pass replace=True")
            self[name] = fn
            return fn

        return add if builder is None else add(builder)

    def get_builder(self, name: str) -> B:
        """The entry of `name`, or a ValueError that lists the registered names."""
        if name not in self:
            raise ValueError(
                f"{self.kind}={name!r} is not one of {sorted(self)}; register a new one with "
                f"{self.home}.register(name, ...)"
            )
        return self[name]

    def check(self, name: object, *, allow_none: bool = False) -> None:
        """Raise the same ValueError as `get_builder` for a name that is not registered."""
        if name is None and allow_none:
            return
        self.get_builder(name)  # type: ignore[arg-type]


__all__ = ["Registry"]
