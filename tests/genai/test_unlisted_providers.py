"""Hosted providers whose prices the catalog does not list (IBM watsonx.ai, Replicate, Amazon
SageMaker): a call of theirs is unpriced (never 0), and never priced from another provider's list by its
model's name (``openai/gpt-oss-120b`` on watsonx.ai is not OpenAI's; ``anthropic/claude-4-sonnet`` on
Replicate is billed by Replicate; a SageMaker endpoint serves the customer's own model), unless a price
override names it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.genai.overrides import override_file
from tokenbook.genai.billing import STATUS_UNPRICED
from tokenbook.genai.pricing.catalog import PriceCatalog
from tokenbook.genai.pricing.providers import unlisted_provider
from tokenbook.genai.usage import Usage

USAGE = Usage(1200, 80, 0, 0, 0, present=True)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        # OpenLLMetry's watsonx spans (gen_ai.system "Watsonx"), the semantic conventions' name
        ("Watsonx", "openai/gpt-oss-120b"),
        ("ibm.watsonx.ai", "mistralai/mistral-large"),
        ("watsonx", "ibm-granite/granite-4.0-h-micro"),
        ("Watsonx", "ibm/granite-3-3-8b-instruct"),
        # OpenLLMetry's Replicate spans (gen_ai.system "Replicate")
        ("Replicate", "openai/gpt-4o-mini"),
        ("replicate", "anthropic/claude-4-sonnet"),
        # a SageMaker endpoint named after the model it serves
        ("aws.sagemaker", "gpt-4o-mini"),
        ("SageMaker", "gpt-4o-mini"),
        # OpenLIT's names (gen_ai.system): IBM watsonx.ai, and APIs with prices of their own
        ("ibm.watson.ai", "openai/gpt-oss-120b"),
        ("ai21", "openai/gpt-4o-mini"),
        ("premai", "gpt-4o-mini"),
        ("rekaai", "claude-3-5-haiku-20241022"),
        ("huggingface", "openai/gpt-oss-120b"),
        # OpenLLMetry's Aleph Alpha and Writer spans; an OpenAI-compatible host named as the provider
        ("AlephAlpha", "gpt-4o-mini"),
        ("writer", "gpt-4o-mini"),
        ("deepinfra", "openai/gpt-oss-120b"),
    ],
)
def test_a_call_of_a_provider_the_catalog_does_not_list_is_unpriced(provider: str, model: str) -> None:
    """Failed before for every name but granite-3-3: a provider the catalog does not know fell back to
    the model's name, and priced watsonx.ai's openai/gpt-oss-120b as OpenAI's, its mistral-large as
    Mistral's, Replicate's openai/gpt-4o-mini as OpenAI's, a SageMaker endpoint as OpenAI's model."""
    quote = PriceCatalog().quote(provider, model, USAGE, time.time_ns())
    assert quote.status == STATUS_UNPRICED
    assert quote.picos is None
    assert "lists none of" in quote.source


@pytest.mark.parametrize(
    ("name", "provider"),
    [
        ("Watsonx", "ibm"),
        ("ibm.watsonx.ai", "ibm"),
        ("watsonx.ai", "ibm"),
        ("Replicate", "replicate"),
        ("aws.sagemaker", "sagemaker"),
        ("Amazon-SageMaker", "sagemaker"),
        ("openai", None),
        ("portkey", None),  # a gateway: its calls are priced by the model's name
        ("", None),
    ],
)
def test_unlisted_provider_names(name: str, provider: str | None) -> None:
    assert unlisted_provider(name) == provider


def test_a_price_override_prices_an_unlisted_providers_model(tmp_path: Path) -> None:
    overrides = override_file(
        tmp_path,
        entry="watsonx-gpt-oss",
        provider="Watsonx",
        model="openai/gpt-oss-120b",
        source="our watsonx.ai contract",
    )
    quote = PriceCatalog(overrides).quote("Watsonx", "openai/gpt-oss-120b", USAGE, time.time_ns())
    assert quote.picos is not None
    assert "watsonx-gpt-oss" in quote.source or "watsonx.ai contract" in quote.source


def test_a_gateway_is_still_priced_by_the_models_name() -> None:
    quote = PriceCatalog().quote("portkey", "openai/gpt-4o-mini", USAGE, time.time_ns())
    assert quote.picos is not None
