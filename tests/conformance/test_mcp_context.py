"""MCP fixtures: a client (the `mcp` SDK, stdio) puts tokenbook's attribution keys into W3C Baggage and
calls a tool of a server subprocess, which asks OpenAI. Each fixture holds the spans of both processes.

The server's model call must land in the client's trace (under the client's tool call), and the collector
attributes it to what its span carries: the client's Baggage where the server made it current (an MCP
instrumentor that propagates the context: OpenInference's, OpenLLMetry's) and a span processor copied
it onto the span; nothing where the server only parents its spans on the client's trace (the mcp SDK's
own middleware without an instrumentor: the client's Baggage does not reach the tool's code).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.conformance.otlp import fixture_paths, load
from tests.conformance.replay import _KEYS, _catalog
from tokenbook.collector.decode.spans import SpanRecord, decode_protobuf
from tokenbook.collector.ingest.rows import RowBuilder
from tokenbook.collector.storage.ledger import CallRow

CLIENT = "tokenbook-conformance"
SERVER = "tokenbook-conformance-mcp-server"
# what driver.py's MCP client puts into Baggage (MCP_BAGGAGE), as the ledger's columns
BAGGAGE = {
    "tenant_id": "acme",
    "user_id": "user-7",
    "project_id": "weather-app",
    "feature": "mcp-weather",
    "context_id": "ctx-mcp-1",
}
PATHS = [p for p in fixture_paths() if p.stem.endswith("-mcp_tool")]
# fixtures whose server does not make the client's Baggage current (the mcp SDK's own context only)
NO_BAGGAGE_IN_TOOL = {"mcp-2.3.0+baggage-mcp_tool"}


def _decoded(path: Path) -> tuple[list[SpanRecord], list[CallRow]]:
    """The fixture's spans (both processes) and the call rows the collector builds of them, without the
    replay's tenant override."""
    builder = RowBuilder(_catalog())
    records: list[SpanRecord] = []
    calls: list[CallRow] = []
    for body in load(path)["otlp"]:
        batch = decode_protobuf(base64.b64decode(body), _KEYS).records
        records += batch
        calls += builder.build(list(batch)).calls
    return records, calls


def test_there_are_mcp_fixtures() -> None:
    assert len(PATHS) >= 4, PATHS


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_the_servers_model_call_is_in_the_clients_trace(path: Path) -> None:
    records, calls = _decoded(path)
    (call,) = [c for c in calls if c.price_status == "priced"]
    assert call.service_name == SERVER
    # its ancestors, across both processes' exports, reach the client's spans (the tool call it sent)
    by_id = {(r.trace_id.hex(), r.span_id.hex()): r for r in records}
    span = by_id[(call.trace_id, call.span_id)]
    services = []
    while span.parent_span_id:
        span = by_id[(call.trace_id, span.parent_span_id.hex())]
        services.append(span.service_name)
    assert services and services[-1] == CLIENT, services


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_the_servers_model_call_is_attributed_from_the_clients_baggage(path: Path) -> None:
    records, calls = _decoded(path)
    (call,) = [c for c in calls if c.price_status == "priced"]
    columns = {k: getattr(call, k) for k in BAGGAGE}
    tool = [r for r in records if r.service_name == SERVER and r.name == "tools/call ask_weather"]
    if "+baggage" not in path.stem:  # no span processor copied Baggage onto spans: the trace is the context
        assert columns == {k: call.trace_id if k == "context_id" else "" for k in BAGGAGE}
    elif path.stem in NO_BAGGAGE_IN_TOOL:
        # the server's tool span carries the client's Baggage (it is started on the extracted context),
        # but the tool's code runs without it: its model call is not attributed
        assert tool and all(r.attrs.get("tenant.id") == "acme" for r in tool)
        assert columns == {k: call.trace_id if k == "context_id" else "" for k in BAGGAGE}
    else:
        assert columns == BAGGAGE
