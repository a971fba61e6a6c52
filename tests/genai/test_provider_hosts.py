"""An OpenAI client pointed at another provider's OpenAI-compatible API: the OpenAI instrumentations
name the provider ``openai`` whatever the host (opentelemetry-instrumentation-genai-openai 1.3b0 records
the host in ``server.address``); the host says whose call it is, by the catalog's API patterns."""

from __future__ import annotations

import time

import pytest

from tokenbook.genai.calls import span_provider
from tokenbook.genai.pricing.catalog import PriceCatalog
from tokenbook.genai.pricing.providers import provider_of_host
from tokenbook.genai.usage import Usage


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("api.groq.com", "groq"),
        ("api.deepseek.com", "deepseek"),
        ("api.together.xyz", "together"),
        ("openrouter.ai", "openrouter"),
        ("api.x.ai", "x-ai"),
        ("api.mistral.ai", "mistral"),
        ("api.fireworks.ai", "fireworks"),
        ("generativelanguage.googleapis.com", "google"),  # Gemini's OpenAI-compatible endpoint
        ("API.GROQ.COM.", "groq"),
        ("api.openai.com", None),  # OpenAI's own
        ("router.huggingface.co", None),  # one host, many providers by path
        ("api.groq.com.example.org", None),
        ("localhost", None),
        ("a." * 200 + "api.groq.com", None),  # longer than any DNS name
        ("", None),
    ],
)
def test_a_providers_api_host_names_it(host: str, provider: str | None) -> None:
    assert provider_of_host(host) == provider


@pytest.mark.parametrize(
    ("host", "model", "catalog_provider"),
    [
        ("api.groq.com", "llama-3.3-70b-versatile", "groq"),
        ("api.deepseek.com", "deepseek-chat", "deepseek"),
        ("api.x.ai", "grok-3", "x-ai"),
    ],
)
def test_an_openai_clients_call_to_another_provider_is_priced_as_that_providers(
    host: str, model: str, catalog_provider: str
) -> None:
    """Failed before: the span's provider stayed ``openai``, whose list has none of these models:
    unpriced."""
    attrs = {"gen_ai.provider.name": "openai", "server.address": host, "gen_ai.response.model": model}
    provider = span_provider(attrs)
    assert provider == catalog_provider
    usage = Usage(1200, 80, 0, 0, 0, present=True)
    catalog = PriceCatalog()
    quote = catalog.quote(provider, model, usage, time.time_ns())
    assert quote.picos is not None
    assert quote.picos == catalog.quote(catalog_provider, model, usage, time.time_ns()).picos


def test_a_provider_the_span_names_is_kept_on_any_host() -> None:
    attrs = {"gen_ai.provider.name": "anthropic", "server.address": "api.groq.com"}
    assert span_provider(attrs) == "anthropic"
