"""Fixtures shared by every test package.

chDB allows one data directory per process: every test that needs the embedded store opens it in
`chdb_dir`, each with its own database (`Store.open(data_dir=chdb_dir, database="<unique>")`), and
runs anything that needs another directory in a subprocess.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one embedded ClickHouse directory of this test process."""
    return tmp_path_factory.mktemp("chdb")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A server-mode test starts the HTTP test server (a process): it is an e2e test too."""
    for item in items:
        if item.get_closest_marker("server") is not None:
            item.add_marker(pytest.mark.e2e)


# A ClickHouse server for server-mode tests: $TOKENBOOK_TEST_CLICKHOUSE_URL, else the HTTP test server
# (tests/clickhouse_http: ClickHouse's HTTP interface in front of the real engine) in a child process.
from tests.clickhouse_http.fixture import clickhouse_url  # noqa: E402, F401
