"""Lists of strings and of integers are bound as clickhouse-connect would bind them, and read back
unchanged (`storage.binding`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from clickhouse_connect.driver.binding import bind_query, format_bind_value
from hypothesis import given
from hypothesis import strategies as st

from tests.stores import DatabasePool
from tokenbook.collector.storage.binding import array_text, bound
from tokenbook.collector.storage.store import Store

# Any text a span can carry into an ID or a name: quotes, backslashes, control characters, NUL,
# every plane (not lone surrogates, which no UTF-8 request holds).
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_LISTS = st.lists(_TEXT, min_size=1, max_size=20) | st.lists(
    st.integers(-(2**70), 2**70), min_size=1, max_size=20
)
_HOSTILE = ["", "'", "\\", "\\'", "a'b", "'); DROP TABLE x; --", "tab\there", "line\nbreak", "nul\0"]
_HOSTILE += ["`q`", "é✓🙂", "\r\f\b"]


@given(_LISTS)
def test_a_list_of_strings_or_integers_is_the_text_the_library_would_bind(values: list[Any]) -> None:
    assert str(array_text(values)) == format_bind_value(values)
    query = "SELECT {a:Array(String)}, {n:UInt64}"
    assert bind_query(query, bound({"a": values, "n": 3})) == bind_query(query, {"a": values, "n": 3})


def test_other_values_go_as_they_were() -> None:
    parameters: dict[str, Any] = {"bools": [True, 1], "mixed": ["a", 1], "none": [], "t": ("a",)}
    parameters |= {"s": "a", "w": object()}
    assert bound(parameters) == parameters
    assert bound(None) == {}


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.server)])
def store(request: pytest.FixtureRequest, database_pool: DatabasePool) -> Iterator[Store]:
    if request.param == "embedded":
        with database_pool.store() as s:
            yield s
        return
    url = request.getfixturevalue("clickhouse_url")
    with Store.open(url=url, database=f"t_{uuid.uuid4().hex[:12]}") as s:
        yield s


def test_the_engine_reads_back_every_value(store: Store) -> None:
    values = [*_HOSTILE, uuid.uuid4().hex]
    numbers = [0, 7, 2**64 - 1]
    _, _, rows = store.query(
        "SELECT {a:Array(String)}, has({a:Array(String)}, {one:String}), {n:Array(UInt64)}",
        {"a": values, "one": "a'b", "n": numbers},
    )
    assert rows == [(values, 1, numbers)]
