"""Convention profiles by instrumentation scope."""

from __future__ import annotations

import pytest

from tokenbook.genai.profiles import DEFAULT_PROFILE, PROFILES, RANK_SDK, profile_of, version_tuple


@pytest.mark.parametrize(
    ("scope", "version", "name"),
    [
        ("com.anthropic.sdk.python", "2.17.0", "anthropic-sdk"),
        ("opentelemetry.instrumentation.genai.anthropic", "1.3b0", "otel-genai"),
        ("opentelemetry.instrumentation.openai.v1", "0.62.4", "openllmetry"),
        ("opentelemetry.instrumentation.anthropic", "0.62.4", "openllmetry-anthropic"),
        ("openlit.instrumentation.anthropic", "", "openlit-anthropic"),
        ("openlit.instrumentation.openai", "", "openlit"),
        ("openinference.instrumentation.openai", "0.1.66", "openinference"),
        ("openinference.instrumentation.openai_agents", "2.6.0", "openinference-agents"),
        ("opentelemetry.instrumentation.google_genai", "1.3b0", "otel-google-genai"),
        ("opentelemetry.instrumentation.google_generativeai", "0.21.5", "openllmetry-google"),
        ("opentelemetry.instrumentation.openai_v2", "2.3b0", "otel-openai-v2"),
        ("opentelemetry.util.genai.handler", "1.1b0", "otel-util-genai"),
        ("litellm", "", "litellm"),
        ("strands.telemetry.tracer", "", "strands"),
        ("logfire.openai", "5.4.0", "logfire"),
        ("gcp.vertex.agent", "2.13.0", "google-adk"),
        ("semantic_kernel.utils.telemetry.model_diagnostics.decorators", "", "semantic-kernel"),
        ("langfuse-sdk", "5.2.0", "langfuse"),
        ("gen_ai", "", "ai-sdk"),
        ("ai", "", "ai-sdk-legacy"),
        ("opentelemetry.instrumentation.botocore.bedrock-runtime", "0.66b2", "otel-botocore"),
        ("opentelemetry.instrumentation.bedrock", "0.62.4", "openllmetry-bedrock"),
        ("pydantic-ai", "2.78.0", "pydantic-ai"),
        ("langsmith", "", "langsmith"),
        ("langtrace_python_sdk.instrumentation.openai.instrumentation", "", "langtrace"),
        ("my.app", "1", "semconv"),
        ("", "", "semconv"),
        ("openinference.instrumentation.openaiX", "", "openinference"),  # dotted prefix, not string prefix
        ("openinferenceX", "", "semconv"),
    ],
)
def test_profile_of(scope: str, version: str, name: str) -> None:
    assert profile_of(scope, version).name == name


def test_only_libraries_passing_a_raw_exclusive_count_through_are_exclusive_and_sdk_ranks_first() -> None:
    exclusive = ["otel-botocore", "openlit-anthropic", "openllmetry-bedrock"]
    assert [p.name for p in PROFILES if not p.input_inclusive] == exclusive
    assert DEFAULT_PROFILE.input_inclusive
    assert min(PROFILES, key=lambda p: p.rank).rank == RANK_SDK


def test_version_tuple() -> None:
    assert version_tuple("1.3b0") == (1, 3, 0)
    assert version_tuple("") == ()
