"""Provider names and the models that name their provider (`pricing.providers`)."""

from __future__ import annotations

import time

import pytest

from tokenbook.genai.pricing.catalog import CATALOG_NAME, PriceCatalog
from tokenbook.genai.pricing.providers import catalog_provider, provider_of_model
from tokenbook.genai.usage import Usage


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "aws"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws"),
        ("amazon.nova-pro-v1:0", "aws"),
        ("meta.llama3-70b-instruct-v1:0", "aws"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws"),
        ("in.anthropic.claude-haiku-4-5-20251001-v1:0", "aws"),
        # ARNs of an inference profile and of a foundation model (failed before: None)
        (
            "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "aws",
        ),
        ("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0", "aws"),
        (
            "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/a1b2c3",
            None,
        ),  # names no model
        ("gpt-4.1", None),  # a dot, but no vendor prefix and no version
        ("claude-sonnet-4-5", None),
        ("anthropic.claude", None),
        ("", None),
    ],
)
def test_a_bedrock_model_id_names_its_provider(model: str, provider: str | None) -> None:
    assert provider_of_model(model) == provider


def test_a_framework_in_the_providers_place_does_not_leave_a_bedrock_call_unpriced() -> None:
    """Strands Agents 1.62.0 writes its own name as `gen_ai.system` (tests/testdata/conformance/
    strands-agents-1.62.0-agent_bedrock.json). Failed before: unpriced."""
    assert catalog_provider("strands-agents") is None
    usage = Usage(3609, 35, 2048, 1536, 0, present=True)
    catalog = PriceCatalog()
    model = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    quote = catalog.quote("strands-agents", model, usage, time.time_ns())
    assert (
        quote.picos is not None
        and quote.picos == catalog.quote("aws.bedrock", model, usage, time.time_ns()).picos
    )


def test_a_prefix_naming_another_provider_than_the_spans_is_not_stripped() -> None:
    usage = Usage(10, 1, 0, 0, 0, present=True)
    assert PriceCatalog().quote("anthropic", "openai/gpt-4o-mini", usage, time.time_ns()).picos is None


