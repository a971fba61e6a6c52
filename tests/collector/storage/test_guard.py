"""The read-only guard and `Store.query_readonly` on the real engine."""

from __future__ import annotations

import uuid

import pytest

from tokenbook.collector.storage.guard import QueryRefused, check_select
from tokenbook.collector.storage.store import Store, StoreError

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
    "SELECT * FROM system.tables",
    "ATTACH TABLE x",
    "DETACH TABLE llm_calls",
    "KILL QUERY WHERE 1",
    "OPTIMIZE TABLE llm_calls FINAL",
    "CREATE TABLE x (a Int8) ENGINE = Memory",
    "RENAME TABLE llm_calls TO x",
    "GRANT ALL ON *.* TO default",
    "SET readonly = 0",
    "USE system",
    "SHOW TABLES",
    "EXPLAIN SELECT 1",
    "DESCRIBE llm_calls",
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
]

ACCEPTED = [
    ("SELECT 1", "SELECT 1"),
    ("  select 1 ;  ", "select 1"),
    ("SELECT 1; -- trailing comment", "SELECT 1"),
    ("WITH t AS (SELECT 1 AS x) SELECT x FROM t", "WITH t AS (SELECT 1 AS x) SELECT x FROM t"),
    ("(SELECT 1)", "(SELECT 1)"),
    ("SELECT 'DROP TABLE x; INSERT' AS s", "SELECT 'DROP TABLE x; INSERT' AS s"),
    ('SELECT 1 AS "insert"', 'SELECT 1 AS "insert"'),
    ("SELECT format('{} {}', 'a', 'b')", "SELECT format('{} {}', 'a', 'b')"),
    ("SELECT 1 -- DROP TABLE x", "SELECT 1"),
    ("SELECT x FROM t ORDER BY x DESC", "SELECT x FROM t ORDER BY x DESC"),
    ("SELECT 'it''s'", "SELECT 'it''s'"),
]


@pytest.mark.parametrize("sql", REFUSED)
def test_guard_refuses(sql):
    with pytest.raises(QueryRefused):
        check_select(sql)


@pytest.mark.parametrize(("sql", "cleaned"), ACCEPTED)
def test_guard_accepts(sql, cleaned):
    assert check_select(sql) == cleaned


@pytest.fixture(scope="module")
def store(chdb_dir):
    with Store.open(data_dir=chdb_dir, database=f"ro_{uuid.uuid4().hex[:12]}") as s:
        s.migrate()
        yield s


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
    """Defence in depth: chDB honours readonly=2 even for SQL that got past the guard."""
    with pytest.raises(StoreError, match=r"READONLY|readonly"):
        store.query("INSERT INTO llm_calls (tenant_id) VALUES ('x')", settings={"readonly": 2})
    with pytest.raises(StoreError, match=r"READONLY|readonly"):
        store.query("SELECT 1 SETTINGS readonly = 0", settings={"readonly": 2})
    assert store.query("SELECT count() FROM llm_calls")[2] == [(0,)]
