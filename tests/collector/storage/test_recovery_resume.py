"""Recovery after a restart, a slice at a time: each call with the recovery's `since` resumes it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.cli.seed_store import base_time, make_calls
from tests.stores import DatabasePool
from tokenbook.collector.storage.store import Store


@pytest.fixture
def store(database_pool: DatabasePool) -> Iterator[Store]:
    """A migrated embedded store in a fresh database."""
    with database_pool.store() as s:
        yield s


def test_recovery_called_again_with_its_since_resumes_and_finishes(store: Store) -> None:
    """The collector recovers with `refresh_aggregates(since=..., slices=1)` in a loop, passing the
    same `since` each time: each call takes the next slice, and the recovery finishes (it used to go
    back to `since` on every call and recompute the first slice forever)."""
    base = base_time()
    calls = [
        c._replace(ingested_at=base + timedelta(seconds=i)) for i, c in enumerate(make_calls(60, base=base))
    ]
    store.write(calls, [])
    store.refresh_aggregates()
    store.recover_rows = 10
    since = base - timedelta(seconds=1)
    for _ in range(len(calls) // store.recover_rows + 2):
        store.refresh_aggregates(since=since, slices=1, hourly=False)
        if not store.recovering:
            break
    assert not store.recovering
