"""An OpenAI client pointed at another provider's OpenAI-compatible API: the OpenAI instrumentations
name the provider ``openai`` whatever the host (opentelemetry-instrumentation-genai-openai 1.3b0 records
the host in ``server.address``); the host says whose call it is, by the catalog's API patterns."""

from __future__ import annotations

import time

import pytest

from tokenbook.genai.calls import span_model, span_provider
from tokenbook.genai.pricing.catalog import CATALOG_NAME, PriceCatalog
from tokenbook.genai.pricing.providers import (
    UNLISTED_HOSTS,
    provider_of_host,
    unlisted_host,
    unlisted_provider,
)
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
        # a pattern that leaves the top-level domain open (``https://api\.moonshot\.``): Kimi's
        # international and Chinese APIs
        ("api.moonshot.ai", "moonshotai"),
        ("api.moonshot.cn", "moonshotai"),
        ("api.moonshotx.ai", None),
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
        ("api.moonshot.ai", "kimi-k2-0905-preview", "moonshotai"),
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


@pytest.mark.parametrize(
    ("attrs", "model"),
    [
        # OpenLLMetry's OpenAI instrumentation (0.62.4) drops a model ID's organisation from the answer's
        # model: the request's full ID is the model's name
        (
            {"gen_ai.request.model": "openai/gpt-oss-120b", "gen_ai.response.model": "gpt-oss-120b"},
            "openai/gpt-oss-120b",
        ),
        (
            {
                "gen_ai.request.model": "Qwen/Qwen2.5-7B-Instruct",
                "gen_ai.response.model": "Qwen2.5-7B-Instruct",
            },
            "Qwen/Qwen2.5-7B-Instruct",
        ),
        # the answer's own model otherwise
        ({"gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024-07-18"},
         "gpt-4o-mini-2024-07-18"),
        ({"gen_ai.request.model": "prod-chat", "gen_ai.response.model": "gpt-4o-mini-2024-07-18"},
         "gpt-4o-mini-2024-07-18"),
        ({"gen_ai.request.model": "openai/gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024-07-18"},
         "gpt-4o-mini-2024-07-18"),
        ({"gen_ai.request.model": "a/b/gemini-2.5-flash", "gen_ai.response.model": "gemini-2.5-flash"},
         "gemini-2.5-flash"),
        ({"llm.model_name": "meta-llama/Llama-3.1-8B-Instruct"}, "meta-llama/Llama-3.1-8B-Instruct"),
    ],
)  # fmt: skip
def test_the_model_is_the_answers_unless_it_dropped_the_requests_prefix(
    attrs: dict[str, object], model: str
) -> None:
    assert span_model(attrs) == model


def test_an_openai_clients_call_to_groq_recorded_by_openllmetry_is_priced_as_groqs() -> None:
    """Failed before: OpenLLMetry records only the client's base URL (no server.address) and the answer's
    model without its prefix: priced as OpenAI's gpt-oss-120b."""
    attrs = {
        "gen_ai.provider.name": "openai",
        "gen_ai.openai.api_base": "https://api.groq.com/openai/v1",
        "gen_ai.request.model": "openai/gpt-oss-120b",
        "gen_ai.response.model": "gpt-oss-120b",
    }
    quote = PriceCatalog().quote(
        span_provider(attrs), span_model(attrs), Usage(1200, 80, 0, 0, 0, present=True), None
    )
    assert quote.picos is not None and quote.source.startswith(f"{CATALOG_NAME} groq/")


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("api.deepinfra.com", "deepinfra"),
        ("API.DeepInfra.com.", "deepinfra"),
        ("integrate.api.nvidia.com", "nvidia"),
        ("router.huggingface.co", "huggingface"),
        ("us-south.ml.cloud.ibm.com", "ibm.watsonx.ai"),
        ("eu-de.ml.cloud.ibm.com", "ibm.watsonx.ai"),
        ("runtime.sagemaker.eu-west-1.amazonaws.com", "aws.sagemaker"),
        ("api.deepinfra.com.example.org", None),
        ("deepinfra.com", None),
        ("bedrock-runtime.us-east-1.amazonaws.com", None),  # the catalog's (aws)
        ("api.openai.com", None),
        ("localhost", None),
        ("", None),
    ],
)
def test_the_api_host_of_a_provider_the_catalog_does_not_list_names_it(
    host: str, provider: str | None
) -> None:
    assert unlisted_host(host) == provider


def test_every_unlisted_host_names_a_provider_the_catalog_leaves_unpriced() -> None:
    assert all(unlisted_provider(provider) is not None for _, provider in UNLISTED_HOSTS)


@pytest.mark.parametrize(
    ("attrs", "provider"),
    [
        (
            {"server.address": "api.deepinfra.com", "gen_ai.response.model": "openai/gpt-oss-120b"},
            "deepinfra",
        ),
        # OpenLLMetry: the client's base URL, and the answer's model without its organisation
        (
            {
                "gen_ai.openai.api_base": "https://api.deepinfra.com/v1/openai",
                "gen_ai.request.model": "openai/gpt-oss-120b",
                "gen_ai.response.model": "gpt-oss-120b",
            },
            "deepinfra",
        ),
        (
            {"server.address": "integrate.api.nvidia.com", "gen_ai.response.model": "openai/gpt-oss-120b"},
            "nvidia",
        ),
        (
            {"server.address": "router.huggingface.co", "gen_ai.response.model": "openai/gpt-oss-120b"},
            "huggingface",
        ),
        (
            {"server.address": "us-south.ml.cloud.ibm.com", "gen_ai.response.model": "openai/gpt-oss-120b"},
            "ibm.watsonx.ai",
        ),
    ],
)
def test_an_openai_clients_call_to_a_provider_the_catalog_does_not_list_is_unpriced(
    attrs: dict[str, object], provider: str
) -> None:
    """Failed before: the span's provider stayed ``openai`` and ``openai/gpt-oss-120b`` was priced from
    OpenAI's list, which is not what DeepInfra, NVIDIA, Hugging Face or IBM bill."""
    attrs = {"gen_ai.provider.name": "openai", **attrs}
    assert span_provider(attrs) == provider
    quote = PriceCatalog().quote(
        span_provider(attrs), span_model(attrs), Usage(1200, 80, 0, 0, 0, present=True), None
    )
    assert quote.picos is None
    # the same model on the OpenAI API's own host, or a gateway of the operator's, is OpenAI's
    for host in ("api.openai.com", "llm-gateway.internal.example"):
        openai = {**attrs, "server.address": host}
        assert span_provider(openai) == "openai"
