"""Bearer-token auth against the real collector process: both receivers and the admin API.

Tokens are configured by their SHA-256 only. With auth on: no/bad token -> 401 / UNAUTHENTICATED, a
token without the scope -> 403 / PERMISSION_DENIED; a tenant-scoped sender's spans are attributed to
its tenant whatever they claim; a tenant-scoped query token reads only its tenant's rows, through any
table or view.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import REPO, CollectorProcess, SpanFactory
from tokenbook.collector.auth import token_digest

pytestmark = pytest.mark.e2e  # starts processes

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
ACME_INGEST = "tb-ingest-acme-4d5e6f"
GATEWAY = "tb-gateway-all-7a8b9c"
ACME_QUERY = "tb-query-acme-1a2b3c"
OPERATOR = "tb-admin-all-0f0e0d"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory):
    tokens = [
        {"sha256": token_digest(ACME_INGEST), "tenant": "acme", "scopes": ["ingest"]},
        {"sha256": token_digest(GATEWAY), "tenant": "*", "scopes": ["ingest"]},
        {"sha256": token_digest(ACME_QUERY), "tenant": "acme", "scopes": ["query"]},
        {"sha256": token_digest(OPERATOR), "tenant": "*", "scopes": ["admin"]},
    ]
    c = CollectorProcess(tmp_path_factory.mktemp("auth") / "data", auth={"enabled": True, "tokens": tokens})
    c.start()
    yield c
    assert c.stop() == 0
    log = c.log()
    assert all(t not in log for t in (ACME_INGEST, GATEWAY, ACME_QUERY, OPERATOR))


def _http(url: str, body: bytes | None, token: str | None, content_type: str = "application/x-protobuf"):
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _grpc(collector: CollectorProcess, body: bytes, token: str | None) -> grpc.StatusCode:
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        try:
            channel.unary_unary(EXPORT)(body, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _query(collector: CollectorProcess, sql: str, token: str | None) -> tuple[int, Any]:
    body = json.dumps({"sql": sql}).encode()
    status, _, reply = _http(collector.admin_url + "/v1/query", body, token, "application/json")
    return status, json.loads(reply)


def test_receivers_refuse_missing_bad_and_unscoped_tokens(collector: CollectorProcess) -> None:
    body = encode_spans(SpanFactory().chats(2, tenant="acme")).SerializeToString()
    status, headers, _ = _http(collector.http_url, body, None)
    assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert _http(collector.http_url, body, "not-a-token")[0] == 401
    assert _http(collector.http_url, body, ACME_QUERY)[0] == 403
    assert _grpc(collector, body, None) == grpc.StatusCode.UNAUTHENTICATED
    assert _grpc(collector, body, "not-a-token") == grpc.StatusCode.UNAUTHENTICATED
    assert _grpc(collector, body, ACME_QUERY) == grpc.StatusCode.PERMISSION_DENIED
    status, _, text = _http(collector.admin_url + "/metrics", None, OPERATOR)
    assert status == 200 and b"tokenbook_collector_received_spans_total 0" in text  # nothing got past auth


@pytest.fixture(scope="module")
def tenants(collector: CollectorProcess) -> dict[str, int]:
    """Spans sent with acme's token (claiming globex and initech) and through the '*' gateway."""
    factory = SpanFactory()
    grpc_exporter = GrpcExporter(
        endpoint=collector.grpc_endpoint, insecure=True, headers={"authorization": f"Bearer {ACME_INGEST}"}
    )
    assert grpc_exporter.export(factory.chats(3, tenant="globex")) == SpanExportResult.SUCCESS
    acme = HttpExporter(endpoint=collector.http_url, headers={"Authorization": f"Bearer {ACME_INGEST}"})
    assert acme.export(factory.chats(2, tenant="initech")) == SpanExportResult.SUCCESS
    gateway = HttpExporter(endpoint=collector.http_url, headers={"Authorization": f"Bearer {GATEWAY}"})
    assert gateway.export(factory.chats(4, tenant="globex")) == SpanExportResult.SUCCESS  # '*' keeps it
    sql = "SELECT tenant_id, count() FROM v_calls GROUP BY tenant_id ORDER BY tenant_id"
    aggregates = (  # refreshed asynchronously after the ledger rows: wait for them too
        "SELECT (SELECT uniqExact(tenant_id) FROM v_context_costs),"
        " (SELECT uniqExact(tenant_id) FROM v_cost_daily)"
    )
    rows: dict[str, int] = {}
    for _ in range(300):
        rows = dict(map(tuple, _query(collector, sql, OPERATOR)[1]["rows"]))
        if sum(rows.values()) == 9 and _query(collector, aggregates, OPERATOR)[1]["rows"] == [[2, 2]]:
            break
        time.sleep(0.1)
    return rows


