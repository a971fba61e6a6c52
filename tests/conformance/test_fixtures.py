"""The recorded conformance fixtures are well-formed: each decodes, has a usage span and its ground truth."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.conformance.otlp import (
    FIXTURES,
    Setup,
    check_each,
    decode,
    fixture_name,
    fixture_paths,
    fixture_setups,
    fixture_spans,
    load,
)

PATHS = fixture_paths()
SETUPS = fixture_setups()
TRUE_CALL_KEYS = {
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "response_id",
}
#: The providers the stubs stand in for (the catalog's provider ids; for local servers, whose calls
#: nobody bills, the server's name: `stubs.LOCAL_PROVIDERS`; for a provider whose prices the catalog
#: does not list, its name there: `pricing.providers.UNLISTED_PROVIDERS`: IBM watsonx.ai's ``ibm``,
#: ``writer``, ``aleph_alpha``).
PROVIDERS = (
    "openai",
    "azure",
    "anthropic",
    "google",
    "aws",
    "mistral",
    "groq",
    "cohere",
    "together",
    "ollama",
    "vllm",
    "ibm",
    "writer",
    "aleph_alpha",
)
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def test_corpus_is_there() -> None:
    assert len(PATHS) >= 10
    providers = {call["provider"] for p in PATHS for call in load(p)["true_calls"]}
    assert providers == set(PROVIDERS)


@pytest.mark.parametrize("setup", SETUPS, ids=[s.name for s in SETUPS])
def test_fixtures_are_well_formed(setup: Setup) -> None:
    check_each(setup.fixtures, _check_well_formed)


def _check_well_formed(path: Path) -> None:
    fixture = load(path)
    assert path.name == fixture_name(
        fixture["library"], fixture["version"], fixture["call_style"], fixture.get("beside", "")
    )
    # the largest: OpenLIT's CrewAI spans (a span per step of the agent's executor, each with the agent's
    # and task's settings), 22 kB; then pydantic-ai's spans with OpenInference's attributes added, 17 kB
    assert path.stat().st_size < 24_000, "keep fixtures small"

    packages = fixture["packages"]
    assert packages.get(fixture["library"]) == fixture["version"], (
        "the library's resolved version is recorded"
    )
    assert all(isinstance(v, str) and v for v in packages.values())
    assert "opentelemetry-sdk" in packages or "@opentelemetry/sdk-trace-node" in packages

    calls = fixture["true_calls"]
    assert calls, "ground truth from the stubs"
    for call in calls:
        assert call.keys() >= TRUE_CALL_KEYS
        assert call["provider"] in PROVIDERS and call["model"]
        assert all(isinstance(call[k], int) and call[k] >= 0 for k in TOKEN_KEYS)
        assert call["input_tokens"] >= call["cache_read_tokens"] + call["cache_write_tokens"], (
            "inclusive input"
        )
        assert call["output_tokens"] >= call["reasoning_tokens"]

    assert fixture["otlp"], "at least one export request"
    for body in fixture["otlp"]:
        assert decode(base64.b64decode(body, validate=True)), "each export request holds spans"
    spans = fixture_spans(fixture)
    assert any(s.model and s.has_usage for s in spans), "a span with a model and token usage"
    assert all(len(s.trace_id) == 32 and len(s.span_id) == 16 and s.scope for s in spans)


def test_index_lists_the_fixtures() -> None:
    index = json.loads((FIXTURES / "_index.json").read_text(encoding="utf-8"))
    listed = {name for setup in index.values() for name in setup.get("fixtures", [])}
    assert listed == {p.name for p in PATHS}
    # the per-setup checks see every fixture once
    assert sorted(path for setup in SETUPS for path in setup.paths) == PATHS
