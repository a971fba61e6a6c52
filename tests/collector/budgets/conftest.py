"""Fixtures of the budgets tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tokenbook.collector.storage.store import Store


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.server)])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated store in an empty database: of the process's pool (embedded), or fresh on a ClickHouse
    server (`clickhouse_url`)."""
    if request.param == "embedded":
        with request.getfixturevalue("database_pool").store() as pooled:
            yield pooled
        return
    s = Store.open(request.getfixturevalue("clickhouse_url"), database=f"budgets_{uuid.uuid4().hex[:10]}")
    s.migrate()
    yield s
    s.command(f"DROP DATABASE IF EXISTS {s.database}")
    s.close()
