"""Who a call is for, as other SDKs and gateways record it: read into the ledger's attribution columns
and context when the span carries none of tokenbook's own (the tenant never: it comes from the
credential or ``tenant.id``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.otlp import FIXTURES, load
from tests.conformance.replay import decode_fixture
from tokenbook.collector.decode.spans import SpanRecord
from tokenbook.collector.ingest.rows import RowBuilder
from tokenbook.genai.pricing.catalog import PriceCatalog

CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 10,
    "tenant.id": "acme",
}


def _row(attrs: dict[str, Any]) -> Any:
    record = SpanRecord(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        parent_span_id=b"",
        name="chat gpt-4o-mini",
        start_ns=1_790_000_000_000_000_000,
        end_ns=1_790_000_001_000_000_000,
        error=False,
        service_name="svc",
        attrs={**CHAT, **attrs},
        outcome="",
    )
    (call,) = RowBuilder(PriceCatalog()).build([record]).calls
    return call


@pytest.mark.parametrize(
    ("attrs", "user", "team", "project", "context"),
    [
        (  # Traceloop's association properties
            {
                "traceloop.association.properties.user_id": "user-42",
                "traceloop.association.properties.session_id": "session-7",
            },
            "user-42",
            "",
            "",
            "session-7",
        ),
        ({"langfuse.user.id": "u1", "langfuse.session.id": "s1"}, "u1", "", "", "s1"),  # Langfuse
        (  # Laminar's association properties
            {
                "lmnr.association.properties.user_id": "u5",
                "lmnr.association.properties.session_id": "s5",
            },
            "u5",
            "",
            "",
            "s5",
        ),
        ({"mlflow.trace.user": "u2", "mlflow.trace.session": "s2"}, "u2", "", "", "s2"),  # MLflow
        (  # the AI SDK's telemetry metadata
            {"ai.telemetry.metadata.userId": "u6", "ai.telemetry.metadata.sessionId": "s6"},
            "u6",
            "",
            "",
            "s6",
        ),
        (  # LiteLLM's proxy: the key's user, team and project
            {
                "metadata.user_api_key_user_id": "u3",
                "metadata.user_api_key_team_id": "t3",
                "metadata.user_api_key_project_id": "p3",
            },
            "u3",
            "t3",
            "p3",
            "01" * 16,
        ),
        ({"enduser.id": "u4"}, "u4", "", "", "01" * 16),  # the conventions before user.id
        (  # tokenbook's own attribution (Baggage through the processor) comes first
            {"user.id": "mine", "session.id": "ctx", "langfuse.user.id": "u1", "langfuse.session.id": "s1"},
            "mine",
            "",
            "",
            "ctx",
        ),
    ],
)
def test_other_sdks_attribution_is_read_when_the_span_has_none_of_its_own(
    attrs: dict[str, Any], user: str, team: str, project: str, context: str
) -> None:
    """Failed before: user, team and project empty, the context the trace ID."""
    call = _row(attrs)
    assert (call.user_id, call.team_id, call.project_id, call.context_id) == (user, team, project, context)
    assert call.tenant_id == "acme"


def test_a_tenant_is_never_read_from_another_sdks_attributes() -> None:
    call = _row({"tenant.id": "", "metadata.user_api_key_team_id": "t3", "langfuse.user.id": "u1"})
    assert call.tenant_id != "t3" and call.tenant_id != "u1"


def test_traceloops_recorded_association_properties_attribute_its_calls() -> None:
    """traceloop-sdk 0.62.4's workflow (`Traceloop.set_association_properties`), as recorded."""
    fixture = load(FIXTURES / "traceloop-sdk-0.62.4-workflow.json")
    records = [r for batch in decode_fixture(fixture, "acme") for r in batch]
    calls = [c for c in RowBuilder(PriceCatalog()).build(records).calls if c.input_tokens]
    assert calls
    assert {(c.user_id, c.context_id) for c in calls} == {("user-42", "session-7")}


@pytest.mark.parametrize(
    "fixture", ["ai-5.0.285-chat_attributed", "arizeai-openinference-vercel-2.8.1-chat_attributed"]
)
def test_the_ai_sdks_recorded_telemetry_metadata_attributes_its_calls(fixture: str) -> None:
    """The AI SDK 5.0.285's `experimental_telemetry: {metadata: {userId, sessionId}}`, as recorded (alone,
    and with OpenInference's attributes added): written as ``ai.telemetry.metadata.userId`` /
    ``sessionId`` on its spans. Failed before: no user, the trace ID as the context."""
    records = [r for batch in decode_fixture(load(FIXTURES / f"{fixture}.json"), "acme") for r in batch]
    calls = [c for c in RowBuilder(PriceCatalog()).build(records).calls if c.input_tokens]
    assert calls
    assert {(c.user_id, c.context_id) for c in calls} == {("user-42", "session-7")}


def test_laminars_recorded_association_properties_attribute_its_calls() -> None:
    """lmnr 0.8.2's workflow (`@observe(user_id=..., session_id=...)`), as recorded: Laminar writes them
    as ``lmnr.association.properties.*`` on every span under it. Failed before: no user, the trace ID as
    the context."""
    fixture = load(FIXTURES / "lmnr-0.8.2-workflow.json")
    records = [r for batch in decode_fixture(fixture, "acme") for r in batch]
    calls = [c for c in RowBuilder(PriceCatalog()).build(records).calls if c.input_tokens]
    assert len(calls) == 2
    assert {(c.user_id, c.context_id) for c in calls} == {("user-42", "session-7")}
