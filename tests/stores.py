"""Migrated databases for the tests, from a pool per test process.

Migrating a fresh database costs the whole schema's DDL (about a second, several under load), while
emptying one costs a `TRUNCATE` per table holding rows. `DatabasePool` hands out migrated, empty
databases in the process's one chDB directory (`chdb_dir`) and takes them back when a test is done:
it truncates the tables holding rows (never `schema_migrations`), or drops the database when the
test changed its schema, left row policies on it, left more parts than truncating is worth, or when
rows appear in it after its truncation, so that the next test gets what a fresh migration would give
it. A test that leaves global objects in the engine (functions, users, roles, profiles, quotas,
named collections) fails. Tests of the migrations themselves create real fresh databases instead.

Fixtures (`tests/conftest.py`): `database_pool` (the process's pool), `migrated_store` (a `Store`
on a pooled database, closed and given back after the test), `migrated_database` (a pooled
database's name, for a test that opens it itself), `engine_free` (closes the pool's connection, for
a test whose code opens an embedded store in another directory)."""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from tokenbook.collector.storage.store import Store

__all__ = ["DatabasePool", "Fingerprint"]

_BOOKKEEPING = "schema_migrations"  # the applied migrations: kept, as a fresh migration leaves it
_METADATA = "metadata"  # the engine's folder of each database's table definitions
_PARTS = (
    "SELECT table, count() FROM system.parts"
    " WHERE database = {db:String} AND active AND table != {keep:String} GROUP BY table"
)
# Truncating costs about as much per part as migrating costs in all past this many parts (a backfill
# over years of monthly partitions): such a database is dropped (at once: the engine deletes its
# files later) and the next test gets a freshly migrated one.
_MAX_PARTS = 50
_POLICIES = "SELECT count() FROM system.row_policies WHERE database = {db:String}"
# What no database of the pool may change for the others: the engine's global objects. SQL
# user-defined functions are the files `function_<name>.sql` in the engine's `user_defined/` directory
# (asking `system.functions` lists every one of the engine's ~1,900 functions: ~70 ms after each test).
_FUNCTIONS = "user_defined"
_GLOBALS = (
    "SELECT name FROM system.roles ORDER BY name",
    "SELECT name FROM system.users ORDER BY name",
    "SELECT name FROM system.settings_profiles ORDER BY name",
    "SELECT name FROM system.quotas ORDER BY name",
    "SELECT name FROM system.named_collections ORDER BY name",
)


class Fingerprint(NamedTuple):
    """What a test must leave as it found it for its database to be reused."""

    tables: tuple[tuple[str, str], ...]  # (file, statement): the engine's metadata of each table and view
    row_policies: int  # row policies on the database's tables


