"""Migrations: applied for real on the embedded engine; the clustered variant parsed by the same engine."""

from __future__ import annotations

import re
import uuid

import pytest

from tokenbook.collector.storage.migrate import MigrationError, load_migrations, rendered_ddl
from tokenbook.collector.storage.sqltemplate import SchemaTarget
from tokenbook.collector.storage.store import Store

OBJECTS = {
    "llm_calls",
    "context_steps",
    "context_costs",
    "cost_hourly",
    "schema_migrations",
    "v_calls",
    "v_context_steps",
    "v_context_costs",
    "v_cost_hourly",
    "v_cost_daily",
    "budget_events",
    "v_budget_events",
}


@pytest.fixture
def fresh(chdb_dir):
    """A store on a database of its own, not migrated; dropped after the test (each table of a
    database left in the engine costs its background tasks CPU for the rest of the run)."""
    with Store.open(data_dir=chdb_dir, database=f"m_{uuid.uuid4().hex[:12]}") as s:
        yield s
        s.command(f"DROP DATABASE IF EXISTS `{s.database}`")


def _objects(store: Store) -> set[str]:
    _, _, rows = store.query(
        "SELECT name FROM system.tables WHERE database = {db:String}", {"db": store.database}
    )
    return {r[0] for r in rows}


def test_migrations_are_numbered_uniquely_in_order():
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(set(versions)) and versions[0] == 1
    assert all(re.fullmatch(r"\d{3}_\w+\.sql", m.name) for m in migrations)


def test_migrate_applies_everything_once(fresh):
    names = fresh.migrate()
    assert names == [m.name for m in load_migrations()]
    assert _objects(fresh) >= OBJECTS
    assert fresh.migrate() == []
    _, _, rows = fresh.query(
        f"SELECT version, name, checksum FROM {fresh.database}.schema_migrations FINAL ORDER BY version"
    )
    assert rows == [(m.version, m.name, m.checksum) for m in load_migrations()]


def test_migrate_refuses_an_edited_migration(chdb_dir, database_pool):
    name = database_pool.take()  # a migrated database (a copy of the pool's migrated template)
    try:
        with Store.open(data_dir=chdb_dir, database=name) as store:
            assert store.migrate() == []
            store.command(
                f"INSERT INTO {name}.schema_migrations "
                "VALUES (2, '002_context_steps.sql', 'edited', now64(6))"
            )
            with pytest.raises(MigrationError, match=r"002_context_steps\.sql was changed"):
                store.migrate()
    finally:
        database_pool.discard(name)  # its applied migrations were edited: never lent again


def test_single_node_rendering_has_no_cluster_clauses():
    ddl = rendered_ddl(SchemaTarget())
    assert "ON CLUSTER" not in ddl and "Replicated" not in ddl and "_local" not in ddl and "{{" not in ddl


def test_cluster_rendering_parses_with_the_engine(fresh):
    target = SchemaTarget(database="tokenbook", cluster="tb_cluster")
    statements = [s for m in load_migrations() for s in m.statements(target)]
    for statement in statements:
        assert "{{" not in statement
        _, _, rows = fresh.query("SELECT formatQuery({sql:String})", {"sql": statement})
        assert rows[0][0]
    ddl = "\n".join(statements)
    for table in ("llm_calls", "context_steps", "context_costs", "cost_hourly"):
        assert f"CREATE TABLE IF NOT EXISTS tokenbook.{table}_local ON CLUSTER tb_cluster" in ddl
        assert f"ENGINE = Distributed(tb_cluster, tokenbook, {table}_local," in ddl
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)"
        in ddl
    )
    assert all("ON CLUSTER tb_cluster" in s for s in statements)


def test_bad_identifiers_are_refused():
    with pytest.raises(ValueError, match="cluster"):
        SchemaTarget(cluster="c ON CLUSTER x")
    with pytest.raises(ValueError, match="database"):
        SchemaTarget(database="db`")


@pytest.mark.server
def test_migrate_on_a_server(clickhouse_url):
    with Store.open(clickhouse_url, database=f"tokenbook_test_{uuid.uuid4().hex[:8]}") as store:
        try:
            assert store.migrate() == [m.name for m in load_migrations()]
            assert store.migrate() == []
            assert _objects(store) >= OBJECTS
        finally:
            store.command(f"DROP DATABASE IF EXISTS {store.database}")


@pytest.mark.parametrize(
    "view", ["v_calls", "v_call_candidates", "v_cost_hourly", "v_tenant_hourly", "v_model_hourly"]
)
def test_final_views_merge_within_partitions_only(migrated_store, view):
    """FINAL on a table partitioned by a column of its sorting key is exact per partition: every view
    that reads one keeps `do_not_merge_across_partitions_select_final`, so a later migration that
    re-creates it (to pick up new columns) cannot silently make queries read every partition."""
    (create,) = migrated_store.query(f"SHOW CREATE TABLE {migrated_store.database}.{view}")[2][0]
    assert "do_not_merge_across_partitions_select_final = 1" in create, create