@pytest.mark.parametrize(
    ("model", "priced_as"),
    [
        ("nova-lite-v1:0", "amazon.nova-lite-v1:0"),
        ("llama3-3-70b-instruct-v1:0", "meta.llama3-3-70b-instruct-v1:0"),
        ("claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
    ],
)
def test_a_bedrock_model_id_without_its_vendor_is_priced_as_the_one_model_it_names(
    model: str, priced_as: str
) -> None:
    """OpenLLMetry's Bedrock instrumentation (0.62.4) names the model without its vendor prefix
    (tests/testdata/conformance/opentelemetry-instrumentation-bedrock-0.62.4-invoke_nova.json, _llama).
    Failed before: unpriced for Nova and Llama."""
    usage = Usage(3610, 36, 2048, 1536, 0, present=True)
    catalog = PriceCatalog()
    quote = catalog.quote("aws.bedrock", model, usage, time.time_ns())
    assert quote.picos is not None
    assert quote.picos == catalog.quote("aws.bedrock", priced_as, usage, time.time_ns()).picos


@pytest.mark.parametrize(
    ("provider", "model"),
    [("aws.bedrock", "nova-nonesuch-v1:0"), ("aws.bedrock", "gpt-4o"), ("openai", "nova-lite-v1:0")],
)
def test_a_vendorless_name_that_names_no_bedrock_model_stays_unpriced(provider: str, model: str) -> None:
    usage = Usage(10, 1, 0, 0, 0, present=True)
    assert PriceCatalog().quote(provider, model, usage, time.time_ns()).picos is None


def test_an_inference_profile_arn_is_priced_as_its_profile() -> None:
    usage = Usage(3609, 35, 2048, 1536, 0, present=True)
    catalog = PriceCatalog()
    profile = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    arn = f"arn:aws:bedrock:us-east-1:111122223333:inference-profile/{profile}"
    want = catalog.quote("aws.bedrock", profile, usage, time.time_ns()).picos
    assert want is not None
    assert catalog.quote("aws.bedrock", arn, usage, time.time_ns()).picos == want
    assert catalog.quote("strands-agents", arn, usage, time.time_ns()).picos == want  # no provider named


@pytest.mark.parametrize(
    ("provider", "model", "priced_as"),
    [
        # OpenInference's LiteLLM spans (tests/testdata/conformance/openinference-instrumentation-litellm-*)
        ("openai", "openai/gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("anthropic", "anthropic/claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5")),
        ("", "openai/gpt-4o-mini", ("openai", "gpt-4o-mini")),
        # OpenInference's Vertex AI spans (tests/testdata/conformance/openinference-instrumentation-vertexai)
        (
            "google",
            "projects/tb-project/locations/us-central1/publishers/google/models/gemini-2.5-flash",
            ("google", "gemini-2.5-flash"),
        ),
        (
            "",
            "projects/tb-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929",
            ("google", "claude-sonnet-4-5"),  # Claude on Vertex AI is billed by Google
        ),
        ("vertexai", "publishers/google/models/gemini-2.5-flash", ("google", "gemini-2.5-flash")),
        ("gcp.gemini", "models/gemini-2.5-flash", ("google", "gemini-2.5-flash")),  # the Gemini API's names
    ],
)
def test_a_model_named_the_litellm_way_or_by_its_resource_name_is_priced_as_the_model_it_names(
    provider: str, model: str, priced_as: tuple[str, str]
) -> None:
    """Failed before: unpriced (a LiteLLM-style name, and a resource name)."""
    usage = Usage(1301, 125, 1024, 0, 64, present=True)
    catalog = PriceCatalog()
    quote = catalog.quote(provider, model, usage, time.time_ns())
    assert quote.picos is not None and quote.picos == catalog.quote(*priced_as, usage, time.time_ns()).picos


def test_a_resource_name_of_an_unknown_model_stays_unpriced() -> None:
    usage = Usage(10, 1, 0, 0, 0, present=True)
    catalog = PriceCatalog()
    for model in ("projects/p/locations/l/endpoints/1234", "models/no-such-model"):
        assert catalog.quote("google", model, usage, time.time_ns()).picos is None


@pytest.mark.parametrize(
    ("name", "provider"),
    [
        ("TogetherAI", "together"),  # OpenLLMetry's Together AI instrumentation (0.62.4)
        ("Together-AI", "together"),
        ("together.ai", "together"),
        ("FireworksAI", "fireworks"),
        ("MistralAI", "mistral"),
        ("google.ai.studio", "google"),  # OpenLIT's name of the Gemini API
        ("strands-agents", None),  # a framework's name stays unknown
        ("portkey", None),  # a gateway is no provider of the catalog
        ("ai", None),
    ],
)
def test_a_provider_name_with_separators_or_an_ai_suffix_names_its_catalog_provider(
    name: str, provider: str | None
) -> None:
    """tests/testdata/conformance/opentelemetry-instrumentation-together-0.62.4-together_chat.json:
    gen_ai.system is ``TogetherAI``. Failed before: None (unpriced, or priced from another provider's
    list for a model that several list, such as openai/gpt-oss-120b)."""
    assert catalog_provider(name) == provider


def test_a_together_ai_call_named_the_openllmetry_way_is_priced_from_togethers_list() -> None:
    usage = Usage(1204, 34, 0, 0, 0, present=True)
    catalog = PriceCatalog()
    now = time.time_ns()
    quote = catalog.quote("TogetherAI", "openai/gpt-oss-120b", usage, now)
    assert quote.picos is not None
    assert quote.picos == catalog.quote("together", "openai/gpt-oss-120b", usage, now).picos
    assert quote.picos != catalog.quote("openai", "gpt-oss-120b", usage, now).picos


def test_a_gateways_call_of_a_model_one_provider_lists_is_priced_from_that_providers_list() -> None:
    """The official Portkey instrumentation (1.3b0) names the gateway, ``portkey``, as the provider of a
    call that Portkey sent to Groq (tests/testdata/conformance/
    opentelemetry-instrumentation-genai-portkey-1.3b0-portkey_groq_chat.json); OpenInference's (0.1.22)
    names none. Failed before: unpriced."""
    usage = Usage(1105, 30, 0, 0, 0, present=True)
    catalog = PriceCatalog()
    now = time.time_ns()
    groq = catalog.quote("groq", "llama-3.3-70b-versatile", usage, now)
    assert groq.picos is not None
    for provider in ("portkey", ""):
        quote = catalog.quote(provider, "llama-3.3-70b-versatile", usage, now)
        assert quote.picos == groq.picos, provider
        assert quote.source.startswith(f"{CATALOG_NAME} groq/"), quote.source


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("portkey", "text-embedding-3-small"),  # OpenAI's and Azure's: no guess
        ("", "meta-llama/llama-3.3-70b-instruct"),  # OpenRouter's, Novita's, ...
        ("portkey", "no-such-model-anywhere"),
        ("anthropic", "llama-3.3-70b-versatile"),  # a known provider that does not list it
    ],
)
def test_a_model_several_or_no_providers_list_stays_unpriced_without_a_known_provider(
    provider: str, model: str
) -> None:
    usage = Usage(1105, 30, 0, 0, 0, present=True)
    assert PriceCatalog().quote(provider, model, usage, time.time_ns()).picos is None
