"""SQL safety of the read-only query endpoint, through the real admin API of a running collector.

Only a single SELECT (or WITH ... SELECT) runs. Injection attempts, stacked statements, writes, DDL,
SYSTEM/ATTACH/KILL, clauses that would lift the limits (SETTINGS, FORMAT, INTO OUTFILE) and table
functions that reach outside the store are all refused with 400, and afterwards the ledger is intact.
Values travel as bound parameters: a hostile value is compared as a string, never parsed as SQL.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import CollectorProcess, SpanFactory

pytestmark = pytest.mark.e2e  # starts processes

SPANS = 12


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory):
    c = CollectorProcess(tmp_path_factory.mktemp("sql") / "data").start()
    try:
        exporter = GrpcExporter(endpoint=c.grpc_endpoint, insecure=True)
        assert exporter.export(SpanFactory().chats(SPANS, tenant="victim")) == SpanExportResult.SUCCESS
        c.wait_for("SELECT count() FROM v_calls", SPANS)
        yield c
    finally:
        assert c.stop() == 0


def _query(collector: CollectorProcess, sql: str, **parameters: Any) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"sql": sql, "parameters": parameters}).encode()
    request = urllib.request.Request(
        collector.admin_url + "/v1/query", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


REFUSED = [
    # stacked statements, with the second one hidden in various ways
    "SELECT 1; DROP TABLE llm_calls",
    "SELECT 1;DROP TABLE llm_calls;",
    "select count() from v_calls; INSERT INTO llm_calls SELECT * FROM llm_calls",
    "SELECT 1 -- harmless?\n; TRUNCATE TABLE llm_calls",
    "SELECT 1 /* comment */ ; DETACH TABLE llm_calls",
    "SELECT '1'; ALTER TABLE llm_calls DELETE WHERE 1",
    "SELECT 1 ;\n\tSYSTEM SHUTDOWN",
    # writes and DDL, plain or behind WITH / parentheses / odd case
    "INSERT INTO llm_calls SELECT * FROM llm_calls",
    "insert into llm_calls (tenant_id) values ('x')",
    "WITH x AS (SELECT 1) INSERT INTO llm_calls SELECT * FROM llm_calls",
    "(INSERT INTO llm_calls SELECT * FROM llm_calls)",
    "CREATE TABLE evil (x UInt8) ENGINE = Memory",
    "CREATE TEMPORARY TABLE evil (x UInt8)",
    "DROP TABLE llm_calls",
    "DrOp DATABASE tokenbook",
    "TRUNCATE TABLE llm_calls",
    "ALTER TABLE llm_calls DELETE WHERE 1",
    "ALTER TABLE llm_calls UPDATE total_cost = 0 WHERE 1",
    "DELETE FROM llm_calls WHERE 1",
    "RENAME TABLE llm_calls TO gone",
    "OPTIMIZE TABLE llm_calls FINAL",
    "EXCHANGE TABLES llm_calls AND context_steps",
    # administration
    "SYSTEM SHUTDOWN",
    "SYSTEM DROP DNS CACHE",
    "SYSTEM STOP MERGES",
    "ATTACH TABLE evil FROM '/tmp/evil' (x UInt8) ENGINE = Memory",
    "ATTACH DATABASE evil ENGINE = Atomic",
    "DETACH TABLE llm_calls",
    "KILL QUERY WHERE 1",
    "GRANT ALL ON *.* TO default",
    "SET readonly = 0",
    "USE system",
    "BACKUP TABLE llm_calls TO File('/tmp/b')",
    # lifting the limits from inside a SELECT
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT count() FROM v_calls SETTINGS max_result_rows = 0",
    "SELECT * FROM llm_calls FORMAT TabSeparated",
    "SELECT * FROM llm_calls INTO OUTFILE '/tmp/stolen.tsv'",
    # reaching outside the store
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString', 's String')",
    "SELECT * FROM remote('127.0.0.1:9000', system.one)",
    "SELECT * FROM executable('id', 'TSV', 'x String')",
    "SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV')",
    "SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'u', 'p')",
    "SELECT * FROM merge('tokenbook', '.*')",
    "SELECT * FROM input('x String')",
    "SELECT * FROM system.users",
    # the guard's own tokenizer: unterminated strings and comments hide nothing
    "SELECT 'unterminated; DROP TABLE llm_calls",
    "SELECT 1 /* ; DROP TABLE llm_calls",
    "SELECT `llm_calls; DROP TABLE x",
    "",
    "   ;  ",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_anything_but_one_select_is_refused(collector: CollectorProcess, sql: str) -> None:
    status, reply = _query(collector, sql)
    assert status == 400, reply
    assert reply["error"]


def test_the_ledger_is_intact_after_the_attempts(collector: CollectorProcess) -> None:
    for sql in REFUSED:
        _query(collector, sql)
    assert collector.scalar("SELECT count() FROM v_calls") == SPANS
    assert collector.scalar("SELECT count() FROM llm_calls WHERE tenant_id = 'victim'") == SPANS
    assert collector.scalar("SELECT count() FROM context_steps") == 0
    assert _query(collector, "SELECT count() FROM evil")[0] == 400  # nothing was created


@pytest.mark.parametrize(
    "value",
    [
        "victim' OR '1'='1",
        "x'; DROP TABLE llm_calls; --",
        "') UNION ALL SELECT tenant_id FROM llm_calls --",
        "\\'; SYSTEM SHUTDOWN; --",
        "{t:String}",
    ],
)
def test_parameters_are_bound_never_spliced(collector: CollectorProcess, value: str) -> None:
    status, reply = _query(collector, "SELECT count() FROM v_calls WHERE tenant_id = {t:String}", t=value)
    assert (status, reply["rows"]) == (200, [[0]])
    status, reply = _query(collector, "SELECT {t:String} AS echoed", t=value)
    assert (status, reply["rows"]) == (200, [[value]])


@pytest.mark.parametrize(
    ("sql", "rows"),
    [
        ("SELECT ';DROP TABLE llm_calls' AS s", [[";DROP TABLE llm_calls"]]),  # a string, not a statement
        ("SELECT 1 AS x /* ; DROP TABLE llm_calls */", [[1]]),
        ("SELECT 1 AS x -- ; DROP TABLE llm_calls", [[1]]),
        ("WITH t AS (SELECT tenant_id FROM v_calls) SELECT count() FROM t", [[SPANS]]),
        ("SELECT x FROM (SELECT 1 AS x UNION ALL SELECT 2 AS x) ORDER BY x", [[1], [2]]),
        ("SELECT count() FROM v_calls;", [[SPANS]]),
        ("SELECT getSetting('readonly') AS r", [[1]]),  # the engine's own read-only mode is on too
    ],
)
def test_harmless_selects_run(collector: CollectorProcess, sql: str, rows: list[list[Any]]) -> None:
    status, reply = _query(collector, sql)
    assert (status, reply["rows"]) == (200, rows), reply


def test_results_are_bounded(collector: CollectorProcess) -> None:
    status, reply = _query(collector, "SELECT number FROM numbers(100000000)")
    assert status == 400 and reply["error"]  # more rows than admin.query_max_rows is an error


def test_an_oversized_query_body_is_refused_before_it_is_read(collector: CollectorProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", collector.admin_port, timeout=30)
    conn.putrequest("POST", "/v1/query")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(2 << 20))
    conn.endheaders()  # the body is never sent: the answer must not wait for it
    assert conn.getresponse().status == 413
    conn.close()
