"""Fixtures shared by every test package.

chDB allows one data directory per process: every test that needs the embedded store opens it in
`chdb_dir`, each with its own database (`Store.open(data_dir=chdb_dir, database="<unique>")`), and
runs anything that needs another directory in a subprocess.
"""

from __future__ import annotations

import _posixsubprocess
import os
import subprocess
from pathlib import Path
from typing import NoReturn

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


@pytest.fixture(autouse=True)
def _a_test_that_starts_a_process_is_e2e(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep `pytest -m "not e2e"` free of processes: starting one there fails the test, naming the marker."""
    if request.node.get_closest_marker("e2e") is not None:
        return

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError(f"{request.node.nodeid} starts a process: mark it `pytest.mark.e2e`")

    monkeypatch.setattr(subprocess, "_fork_exec", refuse)
    monkeypatch.setattr(subprocess, "_USE_POSIX_SPAWN", False)
    monkeypatch.setattr(_posixsubprocess, "fork_exec", refuse)
    monkeypatch.setattr(os, "fork", refuse)
