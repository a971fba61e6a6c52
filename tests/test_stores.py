"""The pool of migrated databases the tests share: a database comes back as a fresh migration leaves it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.cli.seed_store import make_calls
from tests.stores import DatabasePool
from tokenbook.collector.storage.migrate import load_migrations
from tokenbook.collector.storage.store import Store


def _counts(store: Store) -> dict[str, int]:
    sql = (
        "SELECT name, total_rows FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'"
    )
    return {str(name): int(rows or 0) for name, rows in store.query(sql, {"db": store.database})[2]}


def _exists(store: Store, database: str) -> bool:
    sql = "SELECT count() FROM system.databases WHERE name = {db:String}"
    return bool(store.query(sql, {"db": database})[2][0][0])


def test_a_database_given_back_is_empty_and_still_migrated(database_pool: DatabasePool) -> None:
    with database_pool.store() as store:
        first = store.database
        store.write(make_calls(20), [])
        store.refresh_aggregates()
        assert store.query("SELECT count() FROM v_calls")[2][0][0] == 20
    with database_pool.store() as store:
        assert store.database == first  # reused, not migrated again
        assert store.migrate() == []
        counts = _counts(store)
        assert counts.pop("schema_migrations") == len(load_migrations())
        assert set(counts.values()) == {0}
        assert store.query("SELECT count() FROM v_context_costs")[2][0][0] == 0


def _schema(store: Store) -> dict[str, Any]:
    """What a migration makes of a database: its tables and views (their statements, the database's
    name left out), their columns, and the applied migrations."""
    db = {"db": store.database}
    tables = store.query(
        "SELECT name, engine, replaceAll(create_table_query, {db:String}, 'DB'), sorting_key,"
        " partition_key, primary_key FROM system.tables WHERE database = {db:String} ORDER BY name",
        db,
    )[2]
    columns = store.query(
        "SELECT table, name, type, position, default_kind, default_expression, compression_codec,"
        " is_in_sorting_key, is_in_partition_key FROM system.columns WHERE database = {db:String}"
        " ORDER BY table, position",
        db,
    )[2]
    applied = store.query("SELECT version, name, checksum FROM schema_migrations FINAL ORDER BY version")[2]
    return {"tables": tables, "columns": columns, "applied": applied}


def test_a_database_of_the_pool_has_the_schema_a_migration_gives(
    chdb_dir: Path, database_pool: DatabasePool
) -> None:
    """The pool lends copies of its template's schema: the same as migrating a fresh database."""
    with Store.open(data_dir=chdb_dir, database=f"fresh_{os.getpid()}") as fresh:
        try:
            assert fresh.migrate()
            migrated = _schema(fresh)
        finally:
            fresh.command(f"DROP DATABASE IF EXISTS `{fresh.database}`")
    assert len(migrated["tables"]) > 30 and len(migrated["applied"]) == len(load_migrations())
    with database_pool.store() as copy:
        assert _schema(copy) == migrated
        assert copy.migrate() == []


def test_the_workers_of_a_run_migrate_one_template(
    chdb_dir: Path, database_pool: DatabasePool, tmp_path: Path
) -> None:
    """A pool whose run already has a template's schema (left by the first process to migrate one)
    creates its template as a copy of it, with the same applied migrations (to the time of applying),
    and lends databases with the schema the other pool's have."""
    database_pool.share(tmp_path)
    copied = DatabasePool(chdb_dir, tmp_path, prefix=f"shared_{os.getpid()}")
    try:
        with database_pool.store() as first, copied.store() as second:
            assert _schema(second) == _schema(first)
            applied = [
                store.query("SELECT * FROM schema_migrations FINAL ORDER BY version")[2]
                for store in (first, second)
            ]
        assert applied[0] == applied[1]  # copied, not migrated again
        assert len(applied[0]) == len(load_migrations())
    finally:
        with Store.open(data_dir=chdb_dir, database="default") as admin:
            copied.close()
            for name in (f"{copied.prefix}_template", f"{copied.prefix}_0"):
                admin.command(f"DROP DATABASE IF EXISTS `{name}`")


def test_a_database_whose_schema_changed_is_dropped_not_reused(database_pool: DatabasePool) -> None:
    dropped = database_pool.dropped
    with database_pool.store() as store:
        changed = store.database
        store.command("ALTER TABLE llm_calls ADD COLUMN extra UInt8")
    assert database_pool.dropped == dropped + 1
    with database_pool.store() as store:
        assert store.database != changed and not _exists(store, changed)
        assert "extra" not in {row[0] for row in store.query("DESCRIBE TABLE llm_calls")[2]}


def test_a_database_written_after_it_was_given_back_is_not_lent_again(
    chdb_dir: Path, database_pool: DatabasePool
) -> None:
    dropped = database_pool.dropped
    name = database_pool.take()
    database_pool.give_back(name)
    with Store.open(data_dir=chdb_dir, database=name) as late:  # e.g. a thread that outlived its test
        late.write(make_calls(3), [])
    with pytest.warns(UserWarning, match="written after it was given back"):
        again = database_pool.take()
    assert again != name
    database_pool.give_back(again)
    assert database_pool.dropped == dropped + 1


def test_a_database_of_many_parts_is_dropped_rather_than_truncated(database_pool: DatabasePool) -> None:
    """A backfill over years of monthly partitions: truncating would cost more than a new migration."""
    dropped = database_pool.dropped
    with database_pool.store() as store:
        many = store.database
        calls = make_calls(60)
        months = [calls[0]._replace(span_id=f"{m:016x}", timestamp=calls[0].timestamp.replace(
            year=2015 + m // 12, month=1 + m % 12, day=15)) for m in range(60)]  # fmt: skip
        store.write(months[:30], [])
        store.write(months[30:], [])
    assert database_pool.dropped == dropped + 1
    with database_pool.store() as store:
        assert store.database != many and not _exists(store, many)


def test_a_test_that_leaves_a_function_in_the_engine_fails(database_pool: DatabasePool) -> None:
    """A SQL user-defined function is global: giving back the database it was created from fails, and
    so does giving back the one it is dropped from (the engine changed again)."""
    made = pytest.raises(AssertionError, match=r"global objects.*tokenbook_test_leftover")
    with made, database_pool.store() as store:
        store.command("CREATE FUNCTION tokenbook_test_leftover AS (x) -> x + 1")
    dropped = pytest.raises(AssertionError, match=r"global objects in the engine: \(\(\), ")
    with dropped, database_pool.store() as store:
        store.command("DROP FUNCTION tokenbook_test_leftover")
