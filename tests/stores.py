"""Migrated databases for the tests, from a pool per test process.

Migrating a fresh database costs the whole schema's DDL (about a second, several under load), while
emptying one costs a `TRUNCATE` per table holding rows. `DatabasePool` hands out migrated, empty
databases in the process's one chDB directory (`chdb_dir`) and takes them back when a test is done:
it truncates the tables holding rows (never `schema_migrations`), or drops the database when the
test changed its schema, left row policies on it, left more parts than truncating is worth, or when
rows appear in it after its truncation, so that the next test gets what a fresh migration would give
it. A test that leaves global objects in the engine (functions, users, roles, profiles, quotas,
named collections) fails. Tests of the migrations themselves create real fresh databases instead.

The pool migrates one database per process, its template, which it never lends: every database it
lends is a copy of the template's schema, its tables and views created from the statements the
engine keeps for them (`metadata/<database>/<table>.sql`) and its applied migrations copied, which
costs a seventh of the migrations' DDL (a migration runs every migration's statements, many of them
replacing views an earlier one created). `tests/test_stores.py` checks that a copy has the tables,
views, columns and applied migrations of a freshly migrated database. The processes of one run
(pytest-xdist workers) share the migration too: the first to need its template migrates it and
leaves its schema (the statements and the applied migrations) in a folder of the run
(`DatabasePool(shared=...)`); the others create their template as a copy of that.

Fixtures (`tests/conftest.py`): `database_pool` (the process's pool), `migrated_store` (a `Store`
on a pooled database, closed and given back after the test), `migrated_database` (a pooled
database's name, for a test that opens it itself), `engine_free` (closes the pool's connection, for
a test whose code opens an embedded store in another directory)."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenbook.collector.storage.store import QueryResult, Store

__all__ = ["Counting", "DatabasePool", "Fingerprint"]

_BOOKKEEPING = "schema_migrations"  # the applied migrations: kept, as a fresh migration leaves it
_METADATA = "metadata"  # the engine's folder of each database's table definitions
_PARTS = (
    "SELECT table, count() FROM system.parts"
    " WHERE database = {db:String} AND active AND table != {keep:String} GROUP BY table"
)
_LATE_PARTS = (
    "SELECT table, name, level, rows, modification_time FROM system.parts"
    " WHERE database = {db:String} AND active ORDER BY table, name"
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


# The head of a table's or view's statement in the engine's metadata: ``ATTACH TABLE _ UUID '...'``.
_ATTACH = re.compile(r"ATTACH (?P<kind>TABLE|VIEW|MATERIALIZED VIEW) _(?: UUID '[^']*')?(?P<rest>.*)")
_DATABASE = "__tokenbook_pool_database__"  # stands for the copy's name in the template's statements
_SHARED = "template.json"  # the template's schema and applied migrations, in the run's shared folder


class Counting:
    """A store as a reader sees it (the decision pass, the budgets: `query` and `database`), counting
    the rows its queries return; every query runs with engine `settings` if given (e.g.
    `tests.cli.seed_store.reads_at_most`)."""

    def __init__(self, store: Store, settings: Mapping[str, Any] | None = None) -> None:
        self.store = store
        self.database = store.database
        self.settings = settings
        self.rows = 0
        self.statements: list[str] = []  # the text of every query, in order

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        result = self.store.query(sql, parameters, settings=self.settings)
        self.rows += len(result[2])
        self.statements.append(sql)
        return result


class Fingerprint(NamedTuple):
    """What a test must leave as it found it for its database to be reused."""

    tables: tuple[tuple[str, str], ...]  # (file, statement): the engine's metadata of each table and view
    row_policies: int  # row policies on the database's tables


class Schema(NamedTuple):
    """The template's schema: what a copy of it is created from."""

    database: str  # the template database (migrated, never lent)
    statements: tuple[str, ...]  # CREATE statements for `_DATABASE`; once copied, in an order that runs


