"""Fixtures shared by every test package.

chDB allows one data directory per process: every test that needs the embedded store opens it in
`chdb_dir`, each with its own database, and runs anything that needs another directory in a
subprocess. A test that needs a migrated, empty database takes one from the process's pool
(`migrated_store`, or `migrated_database` to open it itself; `tests/stores.py`); tests of the
migrations create fresh ones (`Store.open(data_dir=chdb_dir, database="<unique>")`).
"""

from __future__ import annotations

import _posixsubprocess
import gc
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from _pytest.mark.expression import Expression

# Cache the compiled test and workspace modules (__pycache__/, ignored by git) even where the
# environment says not to (PYTHONDONTWRITEBYTECODE, as `make` does): else every run and every
# pytest-xdist worker rewrites and compiles them again (~2.5 s of CPU per process).
sys.dont_write_bytecode = False

# The cyclic garbage collector runs every 20,000 net allocations rather than 700, and what exists once
# the tests are collected (the modules, the test items, the fixtures' definitions) is moved out of its
# scans (`pytest_collection_finish`): the tests allocate millions of objects (Hypothesis' examples,
# rows, parse trees) and each scan walks every tracked object of its generations, ~1.5 s of CPU per
# process at the default thresholds. Unreachable cycles are still collected, later; no test depends on
# when.
gc.set_threshold(20_000, 20, 20)

# The suite's temporary files (pytest's `tmp_path`, `tempfile`, the engine's directory, the write-ahead
# logs) go to memory when /dev/shm is a tmpfs with room to spare: the engine writes and deletes many
# small files (a part is a file per column) and the logs sync theirs, which costs system time and waits
# on a disk. A container's /dev/shm may be as small as 64 MiB: then, or when TMPDIR is set, the default.
_MEMORY_DIR = Path("/dev/shm")
_MEMORY_ROOM = 2 << 30


def _memory_temp_root() -> Path | None:
    """This user's folder in /dev/shm for the suite's temporary files, when TMPDIR is not set and
    /dev/shm has 2 GiB free; else None. Set as TMPDIR by the first test process (the pytest-xdist
    controller): its workers and every process a test starts inherit it."""
    if os.environ.get("TMPDIR"):
        return None
    root = _MEMORY_DIR / f"tokenbook-tests-{os.getuid()}"
    try:
        if shutil.disk_usage(_MEMORY_DIR).free < _MEMORY_ROOM:
            return None
        root.mkdir(mode=0o700, exist_ok=True)
        status = root.lstat()
    except OSError:
        return None
    # /dev/shm is shared by every user: only a real folder of ours that no one else may write
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        return None
    return root


_TEMP_ROOT = _memory_temp_root()
if _TEMP_ROOT is not None:
    os.environ["TMPDIR"] = str(_TEMP_ROOT)
    tempfile.tempdir = None  # pytest's output capture has asked already: read TMPDIR again

from tests.stores import DatabasePool  # noqa: E402

if TYPE_CHECKING:
    from tokenbook.collector.storage.store import Store


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The one embedded ClickHouse directory of this test process, under pytest's temporary directory
    (in memory when the suite's temporary root is: `_memory_temp_root`); removed at the end of the
    session."""
    path = tmp_path_factory.mktemp("chdb")
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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move every object alive once the tests are collected out of the garbage collector's scans
    (``gc.freeze``): they live as long as the run, and each collection would walk them again."""
    gc.collect()
    gc.freeze()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the default, `addopts` in pyproject.toml): one worker more than there are cores
    for a run of in-process tests (``-m "not e2e"``). The in-process tests wait now and then (on the
    engine's threads, a loopback server, a claim's deadline), and a third worker fills those waits: on
    2 cores, 3 workers finish the in-process tests in ~0.87 of the time 2 take, 4 in ~0.96.

    As many workers as cores when the run may hold e2e tests: each keeps a core busy with the
    processes it starts (a collector, its decoder and build workers), and they are sent a module at a
    time (`tests/scheduling.py`). No workers (one process, as ``-n 0``) for a run that names single
    tests (``file.py::test``), where starting workers costs more than it saves."""
    if config.args and all("::" in arg for arg in config.args):
        return 0
    cores = os.cpu_count() or 1
    return cores + 1 if _excludes_e2e(config.getoption("markexpr", "") or "") else cores


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's default distribution (``load``), but the tests of a module that builds a store in
    a module-scoped fixture all on one worker, which builds it once, and in a run that may hold e2e
    tests every module's (`tests/scheduling.py`). Another ``--dist`` is left as it is."""
    if config.getvalue("dist") != "load":
        return None
    from tests.scheduling import ModuleGroups

    whole_modules = not _excludes_e2e(config.getoption("markexpr", "") or "")
    return ModuleGroups(config, log, whole_modules=whole_modules)


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
    """A server-mode test, or any test that asks for `clickhouse_url`, starts the HTTP test server (a
    process, from a session fixture, before `_a_test_that_starts_a_process_is_e2e` could see it): it is an
    e2e test too."""
    for item in items:
        if item.get_closest_marker("server") is not None or "clickhouse_url" in getattr(
            item, "fixturenames", ()
        ):
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
