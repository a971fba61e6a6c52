"""Bearer tokens: parsing ``auth.tokens``, authenticating, and confining a tenant's queries in ClickHouse.

The tenant confinement (`tenant_filters` -> ``additional_table_filters``) is checked against the real
embedded engine with every way a query can reach a table: directly, through a view, a subquery, a
CTE, a join, UNION, ``IN (subquery)``, a scalar subquery and the ``view()`` table function.
"""

from __future__ import annotations

import pytest

from tests.stores import DatabasePool
from tokenbook.collector.auth import (
    Credential,
    PermissionDenied,
    Unauthenticated,
    parse_tokens,
    token_digest,
)
from tokenbook.collector.storage.store import StoreError
from tokenbook.collector.storage.tenancy import tenant_filters

ACME = "tb-acme-0c1d2e3f4a5b"
ROOT = "tb-root-9a8b7c6d5e4f"


def _table():
    return parse_tokens(
        [
            {"sha256": token_digest(ACME), "tenant": "acme", "scopes": ["ingest", "query"]},
            {"sha256": token_digest(ROOT).upper(), "tenant": "*", "scopes": ["admin"]},
        ]
    )


def test_a_token_authenticates_to_its_tenant_and_scopes() -> None:
    table = _table()
    acme = Credential("acme", frozenset({"ingest", "query"}))
    assert table.authenticate(f"Bearer {ACME}", "ingest") == acme
    assert table.authenticate(f"bearer   {ACME} ", "query").tenant_override == "acme"
    root = table.authenticate(f"Bearer {ROOT}", "query")  # admin implies query
    assert root.tenant_override is None


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", f"Basic {ACME}", ACME, "Bearer nope"])
def test_missing_or_bad_tokens_are_unauthenticated(header: str | None) -> None:
    with pytest.raises(Unauthenticated) as info:
        _table().authenticate(header, "ingest")
    assert info.value.status == 401 and info.value.grpc_code == "UNAUTHENTICATED"
    assert ACME not in str(info.value)


def test_a_valid_token_without_the_scope_is_permission_denied() -> None:
    with pytest.raises(PermissionDenied) as info:
        _table().authenticate(f"Bearer {ACME}", "admin")
    assert info.value.status == 403 and info.value.grpc_code == "PERMISSION_DENIED"
    with pytest.raises(PermissionDenied):
        _table().authenticate(f"Bearer {ROOT}", "ingest")


def test_config_problems_are_all_reported_with_their_entry() -> None:
    with pytest.raises(ValueError) as info:
        parse_tokens(
            [
                {"sha256": "abc", "tenant": "acme"},
                {"sha256": token_digest("x"), "tenant": "a'b", "scopes": ["write"]},
                {"sha256": token_digest("y"), "tenant": "t", "extra": 1},
                "not a mapping",
            ]
        )
    message = str(info.value)
    for part in ("[0].sha256", "[1].tenant", "[1].scopes", "[2]: unknown key(s) extra", "[3]:"):
        assert part in message
    with pytest.raises(ValueError, match="twice"):
        parse_tokens([{"sha256": token_digest("x"), "tenant": "a"}] * 2)


def test_the_filter_setting_refuses_what_it_cannot_quote() -> None:
    with pytest.raises(ValueError):
        tenant_filters("tokenbook", [("llm_calls", True)], "x' OR 1 --")
    with pytest.raises(ValueError):
        tenant_filters("tokenbook", [("llm_calls; DROP", True)], "acme")


@pytest.fixture(scope="module")
def store(database_pool: DatabasePool):

    with database_pool.store() as s:
        s.command(
            f"INSERT INTO {s.database}.context_steps (tenant_id, context_id, trace_id, span_id, kind)"
            " VALUES ('acme', 'c1', 't1', 's1', 'tool'), ('globex', 'c2', 't2', 's2', 'tool')"
        )
        yield s


SCOPED_QUERIES = [
    "SELECT tenant_id FROM context_steps",
    "SELECT tenant_id FROM v_context_steps",
    "SELECT tenant_id FROM (SELECT * FROM context_steps)",
    "WITH t AS (SELECT * FROM context_steps) SELECT tenant_id FROM t",
    "SELECT a.tenant_id FROM context_steps AS a JOIN v_context_steps AS b USING span_id",
    "SELECT tenant_id FROM context_steps UNION DISTINCT SELECT tenant_id FROM v_context_steps",
    "SELECT tenant_id FROM context_steps WHERE span_id IN (SELECT span_id FROM context_steps)",
    "SELECT arrayJoin((SELECT groupArray(tenant_id) FROM context_steps)) AS tenant_id",
    "SELECT tenant_id FROM view(SELECT * FROM context_steps)",
]


@pytest.mark.parametrize("sql", SCOPED_QUERIES)
def test_a_tenant_scoped_query_sees_only_its_tenant(store, sql: str) -> None:
    tables = store.query(
        "SELECT name, has(groupArray(c.name), 'tenant_id') FROM system.tables AS t"
        " LEFT JOIN system.columns AS c ON c.database = t.database AND c.table = t.name"
        " WHERE t.database = {db:String} GROUP BY name",
        {"db": store.database},
    )[2]
    settings = {"additional_table_filters": tenant_filters(store.database, tables, "acme"), "readonly": 2}
    assert {r[0] for r in store.query(sql, settings=settings)[2]} == {"acme"}
    assert {r[0] for r in store.query(sql)[2]} == {"acme", "globex"}  # unscoped: both


@pytest.mark.parametrize("sql", SCOPED_QUERIES)
def test_query_readonly_confines_a_tenant_through_every_path(store, sql: str) -> None:
    """The store's user-query path: guard, readonly=1, limits and the tenant's filters together."""
    assert {r[0] for r in store.query_readonly(sql, tenant="acme")[2]} == {"acme"}
    assert {r[0] for r in store.query_readonly(sql)[2]} == {"acme", "globex"}


def test_readonly_keeps_the_filter_even_past_the_guard(store) -> None:
    """Defence in depth: were a subquery's SETTINGS to reach the engine, readonly=1 keeps the filter."""
    tables = store.guard.catalog().tables.items()
    settings = {"readonly": 1, "additional_table_filters": tenant_filters(store.database, tables, "acme")}
    sql = (
        "SELECT DISTINCT tenant_id FROM"
        " (SELECT tenant_id FROM context_steps SETTINGS additional_table_filters = {})"
    )
    try:
        rows = store._read(sql, {}, settings)[2]
    except StoreError as exc:
        assert "READONLY" in str(exc) or "readonly" in str(exc)
    else:
        assert {r[0] for r in rows} == {"acme"}