class DatabasePool:
    """Migrated, empty databases in one chDB directory, reused across the tests of a process."""

    def __init__(self, data_dir: Path, shared: Path | None = None, *, prefix: str = "") -> None:
        """`data_dir`: the process's chDB directory (`chdb_dir`); `shared`: a folder of the test run
        where the first process to migrate its template leaves the template's schema for the other
        processes of the run (None: this process migrates its own); `prefix`: of the databases'
        names (default ``pool_<process ID>``)."""
        self.data_dir = data_dir
        self.shared = shared
        self.prefix = prefix or f"pool_{os.getpid()}"
        self._free: list[str] = []
        self._fingerprints: dict[str, Fingerprint] = {}
        self._users: dict[str, str] = {}  # database -> the last test that gave it back
        self._names = itertools.count()
        self._admin: Store | None = None
        self._globals: tuple[tuple[Any, ...] | None, ...] | None = None
        self._unsupported: set[str] = set()  # system tables this engine does not have or lets us read
        self._schema: Schema | None = None  # the template's, once it is migrated
        self.created = 0  # databases created (for the pool's own tests)
        self.dropped = 0  # databases dropped instead of reused

    # -- lending ---------------------------------------------------------------------------------

    def take(self) -> str:
        """The name of a migrated database with no rows but the applied migrations."""
        while self._free:
            name = self._free.pop()
            parts = self._parts(name)
            if not parts:  # nothing wrote into it after it was given back
                return name
            late = self._store().query(_LATE_PARTS, {"db": name})[2]  # inserted (level 0) or merged
            warnings.warn(
                f"{name} was written after it was given back by {self._users.get(name)} (parts: {parts};"
                f" table, part, level, rows, written: {late}): dropped",
                stacklevel=2,
            )
            self._drop(name)
        return self._create()

    def give_back(self, name: str) -> None:
        """Empty `name` for the next test, or drop it when its schema is no longer the migrated one."""
        parts = self._parts(name)
        reusable = self._fingerprint(name) == self._fingerprints[name] and sum(parts.values()) <= _MAX_PARTS
        if reusable:
            # The tables with data (views and `schema_migrations` are kept). A write that lands while
            # they are truncated, or later, is found when the database is next taken (`take`).
            for table in parts:
                self._store().command(f"TRUNCATE TABLE `{name}`.`{table}`")
            self._free.append(name)
            self._users[name] = os.environ.get("PYTEST_CURRENT_TEST", "?")
        else:
            self._drop(name)
        self._check_globals()

    def discard(self, name: str) -> None:
        """Drop `name`, taken from the pool, instead of giving it back (a test that changed what the
        pool does not reset, e.g. its applied migrations)."""
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
        """A new database with the template's schema and applied migrations."""
        schema = self._template()
        name = f"{self.prefix}_{next(self._names)}"
        admin = self._store()
        admin.command(f"CREATE DATABASE `{name}`")
        self._schema = schema._replace(statements=self._create_objects(name, schema.statements))
        admin.command(
            f"INSERT INTO `{name}`.`{_BOOKKEEPING}` SELECT * FROM `{schema.database}`.`{_BOOKKEEPING}`"
        )
        self.created += 1
        self._fingerprints[name] = self._fingerprint(name)
        return name

    def _template(self) -> Schema:
        """The template's schema; migrated the first time (or copied from the schema another process
        of the run left in `shared`)."""
        if self._schema is None:
            database = f"{self.prefix}_template"
            if self.shared is None:
                self._schema = self._migrate(database)
            else:
                self.shared.mkdir(parents=True, exist_ok=True)
                with open(self.shared / "template.lock", "w", encoding="ascii") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)  # one process migrates, the others wait for it
                    self._schema = self._shared_template(database, self.shared / _SHARED)
        return self._schema

    def _migrate(self, database: str) -> Schema:
        """Migrate `database` (a fresh one): the template's schema."""
        from tokenbook.collector.storage.store import Store

        with Store.open(data_dir=self.data_dir, database=database) as store:
            store.migrate()
        return Schema(database, self._statements(database))

    def share(self, folder: Path) -> None:
        """Leave this pool's template schema (its statements and applied migrations) in `folder`, for
        a pool of another process of the run (`DatabasePool(shared=folder)`) to copy."""
        schema = self._template()
        columns, _, rows = self._store().query(
            f"SELECT * FROM `{schema.database}`.`{_BOOKKEEPING}` ORDER BY ALL"
        )
        left = {"statements": schema.statements, "columns": columns, "rows": rows}
        partial = folder / f"{_SHARED}.partial"
        partial.write_text(json.dumps(left, default=lambda v: v.isoformat()), encoding="utf-8")
        partial.replace(folder / _SHARED)

    def _shared_template(self, database: str, path: Path) -> Schema:
        """The template `database`: a copy of the schema in `path`, or, when no process of the run
        left one yet, migrated and left there (the caller holds the run's lock)."""
        from tokenbook.collector.storage.store import Store

        if not path.exists():
            self._schema = self._migrate(database)
            self.share(path.parent)
            return self._schema
        left = json.loads(path.read_text(encoding="utf-8"))
        self._store().command(f"CREATE DATABASE `{database}`")
        statements = self._create_objects(database, tuple(left["statements"]))
        with Store.open(data_dir=self.data_dir, database=database) as store:
            store.insert_rows(_BOOKKEEPING, left["columns"], left["rows"])
        return Schema(database, statements)

    def _statements(self, database: str) -> tuple[str, ...]:
        """CREATE statements of `database`'s tables (first) and views, for the database `_DATABASE`."""
        tables: list[str] = []
        views: list[str] = []
        for path in sorted((self.data_dir / _METADATA / database).glob("*.sql")):
            head, _, body = path.read_text(encoding="utf-8").partition("\n")
            attach = _ATTACH.fullmatch(head)
            if attach is None:
                raise AssertionError(
                    f"{path}: unexpected metadata {head!r}: has the engine's layout changed?"
                )
            statement = f"CREATE {attach['kind']} `{_DATABASE}`.`{path.stem}`{attach['rest']}\n{body}"
            statement = statement.replace(f"`{database}`.", f"`{_DATABASE}`.")
            statement = statement.replace(f"{database}.", f"`{_DATABASE}`.")
            if database in statement:
                raise AssertionError(f"{path}: {database} is named other than as a table's database")
            (tables if attach["kind"] == "TABLE" else views).append(statement)
        return (*tables, *views)

    def _create_objects(self, name: str, statements: tuple[str, ...]) -> tuple[str, ...]:
        """Run `statements` in `name`; returns them in the order they ran: one that fails (a view on a
        view not created yet) is tried again after the others, so the first copy finds an order in
        which each runs once."""
        from tokenbook.collector.storage.store import StoreError

        admin = self._store()
        done: list[str] = []
        pending = list(statements)
        while pending:
            failed: list[str] = []
            error: StoreError | None = None
            for statement in pending:
                try:
                    admin.command(statement.replace(_DATABASE, name))
                except StoreError as exc:  # a view on a view not created yet: tried again
                    failed.append(statement)
                    error = exc
                else:
                    done.append(statement)
            if len(failed) == len(pending):
                raise AssertionError(f"cannot copy the template into {name}: {error}")
            pending = failed
        return tuple(done)

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
