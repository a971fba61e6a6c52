"""The read-only guard (`storage.guard`, on the engine's own parse tree) and `Store.query_readonly`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tokenbook.collector.storage.guard import Catalog, QueryLimits, QueryRefused, SqlGuard
from tokenbook.collector.storage.store import StoreError

REFUSED = [
    "",
    "   ;  ",
    "INSERT INTO llm_calls (tenant_id) VALUES ('x')",
    "SELECT 1; DROP TABLE llm_calls",
    "SELECT 1; SELECT 2",
    "select 1;;select 2",
    "DROP TABLE llm_calls",
    "drop database tokenbook",
    "ALTER TABLE llm_calls DELETE WHERE 1",
    "TRUNCATE TABLE llm_calls",
    "SYSTEM SHUTDOWN",
    "ATTACH TABLE x",
    "DETACH TABLE llm_calls",
    "KILL QUERY WHERE 1",
    "OPTIMIZE TABLE llm_calls FINAL",
    "CREATE TABLE x (a Int8) ENGINE = Memory",
    "RENAME TABLE llm_calls TO x",
    "GRANT ALL ON *.* TO default",
    "SET readonly = 0",
    "USE system",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT 1 FORMAT TSV",
    "SELECT * FROM llm_calls INTO OUTFILE '/tmp/x'",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT file('/etc/passwd')",
    "SELECT * FROM url('http://127.0.0.1:1/', 'CSV')",
    "SELECT * FROM s3('http://x/y', 'CSV')",
    "SELECT * FROM remote('127.0.0.1', system.one)",
    "SELECT * FROM executable('cat', 'CSV', 'x String')",
    "SELECT * FROM mysql('h:3306', 'db', 't', 'u', 'p')",
    "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
    "SELECT 'unterminated",
    "SELECT 1 /* unterminated",
    "(INSERT INTO t VALUES (1))",
    "SELECT * FROM system.processes",
    "SELECT * FROM system.one",
    "SELECT * FROM other_db.llm_calls",
    "SHOW TABLES FROM system",
    "DESCRIBE system.processes",
    "EXPLAIN SELECT 1 SETTINGS max_threads = 1",
    "EXPLAIN SELECT * FROM system.users",
    "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)",
    "SELECT 1 WHERE 1 IN system.users",
    "SELECT * FROM {t:Identifier}",
    "SELECT dictGet('d', 'a', 1)",
    "SELECT joinGet('system.j', 'v', 1)",
    "SELECT * FROM mergeTreeIndex(currentDatabase(), 'llm_calls')",
]

ACCEPTED = [
    ("SELECT 1", "SELECT 1"),
    ("  select 1 ;  ", "SELECT 1"),
    ("SELECT 1; -- trailing comment", "SELECT 1"),
    ("WITH t AS (SELECT 1 AS x) SELECT x FROM t", "WITH t AS (SELECT 1 AS x) SELECT x FROM t"),
    ("(SELECT 1)", "SELECT 1"),
    ("SELECT 'DROP TABLE x; INSERT' AS s", "SELECT 'DROP TABLE x; INSERT' AS s"),
    ('SELECT 1 AS "insert"', "SELECT 1 AS insert"),
    ("SELECT format('{} {}', 'a', 'b')", "SELECT format('{} {}', 'a', 'b')"),
    ("SELECT 1 -- DROP TABLE x", "SELECT 1"),
    ("SELECT x FROM llm_calls ORDER BY x DESC", "SELECT x FROM llm_calls ORDER BY x DESC"),
    ("SELECT 'it''s'", "SELECT 'it\\'s'"),
    ("SELECT $$it's$$ /* /* nested */ */", "SELECT 'it\\'s'"),
]


@pytest.fixture(scope="module")
def store(database_pool):
    with database_pool.store() as s:
        yield s


@pytest.mark.parametrize("sql", REFUSED)
def test_guard_refuses(store, sql):
    with pytest.raises(QueryRefused):
        store.guard.check(sql)


HOST_FUNCTIONS = ("hostName", "FQDN", "fullHostName", "displayName", "getOSKernelVersion", "serverUUID")


@pytest.mark.parametrize("function", [*HOST_FUNCTIONS, "tcpPort", "buildId", "zookeeperSessionUptime"])
def test_a_query_learns_nothing_of_the_host(store, function):
    with pytest.raises(QueryRefused, match=f"{function}\\(\\) reaches outside"):
        store.query_readonly(f"SELECT {function}()")
    with pytest.raises(QueryRefused):
        store.query_readonly(f"SELECT count() FROM llm_calls WHERE tenant_id = {function}()")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT logTrace('injected line')",  # a message of the tenant's choosing in the server's log
        "SELECT generateSerialID('tenant-counter')",  # a counter written to the server's Keeper
        "SELECT currentRequestURL()",
        "SELECT getMaxTableNameLengthForDatabase('system')",
        "SELECT demangle(addressToSymbol(toUInt64(1)))",
        # ledger data sent to a model provider over HTTP, with the server's credentials
        "SELECT aiGenerate('ai_credentials', concat('summarize: ', toString(1)))",
        "SELECT count() FROM llm_calls WHERE length(AIEmbed('ai_credentials', tenant_id)) > 0",
        "SELECT showCertificate()",
        "SELECT regionToName(toUInt32(1))",
    ],
)
def test_a_query_acts_on_nothing_of_the_server(store, sql):
    with pytest.raises(QueryRefused, match="reaches outside"):
        store.query_readonly(sql)


REVIEWED_FUNCTIONS = Path(__file__).parents[2] / "testdata" / "engine" / "functions.txt"


def test_every_function_of_the_engine_was_reviewed_for_the_guard(store):
    """The guard refuses functions by name (`REFUSED_FUNCTIONS`): a function a new engine adds is
    allowed until someone decides otherwise. Each of the engine's functions is in the reviewed list;
    a new one fails here until it is reviewed (refused if it reads files, URLs, other servers or
    databases, describes the host or acts on the server) and added to the list, which this query
    regenerates: ``SELECT name FROM system.functions WHERE origin = 'System' ORDER BY name``."""
    lines = REVIEWED_FUNCTIONS.read_text(encoding="utf-8").splitlines()
    reviewed = {line for line in lines if not line.startswith("#")}
    engine = {name for (name,) in store.query("SELECT name FROM system.functions WHERE origin = 'System'")[2]}
    assert sorted(engine - reviewed) == []


@pytest.mark.parametrize(("sql", "canonical"), ACCEPTED)
def test_guard_accepts_and_runs_the_canonical_text(store, sql, canonical):
    assert store.guard.check(sql).sql == canonical


def test_introspection_of_the_database_only(store):
    columns, _, rows = store.query_readonly("DESCRIBE TABLE llm_calls")
    assert columns[:2] == ["name", "type"] and ("tenant_id", "LowCardinality(String)") in [
        r[:2] for r in rows
    ]
    _, _, rows = store.query_readonly(f"SHOW CREATE TABLE {store.database}.v_calls")
    assert rows[0][0].startswith(f"CREATE VIEW {store.database}.v_calls")
    _, _, rows = store.query_readonly("SHOW TABLES LIKE 'llm%'")
    assert rows == [("llm_calls",)]
    _, _, rows = store.query_readonly("SELECT DISTINCT database FROM system.tables")
    assert rows == [(store.database,)]
    _, _, rows = store.query_readonly("SELECT count() FROM system.columns AS c WHERE c.table = 'llm_calls'")
    assert rows[0][0] > 10
    _, _, rows = store.query_readonly("EXPLAIN SYNTAX SELECT count() FROM llm_calls")
    assert rows
    with pytest.raises(StoreError, match="total_rows"):
        store.query_readonly("SELECT total_rows FROM system.tables")  # sizes would count every tenant


@pytest.mark.parametrize("sql", REFUSED)
def test_query_readonly_refuses_before_the_engine(store, sql):
    with pytest.raises(QueryRefused):
        store.query_readonly(sql)


def test_query_readonly_runs_selects_with_parameters(store):
    columns, _, rows = store.query_readonly(
        "SELECT count() AS n FROM llm_calls WHERE tenant_id = {t:String}", {"t": "x' OR 1=1 --"}
    )
    assert (columns, rows) == (["n"], [(0,)])


def test_query_readonly_limits_rows(store):
    with pytest.raises(StoreError, match=r"TOO_MANY_ROWS|Limit for result exceeded"):
        store.query_readonly("SELECT number FROM numbers(50)", max_rows=10)
    assert len(store.query_readonly("SELECT number FROM numbers(10)", max_rows=10)[2]) == 10


def test_engine_enforces_readonly_setting(store):
    """Defence in depth: chDB honours readonly=1 even for SQL that got past the guard."""
    with pytest.raises(StoreError, match=r"READONLY|readonly"):
        store.query("INSERT INTO llm_calls (tenant_id) VALUES ('x')", settings={"readonly": 1})
    with pytest.raises(StoreError, match=r"READONLY|readonly"):
        store.query("SELECT 1 SETTINGS max_threads = 1", settings={"readonly": 1})
    with pytest.raises(StoreError, match=r"READONLY|readonly"):
        store.query("SELECT * FROM file('/etc/hostname', 'LineAsString')", settings={"readonly": 1})
    assert store.query("SELECT count() FROM llm_calls")[2] == [(0,)]


def test_a_query_cannot_lift_its_limits(store):
    """The limits are query-level settings beside readonly=1; the query itself cannot set any."""
    assert store.query_readonly("SELECT getSetting('readonly'), getSetting('max_threads')")[2] == [(1, 2)]
    with pytest.raises(StoreError, match=r"TOO_MANY_ROWS|max_rows_to_read"):
        store.query_readonly("SELECT count() FROM numbers(2000000000)")
    with pytest.raises(StoreError, match=r"TIMEOUT_EXCEEDED|Timeout exceeded"):
        store.query_readonly(
            "SELECT count() FROM numbers_mt(900000000) WHERE sleepEachRow(0) = 0 AND "
            "cityHash64(number, number, number) % 7 = 3",
            timeout_s=0.5,
        )
    with pytest.raises(StoreError, match=r"MEMORY_LIMIT_EXCEEDED|memory limit"):
        store.query_readonly(
            "SELECT count() FROM (SELECT groupArray(number) FROM numbers(10000000))",
            limits=QueryLimits(max_memory=20 << 20),
        )


def test_a_parameterized_view_of_the_database_runs_but_not_for_a_tenant(database_pool):
    """v_saturated_calls(threshold = ...) is a view of the store's database called with parameters; a
    tenant-scoped caller is refused (no tenant filter can name a view the engine lists no columns for)."""
    from tests.cli.seed_store import make_calls

    with database_pool.store() as s:
        a, b = make_calls(2)  # tenants acme and globex
        s.write(
            [r._replace(context_window=1000, context_saturation=0.9, input_tokens=900) for r in (a, b)], []
        )
        sql = "SELECT tenant_id FROM v_saturated_calls(threshold = {t:Float64}) ORDER BY tenant_id"
        assert s.query_readonly(sql, {"t": 0.8})[2] == [("acme",), ("globex",)]
        assert s.query_readonly(sql, {"t": 0.95})[2] == []
        with pytest.raises(QueryRefused, match="tenant-scoped token cannot read"):
            s.query_readonly(sql, {"t": 0.8}, tenant="globex")
        with pytest.raises(QueryRefused, match="table function"):
            s.query_readonly("SELECT * FROM no_such_view(threshold = 0.8)")
        with pytest.raises(QueryRefused):  # the engine cannot format a qualified one back
            s.query_readonly(f"SELECT * FROM {s.database}.v_saturated_calls(threshold = 0.8)")
        with pytest.raises(QueryRefused, match=r"system\.users"):
            s.query_readonly("SELECT * FROM v_saturated_calls(threshold = (SELECT 1 FROM system.users))")


def test_the_engines_table_functions_are_read_once_per_engine(store):
    """The table functions that are only table functions are fixed by the engine's build: the guards
    of one engine read them once, a guard of another engine reads its own; a user-defined function
    taking a table function's name is still taken out of them, as soon as the catalog sees it."""
    ran: list[str] = []

    def read(sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        ran.append(sql)
        rows: list[tuple[Any, ...]] = store.query(sql, parameters, settings={"readonly": 1})[2]
        return rows

    def reads_table_functions(guard: SqlGuard) -> tuple[bool, Catalog]:
        ran.clear()
        catalog = guard.catalog()
        return any("system.table_functions" in sql for sql in ran), catalog

    engine = f"test-engine-{uuid.uuid4().hex}"
    first, again = (SqlGuard(store.database, read, engine=engine) for _ in range(2))
    read_first, catalog = reads_table_functions(first)
    assert read_first and {"zeros_mt", "numbers", "url"} <= catalog.table_only_functions
    assert "sum" not in catalog.table_only_functions
    assert reads_table_functions(again) == (False, catalog)  # the same engine: read once
    other = SqlGuard(store.database, read, engine=f"{engine}-other")
    assert reads_table_functions(other) == (True, catalog)
    store.command("CREATE FUNCTION zeros_mt AS (x) -> x")
    try:
        read_then, shadowed = reads_table_functions(SqlGuard(store.database, read, engine=engine))
        assert not read_then and "zeros_mt" in shadowed.user_functions
        assert shadowed.table_only_functions == catalog.table_only_functions - {"zeros_mt"}
        with pytest.raises(QueryRefused, match="zeros_mt"):
            SqlGuard(store.database, read, engine=engine).check("SELECT zeros_mt(1)")
    finally:
        store.command("DROP FUNCTION zeros_mt")
    assert reads_table_functions(SqlGuard(store.database, read, engine=engine)) == (False, catalog)
