"""Azure OpenAI: a request names a deployment, the answer the model deployed under it; the official
OpenAI instrumentation names the client library (``openai``) whatever host it called. Recorded in
tests/testdata/conformance/*+azure-*.json."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tokenbook.genai import semconv
from tokenbook.genai.calls import span_provider
from tokenbook.genai.decisions import RULE_CROSS_LAYER, Candidate, Decision, decide
from tokenbook.genai.pricing.catalog import CATALOG_NAME, PriceCatalog
from tokenbook.genai.pricing.providers import AZURE_OPENAI, catalog_provider, provider_of_host
from tokenbook.genai.usage import Usage

USAGE = Usage(1501, 41, 1024, 0, 0, present=True)
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("host", "azure"),
    [
        ("conformance.openai.azure.com", True),
        ("my-resource.openai.azure.com", True),
        ("MY-RESOURCE.OPENAI.AZURE.COM", True),
        ("my-apim.azure-api.net", True),
        ("my-resource.cognitiveservices.azure.com", True),
        ("my-project.services.ai.azure.com", True),
        ("api.openai.com", False),
        ("openai.azure.com.example.org", False),
        ("notopenai.azure.com", False),
        ("127.0.0.1", False),
        ("", False),
    ],
)
def test_an_azure_openai_host(host: str, azure: bool) -> None:
    assert (provider_of_host(host) == "azure") is azure


@pytest.mark.parametrize(
    ("attrs", "provider"),
    [
        # opentelemetry-instrumentation-genai-openai 1.3b0 on an AzureOpenAI client: failed before ("openai")
        ({"gen_ai.provider.name": "openai", "server.address": "x.openai.azure.com"}, AZURE_OPENAI),
        ({"server.address": "x.openai.azure.com"}, AZURE_OPENAI),  # no provider named
        ({"gen_ai.provider.name": "openai", "server.address": "api.openai.com"}, "openai"),
        ({"gen_ai.provider.name": "openai", "server.address": "127.0.0.1"}, "openai"),
        ({"gen_ai.provider.name": "openai"}, "openai"),
        # OpenLLMetry 0.62.4 and OpenInference 0.1.66 name Azure themselves
        ({"gen_ai.provider.name": "azure.ai.openai", "server.address": "x.openai.azure.com"}, AZURE_OPENAI),
        ({"llm.provider": "azure", "llm.system": "openai"}, "azure"),
        # another provider named on an Azure host (Claude in Azure AI Foundry) keeps its name
        ({"gen_ai.provider.name": "anthropic", "server.address": "x.services.ai.azure.com"}, "anthropic"),
        ({}, ""),
    ],
)
def test_the_span_provider_is_azure_on_an_azure_host(attrs: dict[str, object], provider: str) -> None:
    assert span_provider(attrs) == provider
    assert semconv.SERVER_ADDRESS == "server.address"


def test_an_azure_call_is_priced_at_the_catalogs_azure_price_and_says_whose_list_it_is() -> None:
    """genai-prices lists few OpenAI models under azure and falls back to openai's list for the rest:
    the price source says so."""
    catalog = PriceCatalog()
    own = catalog.unit_prices("azure", "o3-mini-2025-01-31", NOW)
    assert not isinstance(own, str) and own.source == f"{CATALOG_NAME} azure/o3-mini"
    fallback = catalog.unit_prices("azure.ai.openai", "gpt-4o-mini-2024-07-18", NOW)
    assert not isinstance(fallback, str)
    assert fallback.provider == "azure"
    fell_back = "(openai's price: azure lists none of its own)"
    assert fallback.source == f"{CATALOG_NAME} azure/gpt-4o-mini {fell_back}"


def test_the_price_source_of_one_provider_does_not_leak_into_anothers() -> None:
    """The azure entry of gpt-4o-mini is openai's own price object: priced first for azure, the
    openai calls after it were labelled azure/gpt-4o-mini (the unit prices were cached by price
    object alone)."""
    catalog = PriceCatalog()
    azure = catalog.quote("azure", "gpt-4o-mini-2024-07-18", USAGE, time.time_ns())
    openai = catalog.quote("openai", "gpt-4o-mini-2024-07-18", USAGE, time.time_ns())
    assert azure.picos == openai.picos and azure.picos is not None
    assert openai.source == f"{CATALOG_NAME} openai/gpt-4o-mini"
    assert azure.source.startswith(f"{CATALOG_NAME} azure/gpt-4o-mini")
    flex = catalog.unit_prices("azure", "o3-mini", NOW, "flex")
    flex_openai = catalog.unit_prices("openai", "o3-mini", NOW, "flex")
    for found, provider in ((flex, "azure"), (flex_openai, "openai")):
        assert isinstance(found, str) or found.provider == provider


def test_a_deployment_name_is_never_priced_as_a_model() -> None:
    catalog = PriceCatalog()
    quote = catalog.quote("azure.ai.openai", "prod-chat", USAGE, time.time_ns())
    assert quote.picos is None and quote.status == "unpriced"
    assert "deployment" in quote.source
    assert catalog_provider("azure.ai.openai") == "azure"


def _cand(span: str, trace: str, **kw: object) -> Candidate:
    base: dict[str, object] = dict(
        tenant="t", trace_id=trace * 32, span_id=span, parent_span_id="", ancestors=(), kind="model", rank=2,
        scope_name="openinference.instrumentation.openai", service_instance="svc",
        model="gpt-4o-mini-2024-07-18", response_id="", input_tokens=1503, output_tokens=43,
        start_us=1_000_000, end_us=2_000_000, quote_status="priced", has_usage=True,
    )  # fmt: skip
    base.update(kw)
    return Candidate(**base)  # type: ignore[arg-type]


def test_a_layer_that_names_the_deployment_is_the_same_call_as_the_layer_that_names_the_model() -> None:
    """OpenInference's LangChain spans of an AzureChatOpenAI stream name the deployment (prod-chat,
    unpriced), the OpenAI instrumentor's span (another trace) the model: failed before, both billed."""
    client = _cand("1", "a")
    langchain = _cand(
        "2", "b", scope_name="openinference.instrumentation.langchain", rank=3, model="prod-chat",
        quote_status="unpriced", start_us=900_000, end_us=2_100_000,
    )  # fmt: skip
    got = decide([client, langchain], {})
    assert got[("t", "a" * 32, "1")] == Decision("priced", "", "")
    assert got[("t", "b" * 32, "2")] == Decision("duplicate_layer", RULE_CROSS_LAYER, "1")


def test_the_layer_that_knows_the_price_bills_before_one_that_does_not() -> None:
    named = _cand("1", "a", rank=1, model="prod-chat", quote_status="unpriced")
    priced = _cand("2", "b", scope_name="other", rank=2, start_us=900_000, end_us=2_100_000)
    got = decide([named, priced], {})
    assert got[("t", "b" * 32, "2")] == Decision("priced", "", "")
    assert got[("t", "a" * 32, "1")] == Decision("duplicate_layer", RULE_CROSS_LAYER, "2")


def test_two_priced_models_of_other_families_are_never_one_call() -> None:
    a = _cand("1", "a")
    b = _cand("2", "b", scope_name="other", model="o3-mini", start_us=900_000, end_us=2_100_000)
    assert all(d.billing_rule == "" for d in decide([a, b], {}).values())
