"""The store's connections on the real engine: user queries, the refresh and the writer never wait
for one another, and user queries can be cancelled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from tests.cli.seed_store import make_calls
from tests.stores import DatabasePool
from tokenbook.collector.storage.decisions import DecisionChange
from tokenbook.collector.storage.guard import QueryLimits
from tokenbook.collector.storage.store import Store, StoreError

#: A query the guard allows that reads almost nothing, so only its time limit (or a cancel) ends it.
LONG_QUERY = (
    "SELECT count() FROM numbers(100000) AS a, numbers(100000) AS b"
    " WHERE cityHash64(a.number, b.number) % 7 = 3"
)
# The user queries on the engine: their text starts with the store's marker comment. The guard's own
# parse of a query (``parseQueryToJSON``) holds the same text while the query is still being checked,
# so matching the text alone counted a query that had not reached the engine yet.
RUNNING = (
    "SELECT count() FROM system.processes"
    " WHERE startsWith(query, '/* ') AND position(query, 'cityHash64(a.number') > 0"
    " AND position(query, 'system.processes') = 0"
)


@pytest.fixture
def store(database_pool: DatabasePool) -> Iterator[Store]:
    """A migrated embedded store in a fresh database."""
    with database_pool.store() as s:
        yield s


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


class UserQuery(threading.Thread):
    """`LONG_QUERY` through `Store.query_readonly` (at most 120 s), on a thread; keeps its error."""

    def __init__(self, store: Store) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.store.query_readonly(LONG_QUERY, limits=QueryLimits(timeout_s=120, max_threads=1))
        except BaseException as exc:
            self.error = exc


def test_user_queries_run_side_by_side_and_the_ledger_goes_on(store: Store) -> None:
    queries = [UserQuery(store), UserQuery(store)]
    for q in queries:
        q.start()
    wait_until(lambda: store.query(RUNNING)[2][0][0] == 2)  # both at once, neither queued
    calls = make_calls(30)
    store.write(calls, [])
    assert store.query("SELECT count() FROM v_calls")[2] == [(30,)]
    assert store.refresh_aggregates(hourly=False) > 0
    assert store.query("SELECT sum(calls) FROM v_context_costs")[2] == [(30,)]
    assert all(q.is_alive() for q in queries)  # all of it while the user queries ran
    assert store.cancel_user_queries() == 2
    for q in queries:
        q.join(60)
        assert not q.is_alive()
        assert isinstance(q.error, StoreError)
        assert "QUERY_WAS_CANCELLED" in str(q.error) or "cancelled" in str(q.error)
    assert store.query_readonly("SELECT count() FROM llm_calls")[2] == [(30,)]


def test_a_write_completes_while_a_refresh_is_in_progress(store: Store) -> None:
    """The refresh holds the store's lock only to take its keys: a write in the middle of its decision
    pass goes through at once (it used to wait for the whole refresh)."""
    first, late = make_calls(2), make_calls(40, seed=3)[20:]
    outer = first[0]._replace(
        span_id="f" * 16, scope_name="opentelemetry.instrumentation.openai", trace_id="e" * 32
    )  # the same call recorded by a second layer: the decision pass re-decides it
    written = threading.Event()

    def write_late() -> None:
        store.write(late, [])
        written.set()

    def on_decisions(changes: Sequence[DecisionChange]) -> None:
        writer = threading.Thread(target=write_late, daemon=True)
        writer.start()
        writer.join(60)

    store.on_decisions = on_decisions
    store.write([*first, outer], [])
    store.refresh_aggregates(hourly=False)
    assert written.is_set()
    store.refresh_aggregates(hourly=False)
    assert store.query("SELECT count() FROM llm_calls FINAL")[2] == [(23,)]
    assert store.query("SELECT count() FROM v_calls")[2] == [(22,)]  # one layer of the call is not billed
    assert store.query("SELECT sum(calls) FROM v_context_costs")[2] == [(22,)]
