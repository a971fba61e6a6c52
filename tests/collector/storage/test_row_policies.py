"""Per-tenant row policies for a ClickHouse server: the statements, parsed by the engine itself.

The embedded engine has no users, roles or row policies, and the HTTP test server cannot enforce them:
these tests check what `tokenbook tenants policies` would run, statement by statement, with
ClickHouse's own parser (`formatQuery`), on the real schema's tables.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stores import DatabasePool
from tokenbook.collector.storage.row_policies import (
    PolicyTable,
    policy_statements,
    prune_statements,
    schema_tables,
    tenant_role,
)
from tokenbook.collector.storage.store import Store, StoreError


@pytest.fixture(scope="module")
def store(database_pool: DatabasePool) -> Iterator[Store]:
    """A migrated embedded store in a fresh database."""
    with database_pool.store() as s:
        yield s


def canonical(store: Store, sql: str) -> str:
    """ClickHouse's own formatting of `sql` (raises StoreError when it does not parse)."""
    text: str = store.query("SELECT formatQuery({q:String})", {"q": sql})[2][0][0]
    return text


def test_every_table_gets_a_policy_per_tenant_and_every_statement_parses(store: Store) -> None:
    tables = store.policy_tables()
    names = {t.name for t in tables}
    assert {"llm_calls", "context_steps", "context_costs", "cost_hourly"} <= names
    assert not any(name.startswith("v_") for name in names)  # views read their tables' policies
    statements = policy_statements(store.database, tables, ["acme", "globex.eu@1"], "tokenbook_reader")
    formatted = [canonical(store, sql) for sql in statements]
    role = tenant_role(store.database, "acme")
    policies = [f for f in formatted if f.startswith(f"CREATE ROW POLICY OR REPLACE {role} ON")]
    assert len(policies) == len(tables)
    for table in tables:
        (policy,) = [p for p in policies if f" ON {store.database}.{table.name} " in p]
        condition = "tenant_id = 'acme'" if table.has_tenant else "0"
        assert policy.endswith(f"AS PERMISSIVE FOR SELECT USING {condition} TO {role}")
    assert formatted[-1] == "ALTER USER tokenbook_reader DEFAULT ROLE NONE"
    assert f"GRANT {role} TO tokenbook_reader" in formatted
    assert f"GRANT SELECT ON {store.database}.* TO {role}" in formatted


def test_the_tables_read_from_the_migrations_are_those_of_a_migrated_database(store: Store) -> None:
    """`schema_tables` (``tenants policies --print`` without a server) reads the migrations' DDL: the
    same tables, with and without ``tenant_id``, as the migrated database holds."""
    assert schema_tables(store.database) == store.policy_tables()
    assert any(t.has_tenant for t in schema_tables("other")) and any(
        not t.has_tenant for t in schema_tables("other")
    )


def test_cluster_and_prune_statements_parse(store: Store) -> None:
    tables = store.policy_tables()
    statements = policy_statements(store.database, tables, ["acme"], "reader", cluster="tokenbook")
    statements += prune_statements(
        store.database, tables, [tenant_role(store.database, "gone")], cluster="tokenbook"
    )
    for sql in statements:
        assert "ON CLUSTER tokenbook" in canonical(store, sql)
    assert (
        canonical(store, statements[-1])
        == f"DROP ROLE IF EXISTS {tenant_role(store.database, 'gone')} ON CLUSTER tokenbook"
    )


@pytest.mark.parametrize(
    ("database", "tenant", "reader", "table"),
    [
        ("tokenbook", "acme' OR 1 = 1 --", "reader", "llm_calls"),
        ("tokenbook", "acme`; DROP TABLE x", "reader", "llm_calls"),
        ("tokenbook", "acme", "reader` TO ALL --", "llm_calls"),
        ("tokenbook", "acme", "reader", "llm_calls` USING 1 --"),
        ("tok`enbook", "acme", "reader", "llm_calls"),
    ],
)
def test_names_that_could_break_out_are_refused(database: str, tenant: str, reader: str, table: str) -> None:
    with pytest.raises(ValueError):
        policy_statements(database, [PolicyTable(table, True)], [tenant], reader)


def test_prune_refuses_a_role_that_is_not_a_tenant_role() -> None:
    with pytest.raises(ValueError):
        prune_statements("tokenbook", [PolicyTable("llm_calls", True)], ["default_admin"])


def test_a_statement_the_engine_cannot_parse_is_an_error(store: Store) -> None:
    with pytest.raises(StoreError):
        canonical(store, "CREATE ROW POLICY ON USING")
