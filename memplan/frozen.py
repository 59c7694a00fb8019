"""Clear errors for assignments to memplan's frozen value classes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import TypeVar

_T = TypeVar("_T")


def refuse_assignment(hint: str) -> Callable[[type[_T]], type[_T]]:
    """Class decorator (above ``@dataclass(frozen=True, slots=True)``): any assignment or
    deletion raises :class:`~dataclasses.FrozenInstanceError` ending in ``hint``.

    Python 3.11's frozen, slotted dataclass raises it only for a field's name: for any
    other name (``problem.capacity_bytes = 5``, a property) its ``__setattr__`` calls
    ``super()`` with the class as it was before slots were added and fails with
    ``TypeError: super(type, obj): obj must be an instance or subtype of type``.
    """

    def decorate(cls: type[_T]) -> type[_T]:
        noun = cls.__name__
        article = "an" if noun[:1] in "AEIOU" else "a"

        def __setattr__(self: object, name: str, value: object) -> None:
            raise FrozenInstanceError(
                f"cannot assign to {noun}.{name}: {article} {noun} is frozen; {hint}"
            )

        def __delattr__(self: object, name: str) -> None:
            raise FrozenInstanceError(
                f"cannot delete {noun}.{name}: {article} {noun} is frozen; {hint}"
            )

        # setattr: a class body may not define them beside frozen=True.
        setattr(cls, "__setattr__", __setattr__)  # noqa: B010
        setattr(cls, "__delattr__", __delattr__)  # noqa: B010
        return cls

    return decorate
