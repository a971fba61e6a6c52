"""The pool of migrated databases the tests share: a database comes back as a fresh migration leaves it."""

from __future__ import annotations

from pathlib import Path

from tests.cli.seed_store import make_calls
from tests.stores import DatabasePool
from tokenbook.collector.storage.migrate import load_migrations
from tokenbook.collector.storage.store import Store


def _counts(store: Store) -> dict[str, int]:
    sql = (
        "SELECT name, total_rows FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'"
    )
    return {str(name): int(rows or 0) for name, rows in store.query(sql, {"db": store.database})[2]}


def test_a_database_given_back_is_empty_and_still_migrated(chdb_dir: Path) -> None:
    pool = DatabasePool(chdb_dir)
    try:
        with pool.store() as store:
            first = store.database
            store.write(make_calls(20), [])
            store.refresh_aggregates()
            assert store.query("SELECT count() FROM v_calls")[2][0][0] == 20
        with pool.store() as store:
            assert store.database == first  # reused, not migrated again
            assert store.migrate() == []
            counts = _counts(store)
            assert counts.pop("schema_migrations") == len(load_migrations())
            assert set(counts.values()) == {0}
            assert store.query("SELECT count() FROM v_context_costs")[2][0][0] == 0
        assert (pool.created, pool.dropped) == (1, 0)
    finally:
        pool.close()


def test_a_database_whose_schema_changed_is_dropped_not_reused(chdb_dir: Path) -> None:
    pool = DatabasePool(chdb_dir)
    try:
        with pool.store() as store:
            changed = store.database
            store.command("ALTER TABLE llm_calls ADD COLUMN extra UInt8")
        assert pool.dropped == 1
        exists = "SELECT count() FROM system.databases WHERE name = {db:String}"
        with pool.store() as store:
            assert store.database != changed
            assert store.query(exists, {"db": changed})[2][0][0] == 0
            assert "extra" not in {row[0] for row in store.query("DESCRIBE TABLE llm_calls")[2]}
    finally:
        pool.close()


def test_a_database_written_after_it_was_given_back_is_not_lent_again(chdb_dir: Path) -> None:
    pool = DatabasePool(chdb_dir)
    try:
        name = pool.take()
        pool.give_back(name)
        with Store.open(data_dir=chdb_dir, database=name) as late:  # e.g. a thread that outlived its test
            late.write(make_calls(3), [])
        with pool.database() as again:
            assert again != name
        assert pool.dropped == 1
    finally:
        pool.close()