class DatabasePool:
    """Migrated, empty databases in one chDB directory, reused across the tests of a process."""

    def __init__(self, data_dir: Path) -> None:
        """`data_dir`: the process's chDB directory (`chdb_dir`)."""
        self.data_dir = data_dir
        self._free: list[str] = []
        self._fingerprints: dict[str, Fingerprint] = {}
        self._users: dict[str, str] = {}  # database -> the last test that gave it back
        self._names = itertools.count()
        self._admin: Store | None = None
        self._globals: tuple[tuple[Any, ...] | None, ...] | None = None
        self._unsupported: set[str] = set()  # system tables this engine does not have or lets us read
        self.created = 0  # databases migrated (for the pool's own tests)
        self.dropped = 0  # databases dropped instead of reused

    # -- lending ---------------------------------------------------------------------------------

    def take(self) -> str:
        """The name of a migrated database with no rows but the applied migrations."""
        while self._free:
            name = self._free.pop()
            parts = self._parts(name)
            if not parts:  # nothing wrote into it after it was given back
                return name
            warnings.warn(
                f"{name} was written after it was given back by {self._users.get(name)} (parts: {parts}):"
                " dropped",
                stacklevel=2,
            )
            self._drop(name)
        return self._create()

    def give_back(self, name: str) -> None:
        """Empty `name` for the next test, or drop it when its schema is no longer the migrated one."""
        parts = self._parts(name)
        reusable = self._fingerprint(name) == self._fingerprints[name] and sum(parts.values()) <= _MAX_PARTS
        if reusable:
            for table in parts:  # the tables with data: views and `schema_migrations` are kept
                self._store().command(f"TRUNCATE TABLE `{name}`.`{table}`")
            reusable = not self._parts(name)  # else written meanwhile (seen once in a while)
        if reusable:
            self._free.append(name)
            self._users[name] = os.environ.get("PYTEST_CURRENT_TEST", "?")
        else:
            self._drop(name)
        self._check_globals()

    @contextmanager
    def database(self) -> Iterator[str]:
        """A pooled database's name for the duration of the block (for tests that open it themselves,
        e.g. once per simulated restart)."""
        name = self.take()
        try:
            yield name
        finally:
            self.give_back(name)

    @contextmanager
    def store(self) -> Iterator[Store]:
        """A `Store` on a pooled database, already migrated; closed and given back after the block."""
        from tokenbook.collector.storage.store import Store

        with self.database() as name, Store.open(data_dir=self.data_dir, database=name) as store:
            yield store

    def close(self) -> None:
        """Close the pool's own connection (the databases stay in the directory)."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    # -- internals -------------------------------------------------------------------------------

    def _store(self) -> Store:
        if self._admin is None:
            from tokenbook.collector.storage.store import Store

            self._admin = Store.open(data_dir=self.data_dir, database="default")
            self._globals = self._global_objects()
        return self._admin

    def _create(self) -> str:
        from tokenbook.collector.storage.store import Store

        name = f"pool_{os.getpid()}_{next(self._names)}"
        with Store.open(data_dir=self.data_dir, database=name) as store:
            store.migrate()
        self.created += 1
        self._fingerprints[name] = self._fingerprint(name)
        return name

    def _drop(self, name: str) -> None:
        self._store().command(f"DROP DATABASE IF EXISTS `{name}`")
        self._fingerprints.pop(name, None)
        self.dropped += 1

    def _fingerprint(self, name: str) -> Fingerprint:
        """The database's tables and views as the engine keeps them (`metadata/<database>/<table>.sql`,
        rewritten by every DDL statement before it returns), and its row policies. Read from the
        files: `system.tables` renders every CREATE statement (~80 ms after each test)."""
        folder = self.data_dir / _METADATA / name
        tables = tuple((path.name, path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.sql")))
        if not tables:
            raise AssertionError(f"no table metadata of {name} in {folder}: has the engine's layout changed?")
        policies = self._optional(_POLICIES, {"db": name})
        return Fingerprint(tables, int(policies[0]) if policies else 0)

    def _parts(self, name: str) -> dict[str, int]:
        """Active parts per table of `name` (but `schema_migrations`): the tables holding rows."""
        rows = self._store().query(_PARTS, {"db": name, "keep": _BOOKKEEPING})[2]
        return {str(table): int(count) for table, count in rows}

    def _optional(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[Any, ...] | None:
        """The first column of `sql`'s rows; None when the engine has no such table or no access control
        (the embedded engine has no users, roles or row policies)."""
        from tokenbook.collector.storage.store import StoreError

        if sql in self._unsupported:
            return None
        try:
            return tuple(row[0] for row in self._store().query(sql, parameters)[2])
        except StoreError:
            self._unsupported.add(sql)  # asked once: it will not start to exist
            return None

    def _global_objects(self) -> tuple[tuple[Any, ...] | None, ...]:
        functions = sorted(path.name for path in (self.data_dir / _FUNCTIONS).glob("function_*.sql"))
        return (tuple(functions), *(self._optional(sql) for sql in _GLOBALS))

    def _check_globals(self) -> None:
        now = self._global_objects()
        if now != self._globals:
            self._globals = now
            raise AssertionError(f"a test left global objects in the engine: {now}")
