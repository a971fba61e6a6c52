"""Regression tests for attacks that got past the old keyword scanner (`readonly.check_select`).

The scanner disagreed with ClickHouse about where comments and strings end (ClickHouse nests
``/* */`` comments, has ``$$...$$`` heredoc strings and backquoted identifiers). Through the admin
query API, a tenant-scoped query token could then lift its tenant filter with a subquery's SETTINGS,
write a file on the host with INTO OUTFILE and read ``system.processes`` / ``system.parts``; with auth
off, ``file()`` and ``url()`` ran. Each case here goes through the real admin API in process, against
the embedded engine, and must be refused (400) without any effect.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stores import DatabasePool
from tokenbook.collector.admin import AdminServer
from tokenbook.collector.auth import parse_tokens, token_digest
from tokenbook.collector.config import AdminConfig
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.storage.store import Store

ACME = "tb-query-acme-attacks"
OPERATOR = "tb-admin-all-attacks"


@pytest.fixture(scope="module")
def store(database_pool: DatabasePool) -> Iterator[Store]:
    with database_pool.store() as s:
        s.command(
            f"INSERT INTO {s.database}.context_steps (tenant_id, context_id, trace_id, span_id, kind)"
            " VALUES ('acme', 'c1', 't1', 's1', 'tool'), ('globex', 'c2', 't2', 's2', 'tool')"
        )
        yield s


def _server(store: Store, *, auth: bool) -> AdminServer:
    tokens = None
    if auth:
        tokens = parse_tokens(
            [
                {"sha256": token_digest(ACME), "tenant": "acme", "scopes": ["query"]},
                {"sha256": token_digest(OPERATOR), "tenant": "*", "scopes": ["admin"]},
            ]
        )
    server = AdminServer(
        AdminConfig("127.0.0.1:0", 10.0, 1000),
        store,
        IngestMetrics(),
        ready=lambda: (True, ""),
        tokens=tokens,
    )
    server.start()
    return server


@pytest.fixture(scope="module")
def with_auth(store: Store) -> Iterator[AdminServer]:
    server = _server(store, auth=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def without_auth(store: Store) -> Iterator[AdminServer]:
    server = _server(store, auth=False)
    yield server
    server.stop()


def _query(server: AdminServer, sql: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/v1/query",
        data=json.dumps({"sql": sql}).encode(),
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


LIFT_TENANT_FILTER = [
    # heredoc: the scanner reads `'$$ ... --'` as one string literal, hiding SETTINGS
    "SELECT DISTINCT tenant_id FROM (SELECT tenant_id, $$'$$ AS q FROM context_steps"
    " SETTINGS additional_table_filters = {}) --'",
    # nested comment: the scanner ends the comment at the first */, then reads a string to the -- '
    "SELECT DISTINCT tenant_id FROM (SELECT tenant_id FROM context_steps /* /* */ ' */"
    " SETTINGS additional_table_filters = {}) -- '",
]


@pytest.mark.parametrize("sql", LIFT_TENANT_FILTER)
def test_a_tenant_token_cannot_lift_its_filter_with_hidden_settings(with_auth: AdminServer, sql: str) -> None:
    status, reply = _query(with_auth, sql, ACME)
    assert status == 400, reply
    assert "SETTINGS" in reply["error"]


def test_the_operator_sees_both_tenants(with_auth: AdminServer) -> None:
    """The fixture holds two tenants: the refusals above are not an empty table's."""
    status, reply = _query(with_auth, "SELECT DISTINCT tenant_id FROM context_steps ORDER BY 1", OPERATOR)
    assert (status, reply["rows"]) == (200, [["acme"], ["globex"]])
    status, reply = _query(with_auth, "SELECT DISTINCT tenant_id FROM context_steps ORDER BY 1", ACME)
    assert (status, reply["rows"]) == (200, [["acme"]])


@pytest.mark.parametrize(
    "template",
    [
        "SELECT 1 AS a, $$'$$ AS b INTO OUTFILE $${path}$$ --'",
        "SELECT 1 AS a /* /* */ ' */ INTO OUTFILE '{path}' -- '",
    ],
)
@pytest.mark.parametrize("token", [ACME, OPERATOR])
def test_no_token_writes_a_file_with_into_outfile(
    with_auth: AdminServer, tmp_path: Path, template: str, token: str
) -> None:
    target = tmp_path / "stolen.tsv"
    status, reply = _query(with_auth, template.format(path=target), token)
    assert status == 400, reply
    assert "INTO OUTFILE" in reply["error"]
    assert not target.exists()


@pytest.mark.parametrize(
    ("sql", "table"),
    [
        ("SELECT query FROM `system`.processes", "system.processes"),
        ("SELECT name, rows FROM `system`.`parts`", "system.parts"),
        ("SELECT query FROM system . processes", "system.processes"),
    ],
)
def test_a_tenant_token_cannot_read_system_tables(with_auth: AdminServer, sql: str, table: str) -> None:
    status, reply = _query(with_auth, sql, ACME)
    assert status == 400, reply
    assert f"table {table} is not in the" in reply["error"]


@pytest.mark.parametrize(
    ("sql", "function"),
    [
        ("SELECT * FROM `file`('/etc/hostname', 'LineAsString')", "file"),
        ("SELECT * FROM `url`('http://127.0.0.1:9/', 'LineAsString', 's String')", "url"),
        ("SELECT `file`('/etc/hostname') AS f", "file"),
    ],
)
def test_without_auth_nothing_reads_files_or_urls(without_auth: AdminServer, sql: str, function: str) -> None:
    status, reply = _query(without_auth, sql)
    assert status == 400, reply
    assert f"{function}()" in reply["error"]


def test_system_columns_of_the_tokenbook_database_are_readable(
    without_auth: AdminServer, store: Store
) -> None:
    """Not an attack: the old scanner refused this with a misleading 'SYSTEM is not allowed'."""
    status, reply = _query(
        without_auth, "SELECT name FROM system.columns WHERE table = 'context_steps' AND name = 'tenant_id'"
    )
    assert (status, reply.get("rows")) == (200, [["tenant_id"]]), reply
    status, reply = _query(without_auth, "SELECT DISTINCT database FROM system.columns")
    assert (status, reply.get("rows")) == (200, [[store.database]]), reply
