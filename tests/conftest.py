"""Fixtures shared by every test package.

chDB allows one data directory per process: every test that needs the embedded store opens it in
`chdb_dir`, each with its own database, and runs anything that needs another directory in a
subprocess. A test that needs a migrated, empty database takes one from the process's pool
(`migrated_store`, or `migrated_database` to open it itself; `tests/stores.py`); tests of the
migrations create fresh ones (`Store.open(data_dir=chdb_dir, database="<unique>")`).
"""

from __future__ import annotations

import _posixsubprocess
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
from _pytest.mark.expression import Expression

# Cache the compiled test and workspace modules (__pycache__/, ignored by git) even where the
# environment says not to (PYTHONDONTWRITEBYTECODE, as `make` does): else every run and every
# pytest-xdist worker rewrites and compiles them again (~2.5 s of CPU per process).
sys.dont_write_bytecode = False

# The engine's allocator keeps freed pages for its own 5 s here, not the collector's default of none
# (`storage.clickhouse.engine.dirty_decay`: memory under load for more CPU): the tests' results do not
# depend on it, and handing pages back at once costs the suite ~4 s of system CPU. Processes the tests
# start inherit it; `tests/collector/storage/test_engine.py` checks the default in a clean environment.
os.environ.setdefault("JE_MALLOC_CONF", "dirty_decay_ms:5000")

from tests.stores import DatabasePool  # noqa: E402

if TYPE_CHECKING:
    from tokenbook.collector.storage.store import Store


# The engine writes and deletes many small files (a part is a file per column): in memory (tmpfs) they
# cost a fraction of the time on disk under load. Used only with room to spare: a test process's
# directory grows to tens of MB, and a container's /dev/shm may be as small as 64 MB.
_MEMORY_DIR = Path("/dev/shm")
_MEMORY_ROOM = 1 << 30
_MEMORY_PREFIX = "tokenbook-tests-chdb-"  # then the test process's ID


def _remove_abandoned_memory_dirs() -> None:
    """Remove the directories of test processes that ended without removing theirs (killed)."""
    for path in _MEMORY_DIR.glob(f"{_MEMORY_PREFIX}*"):
        pid = path.name.removeprefix(_MEMORY_PREFIX).split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The one embedded ClickHouse directory of this test process: in /dev/shm when it has 1 GiB free
    (removed at the end of the session, or by the next session if this one is killed), else under
    pytest's temporary directory."""
    try:
        usage = shutil.disk_usage(_MEMORY_DIR)
    except OSError:
        usage = None
    if usage is None or usage.free < _MEMORY_ROOM or not os.access(_MEMORY_DIR, os.W_OK):
        yield tmp_path_factory.mktemp("chdb")
        return
    _remove_abandoned_memory_dirs()
    path = Path(tempfile.mkdtemp(prefix=f"{_MEMORY_PREFIX}{os.getpid()}-", dir=_MEMORY_DIR))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_pool(chdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabasePool]:
    """Migrated, empty databases in `chdb_dir`, reused across this process's tests (`tests/stores.py`).
    The pytest-xdist workers of a run migrate one template between them (in the run's temporary
    directory, above each worker's own)."""
    shared = None
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "database-pool"
    pool = DatabasePool(chdb_dir, shared)
    yield pool
    pool.close()


@pytest.fixture
def engine_free(database_pool: DatabasePool) -> None:
    """For a test whose code opens an embedded store in a directory of its own: chDB opens one
    directory per process, so the pool's connection to `chdb_dir` is closed first."""
    database_pool.close()


@pytest.fixture
def migrated_database(database_pool: DatabasePool) -> Iterator[str]:
    """The name of a migrated, empty database of the pool in `chdb_dir`, for a test that opens it
    itself (e.g. again after a simulated restart); given back after the test."""
    with database_pool.database() as name:
        yield name


@pytest.fixture
def migrated_store(database_pool: DatabasePool) -> Iterator[Store]:
    """A `Store` on a migrated, empty embedded database of the pool; given back after the test."""
    with database_pool.store() as store:
        yield store


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--all-orders`: run every arrival order of `tests/conformance/test_order.py` (`make test` does)."""
    parser.addoption(
        "--all-orders",
        action="store_true",
        default=os.environ.get("TOKENBOOK_ALL_ORDERS") == "1",
        help="run every arrival order of the conformance scenarios, not the covering set "
        "(also: TOKENBOOK_ALL_ORDERS=1)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Register the Hypothesis profiles before ``--hypothesis-profile`` loads one (else they are
    registered by the first module that uses Hypothesis: importing it takes a second or two)."""
    if config.getoption("hypothesis_profile", None) is not None:
        import tests.hypothesis_profiles  # noqa: F401


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the default, `addopts` in pyproject.toml): one worker more than there are cores
    for a run of in-process tests (``-m "not e2e"``). The in-process tests wait now and then (on the
    engine's threads, a loopback server, a claim's deadline), and a third worker fills those waits: on
    2 cores, 3 workers finish the in-process tests in ~0.87 of the time 2 take, 4 in ~0.96.

    No workers (one process, as ``-n 0``) when the run may hold e2e tests (they start collectors on
    fixed ports and wait on clocks: one at a time) or names single tests (``file.py::test``), where
    starting workers costs more than it saves."""
    if not _excludes_e2e(config.getoption("markexpr", "") or ""):
        return 0
    if config.args and all("::" in arg for arg in config.args):
        return 0
    return (os.cpu_count() or 1) + 1


def _excludes_e2e(markexpr: str) -> bool:
    """Whether ``-m markexpr`` leaves out every test marked `e2e` (whatever its other marks)."""
    if not markexpr.strip():
        return False
    expression = Expression.compile(markexpr)
    # an e2e test may carry any other mark: it is left out only if no combination of them selects it
    others = {name for name in _mark_names(markexpr) if name != "e2e"}
    for k in range(1 << len(others)):
        marks = {"e2e"} | {name for i, name in enumerate(sorted(others)) if k >> i & 1}
        if _selects(expression, frozenset(marks)):
            return False
    return True


def _selects(expression: Expression, marks: frozenset[str]) -> bool:
    """Whether `expression` selects a test carrying exactly `marks`."""
    return expression.evaluate(lambda name, /, **kwargs: name in marks)


def _mark_names(markexpr: str) -> set[str]:
    """The identifiers of a mark expression (its words but the operators)."""
    return set(re.findall(r"[\w.+:-]+", markexpr)) - {"and", "or", "not"}


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
