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