def test_the_credential_decides_the_tenant(tenants: dict[str, int]) -> None:
    assert tenants == {"acme": 5, "globex": 4}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT DISTINCT tenant_id FROM v_calls",
        "SELECT DISTINCT tenant_id FROM llm_calls",
        "SELECT DISTINCT tenant_id FROM (SELECT * FROM llm_calls FINAL)",
        "SELECT DISTINCT tenant_id FROM v_context_costs",
        "SELECT DISTINCT tenant_id FROM v_cost_daily",
        "WITH x AS (SELECT tenant_id FROM llm_calls) SELECT DISTINCT tenant_id FROM x",
        "SELECT DISTINCT tenant_id FROM v_calls WHERE tenant_id IN (SELECT tenant_id FROM llm_calls)",
    ],
)
def test_a_tenant_query_token_reads_only_its_tenant(collector, tenants, sql: str) -> None:
    status, reply = _query(collector, sql, ACME_QUERY)
    assert (status, reply["rows"]) == (200, [["acme"]])
    status, reply = _query(collector, sql + " ORDER BY tenant_id", OPERATOR)
    assert (status, reply["rows"]) == (200, [["acme"], ["globex"]])


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM mergeTreeIndex('tokenbook', 'llm_calls')",  # would list every tenant's keys
        "SELECT count() FROM v_calls WHERE span_id IN"
        " (SELECT span_id FROM mergeTreeIndex('tokenbook', 'llm_calls'))",
        "SELECT * FROM mergeTreeAnalyzeIndexes('tokenbook', 'llm_calls')",
    ],
)
def test_a_tenant_query_token_cannot_read_parts_directly(collector, tenants, sql: str) -> None:
    status, reply = _query(collector, sql, ACME_QUERY)
    assert status == 400 and "is not allowed" in reply["error"]


def test_a_tenant_query_token_keeps_harmless_functions(collector, tenants) -> None:
    sql = "SELECT format('{}', count()) FROM v_calls AS c, numbers(1) AS n"
    status, reply = _query(collector, sql, ACME_QUERY)
    assert (status, reply.get("rows")) == (200, [["5"]]), reply


def test_the_cli_presents_its_token_from_the_environment(collector, tenants) -> None:
    sql = "SELECT DISTINCT tenant_id FROM v_calls"
    command = [sys.executable, "-m", "tokenbook", "sql", sql, "--admin", f"127.0.0.1:{collector.admin_port}"]
    run = functools.partial(subprocess.run, command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run(env={**os.environ, "TOKENBOOK_TOKEN": ""}).returncode != 0  # 401 without a token
    out = run(env={**os.environ, "TOKENBOOK_TOKEN": ACME_QUERY, "COLUMNS": "200"})
    assert out.returncode == 0 and "acme" in out.stdout and "globex" not in out.stdout


def test_admin_endpoints_need_their_scope(collector: CollectorProcess) -> None:
    assert _query(collector, "SELECT 1", None)[0] == 401
    assert _query(collector, "SELECT 1", "nope")[0] == 401
    assert _query(collector, "SELECT 1", ACME_INGEST)[0] == 403
    assert _http(collector.admin_url + "/metrics", None, ACME_QUERY)[0] == 403
    assert _http(collector.admin_url + "/metrics", None, OPERATOR)[0] == 200
    assert _http(collector.admin_url + "/healthz", None, None)[0] == 200  # probes stay open
