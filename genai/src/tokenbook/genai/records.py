"""Building named tuples on hot paths: one helper, checked, for every record type.

A named tuple's own ``__new__`` is Python code that binds each field by keyword: for the collector's
38-field ledger row it is a third of the cost of building the row. `build` makes the tuple directly
with ``tuple.__new__``, after one cheap check that every field has a value, so a field added to a
record without its value fails loudly instead of shifting the columns that follow it.

`unchecked` is the same construction without the check, for the loops that build one record per span
in the decoder, where the check's call would triple the cost: each of its uses has a test that the
records it makes have every field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, TypeVar

__all__ = ["build", "unchecked"]

R = TypeVar("R", bound=tuple[Any, ...])
_new: Final = tuple.__new__
#: ``unchecked(cls, values)``: `build` without its check (see the module docstring)
unchecked: Final = tuple.__new__


def build(cls: type[R], values: Sequence[Any]) -> R:
    """``cls(*values)`` for a named tuple `cls`, without its ``__new__``; `values` in field order.

    Raises ValueError when `values` does not hold exactly one value per field.
    """
    fields: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]
    if len(values) != len(fields):
        raise ValueError(f"{cls.__name__} has {len(fields)} fields, got {len(values)} values")
    record: R = _new(cls, values)
    return record
