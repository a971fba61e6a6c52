"""`records.build`: named tuples built fast, and never with a field missing."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from tokenbook.collector.storage.ledger import CallRow
from tokenbook.genai.records import build
from tokenbook.genai.usage import Usage


class _Pair(NamedTuple):
    left: int
    right: str


def test_build_equals_the_named_tuple_constructor():
    assert build(_Pair, (1, "a")) == _Pair(1, "a")
    assert build(_Pair, (1, "a")).right == "a"
    assert type(build(Usage, (1, 2, 0, 0, 0, True, (), None))) is Usage


@pytest.mark.parametrize("values", [(1,), (1, "a", "extra")])
def test_a_value_missing_or_extra_is_refused(values):
    with pytest.raises(ValueError, match="_Pair has 2 fields"):
        build(_Pair, values)


def test_a_ledger_row_with_a_column_added_but_no_value_fails():
    """The row builders pass one value per `CallRow` field: one short of the fields is an error."""
    with pytest.raises(ValueError, match=f"CallRow has {len(CallRow._fields)} fields"):
        build(CallRow, (None,) * (len(CallRow._fields) - 1))
