"""Fixtures of the budgets tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenbook.collector.storage.store import Store


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.server)])
def store(request: pytest.FixtureRequest, chdb_dir: Path) -> Iterator[Store]:
    """A migrated store in a fresh database: embedded, or on a ClickHouse server (`clickhouse_url`)."""
    database = f"budgets_{uuid.uuid4().hex[:10]}"
    if request.param == "server":
        s = Store.open(request.getfixturevalue("clickhouse_url"), database=database)
    else:
        s = Store.open(data_dir=chdb_dir, database=database)
    s.migrate()
    yield s
    s.command(f"DROP DATABASE IF EXISTS {s.database}")
    s.close()
