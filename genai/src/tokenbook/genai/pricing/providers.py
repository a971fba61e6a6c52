"""Provider names: OTel's ``gen_ai.provider.name`` / ``gen_ai.system`` values -> genai-prices ids.

genai-prices loads only when a name outside `PROVIDER_ALIASES` is looked up in its catalog: importing
it costs 12-20 MiB (pydantic, its HTTP client, its data), which a process that reads the pricing files
(overrides, price books) but prices nothing itself, such as the collector with its row-building
workers, never needs.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "AZURE_OPENAI",
    "BEDROCK_VENDORS",
    "PROVIDER_ALIASES",
    "catalog_provider",
    "is_azure_host",
    "provider_of_model",
]

#: The semantic conventions' provider name of Azure OpenAI (``gen_ai.provider.name``).
AZURE_OPENAI: Final = "azure.ai.openai"

#: OTel `gen_ai.provider.name` / `gen_ai.system` values (and common spellings) -> genai-prices provider id.
PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "google": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "aws": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure": "azure",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "together_ai": "together",
    "together": "together",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "moonshot": "moonshotai",
    # LangChain's names (`ls_provider`), which LangSmith exports
    "amazon_bedrock": "aws",
    "google_vertexai": "google",
    "google_genai": "google",
}


def catalog_provider(name: str) -> str | None:
    """The genai-prices provider id for an OTel (or catalog) provider name; None when unknown/empty."""
    key = name.strip().lower()
    if not key:
        return None
    if (alias := PROVIDER_ALIASES.get(key)) is not None:
        return alias
    # Deliberately lazy (module docstring): genai-prices is imported at the first catalog lookup.
    snapshot = importlib.import_module("genai_prices.data_snapshot").get_snapshot()
    if any(p.id == key for p in snapshot.providers):
        return key
    return None


#: The vendors of Bedrock's model IDs (``<vendor>.<model>-v<n>[:<n>]``), as Bedrock spells them.
BEDROCK_VENDORS: Final = (
    "anthropic", "amazon", "meta", "mistral", "cohere", "ai21", "deepseek", "qwen", "openai", "writer",
    "twelvelabs", "stability",
)  # fmt: skip
#: A Bedrock model ID: an optional cross-region inference prefix, the model's vendor, a dot, the model,
#: and its version (``anthropic.claude-sonnet-4-5-20250929-v1:0``, ``us.amazon.nova-pro-v1:0``); or the
#: ARN of a foundation model or inference profile that ends in one
#: (``arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-...-v1:0``). No other
#: provider names its models this way.
_BEDROCK_MODEL: Final = re.compile(
    r"(?:arn:aws[a-z-]*:bedrock:[a-z0-9-]*:\d*:[a-z-]+/)?"
    r"(?:(?:us|us-gov|eu|apac|jp|au|ca|in|global)\.)?"
    rf"(?:{'|'.join(BEDROCK_VENDORS)})"
    r"\.[a-z0-9][a-z0-9.\-]*-v\d+(?::\d+)?",
    re.IGNORECASE,
)


def provider_of_model(model: str) -> str | None:
    """The genai-prices provider id a model ID alone names, where the span names no known provider:
    ``aws`` for a Bedrock model ID or ARN (frameworks such as Strands Agents put their own name where
    the provider goes); None otherwise (the catalog then infers it from the model's name, as it can)."""
    return "aws" if _BEDROCK_MODEL.fullmatch(model.strip()) else None


#: The hosts of Azure OpenAI and Azure AI Foundry endpoints (a resource's subdomain of one of these;
#: genai-prices' ``azure`` API pattern).
_AZURE_HOST: Final = re.compile(
    r"(?:[a-z0-9-]+\.)+(?:openai\.azure\.com|azure-api\.net|cognitiveservices\.azure\.com"
    r"|services\.ai\.azure\.com)\.?",
    re.IGNORECASE,
)


def is_azure_host(address: str) -> bool:
    """Whether `address` (``server.address``: a host name) is an Azure OpenAI or Azure AI Foundry
    endpoint (``<resource>.openai.azure.com``, ``<resource>.cognitiveservices.azure.com``,
    ``<project>.services.ai.azure.com``, an API Management gateway ``<name>.azure-api.net``)."""
    return _AZURE_HOST.fullmatch(address.strip()) is not None
