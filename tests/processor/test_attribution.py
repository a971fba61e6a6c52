"""Attribution through Baggage: threads, asyncio, nesting, and a real W3C HTTP hop on loopback."""

from __future__ import annotations

import asyncio
import contextvars
import http.server
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import baggage, context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tests.loopback import serving_thread
from tokenbook.processor import ATTRIBUTION_COLUMNS, attribute, context_id_of

from .conftest import chat_attrs

PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def test_attribute_sets_and_restores_baggage():
    with attribute(tenant="acme", user="alice", context_id="ticket-42", session="s1") as items:
        assert items == {
            "tenant.id": "acme",
            "user.id": "alice",
            "tokenbook.context.id": "ticket-42",
            "session.id": "s1",
        }
        assert baggage.get_baggage("tenant.id") == "acme"
        with attribute(user="bob", feature="search"):
            assert baggage.get_baggage("user.id") == "bob"
            assert baggage.get_baggage("tenant.id") == "acme"  # inherited
            assert baggage.get_baggage("app.feature") == "search"
        assert baggage.get_baggage("user.id") == "alice"
    assert baggage.get_baggage("tenant.id") is None


@pytest.mark.parametrize("bad", ["", 5])
def test_attribute_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="tenant"), attribute(tenant=bad):
        pass


def test_context_id_of_falls_back_to_trace_id():
    assert context_id_of({}, "ab" * 16) == "ab" * 16
    assert context_id_of({"session.id": ""}, "t") == "t"
    assert ATTRIBUTION_COLUMNS["app.feature"] == "feature"


def test_attribution_crosses_threads(pipeline):
    p = pipeline()

    def work(i):
        with p.tracer.start_as_current_span(f"chat {i}", attributes=chat_attrs()):
            pass

    with attribute(tenant="acme", user="alice"):
        ctx = contextvars.copy_context()
        thread = threading.Thread(target=ctx.run, args=(work, 0))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(2) as pool:
            for i in (1, 2):
                pool.submit(contextvars.copy_context().run, work, i).result()
    for i in range(3):
        assert p.attrs(f"chat {i}")["tenant.id"] == "acme"


def test_attribution_crosses_asyncio_tasks(pipeline):
    p = pipeline()

    async def call(i: str) -> None:
        await asyncio.sleep(0)
        with p.tracer.start_as_current_span(f"chat {i}", attributes=chat_attrs()):
            await asyncio.sleep(0)

    async def request(tenant: str, n: int) -> None:
        with attribute(tenant=tenant):
            await asyncio.gather(*(call(f"{tenant}-{i}") for i in range(n)))

    async def main() -> None:
        await asyncio.gather(request("acme", 3), request("globex", 3))

    asyncio.run(main())
    for tenant in ("acme", "globex"):
        for i in range(3):
            assert p.attrs(f"chat {tenant}-{i}")["tenant.id"] == tenant


def test_attribution_crosses_a_real_http_hop(pipeline):
    """Client injects W3C traceparent + baggage; the server extracts them and its span is attributed."""
    p = pipeline()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ctx = PROPAGATOR.extract({k.lower(): v for k, v in self.headers.items()})
            token = context.attach(ctx)
            try:
                with p.tracer.start_as_current_span("chat server", attributes=chat_attrs()):
                    pass
            finally:
                context.detach(token)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = serving_thread(server)
    thread.start()
    try:
        headers: dict[str, str] = {}
        with (
            attribute(tenant="acme", user="alice", context_id="ticket-42"),
            p.tracer.start_as_current_span("client") as client_span,
        ):
            PROPAGATOR.inject(headers)
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as resp:
                assert resp.status == 204
    finally:
        server.shutdown()
        server.server_close()
    assert "baggage" in headers
    a = p.attrs("chat server")
    assert (a["tenant.id"], a["user.id"], a["tokenbook.context.id"]) == ("acme", "alice", "ticket-42")
    server_span = p.spans()["chat server"]
    assert server_span.context.trace_id == client_span.get_span_context().trace_id
    assert server_span.parent.is_remote
    assert a["tokenbook.workflow.name"] == "chat server"  # the local root of the server process


def _server_parents_on_the_extracted_context(p, carrier, *, inner_baggage=None):
    """A server as the mcp SDK's own middleware is one: its tool span is started on the context
    extracted from the request (`context=`), which is not made current; the tool's code then calls a
    model, in the server's own context (Baggage `inner_baggage`, if any)."""
    ctx = PROPAGATOR.extract(carrier)
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "ask_weather"}
    with p.tracer.start_as_current_span("tools/call ask_weather", context=ctx, attributes=tool):
        assert baggage.get_baggage("tenant.id") is None  # the client's Baggage is not current here
        token = context.attach(baggage.set_baggage(*inner_baggage)) if inner_baggage else None
        try:
            with p.tracer.start_as_current_span("chat in tool", attributes=chat_attrs()):
                pass
        finally:
            if token is not None:
                context.detach(token)


def test_a_call_under_a_span_started_on_an_extracted_context_takes_that_spans_attribution(pipeline):
    """The tool span is attributed from the Baggage of its (explicit) parent context; the model call
    inside it, started where no Baggage holds attribution, takes its parent span's."""
    p = pipeline()
    carrier: dict[str, str] = {}
    with (
        attribute(tenant="acme", user="alice", context_id="ticket-42", feature="mcp"),
        p.tracer.start_as_current_span("client"),
    ):
        PROPAGATOR.inject(carrier)
    _server_parents_on_the_extracted_context(p, carrier)
    wanted = {
        "tenant.id": "acme",
        "user.id": "alice",
        "tokenbook.context.id": "ticket-42",
        "app.feature": "mcp",
    }
    for name in ("tools/call ask_weather", "chat in tool"):
        a = p.attrs(name)
        assert {k: a.get(k) for k in wanted} == wanted, name
    chat = p.spans()["chat in tool"]
    assert chat.context.trace_id == p.spans()["client"].context.trace_id


def test_a_calls_own_baggage_wins_over_its_parent_spans_attribution(pipeline):
    """Attribution in the call's own context wins whole: the parent span's is not mixed in."""
    p = pipeline()
    carrier: dict[str, str] = {}
    with attribute(tenant="acme", user="alice"), p.tracer.start_as_current_span("client"):
        PROPAGATOR.inject(carrier)
    _server_parents_on_the_extracted_context(p, carrier, inner_baggage=("tenant.id", "globex"))
    a = p.attrs("chat in tool")
    assert a["tenant.id"] == "globex"
    assert "user.id" not in a


def test_a_call_under_a_plain_span_without_attribution_gets_none(pipeline):
    p = pipeline()
    with (
        p.tracer.start_as_current_span("request", attributes={"http.method": "GET"}),
        p.tracer.start_as_current_span("chat plain", attributes=chat_attrs()),
    ):
        pass
    assert not {k for k in p.attrs("chat plain") if k in ("tenant.id", "user.id", "tokenbook.context.id")}
