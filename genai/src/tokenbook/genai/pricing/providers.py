"""Provider names: OTel's ``gen_ai.provider.name`` / ``gen_ai.system`` values -> genai-prices ids.

genai-prices loads only when a name outside `PROVIDER_ALIASES` is looked up in its catalog: importing
it costs 12-20 MiB (pydantic, its HTTP client, its data), which a process that reads the pricing files
(overrides, price books) but prices nothing itself, such as the collector with its row-building
workers, never needs.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "AZURE_OPENAI",
    "BEDROCK_VENDORS",
    "LOCAL_PROVIDERS",
    "PROVIDER_ALIASES",
    "UNLISTED_HOSTS",
    "UNLISTED_PROVIDERS",
    "catalog_provider",
    "is_local_provider",
    "local_server",
    "provider_of_host",
    "provider_of_model",
    "unlisted_host",
    "unlisted_provider",
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
    "google.ai.studio": "google",  # OpenLIT's name of the Gemini API
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


#: What a provider's name may have around its catalog ID: separators (``together_ai``, ``Together-AI``)
#: and an "AI" suffix (OpenLLMetry's ``TogetherAI``, ``MistralAI``).
_SEPARATORS: Final = re.compile(r"[\s_.\-]+")


def _bare(name: str) -> str:
    """`name` in lower case without its separators: how a provider's spellings are matched
    (``LM-Studio``, ``lm_studio`` and ``lmstudio`` alike)."""
    return _SEPARATORS.sub("", name.strip().lower())


def catalog_provider(name: str) -> str | None:
    """The genai-prices provider id for an OTel (or catalog) provider name; None when unknown/empty.
    A name that is neither an alias nor a catalog ID is looked up once more without its separators
    and then without an "AI" suffix (``TogetherAI``, OpenLLMetry's name of Together AI: ``together``)."""
    key = name.strip().lower()
    if not key:
        return None
    if (found := _known(key)) is not None:
        return found
    bare = _bare(key)
    for candidate in (bare, bare.removesuffix("ai")):
        if candidate and candidate != key and (found := _known(candidate)) is not None:
            return found
    return None


def _known(key: str) -> str | None:
    """The catalog ID `key` (lower case) names as an alias or as a catalog ID; else None."""
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


#: Catalog providers whose API host names no other provider: the OpenAI API's own (an OpenAI client
#: on it is OpenAI's, as the span says).
_OPENAI_HOSTS: Final = frozenset({"openai", "openai-decisions"})
_MAX_HOST: Final = 253  # the longest DNS name: a longer server.address names no provider's API


def _host(address: str) -> str:
    """A ``server.address`` as the host lookups compare it: lower case, without surrounding blanks or
    the root's trailing dot."""
    return address.strip().lower().rstrip(".")


@functools.lru_cache(maxsize=1024)
def provider_of_host(address: str) -> str | None:
    """The genai-prices provider id whose API is served at `address` (``server.address``: a host
    name), by the catalog's API patterns: ``azure`` for ``<resource>.openai.azure.com`` and the other
    Azure OpenAI and AI Foundry hosts, ``groq`` for ``api.groq.com``, ``deepseek``, ``together``,
    ``openrouter``, ``x-ai``, ``mistral``, ``google`` (``*.googleapis.com``), ``moonshotai``
    (``api.moonshot.ai``, ``api.moonshot.cn``), ...; None for the OpenAI API's own host, a host no
    provider's pattern matches, one that several do, or a provider whose pattern needs a path (a
    router that serves many providers on one host). Never raises."""
    host = _host(address)
    if not host or "/" in host or len(host) > _MAX_HOST:
        return None
    url = f"https://{host}/"
    snapshot = importlib.import_module("genai_prices.data_snapshot").get_snapshot()
    found = set()
    for provider in snapshot.providers:
        pattern = getattr(provider, "api_pattern", None)
        if not pattern or provider.id in _OPENAI_HOSTS:
            continue
        try:
            m = re.match(pattern, url)
        except re.error:
            continue
        # the whole host, or its labels up to a top-level domain the pattern leaves open (Kimi's
        # ``https://api\.moonshot\.``: api.moonshot.ai and api.moonshot.cn)
        if m is not None and (url[m.end() - 1] in "/." or url[m.end()] == "/"):
            found.add(provider.id)
    return found.pop() if len(found) == 1 else None


#: Servers that run models on the user's own hardware, by the provider names instrumentations give them
#: (lower case; ``gen_ai.system`` ``Ollama``, ``llm.provider`` ``ollama``) and the names `local_server`
#: gives: nobody's price list applies to their calls (a price override may price them), and the
#: catalog's hosted models that share a local model's name (``deepseek-r1:8b``, ``gpt-oss-20b``) are
#: not theirs.
LOCAL_PROVIDERS: Final = frozenset(
    {
        "ollama", "vllm", "lm_studio", "llama.cpp", "localai", "sglang", "llamafile",
        "text-generation-inference", "tgi", "gpt4all",
    }
)  # fmt: skip
#: The same names without separators: how `is_local_provider` matches any spelling of them
#: (``lmstudio``, ``llama_cpp``, ``LM-Studio``).
_LOCAL_BARE: Final = frozenset(_bare(name) for name in LOCAL_PROVIDERS)
#: Ollama's port (``OLLAMA_HOST``'s default, 11434): no hosted provider's API is served on it, so it
#: names Ollama on any host (``localhost``, a container's ``ollama``, a GPU box on the network).
_OLLAMA_PORT: Final = 11434
#: The default ports of other local servers, which name them on a loopback host only (elsewhere a port
#: such as 8000 serves anything): ``vllm serve`` (8000) and LM Studio's server (1234).
_LOOPBACK_PORTS: Final = {8000: "vllm", 1234: "lm_studio"}


#: Hosted providers that bill their calls at prices of their own, which the catalog does not list, by
#: the names instrumentations give them (lower case) -> the provider: IBM watsonx.ai (the semantic
#: conventions' ``ibm.watsonx.ai``, OpenLIT's ``ibm.watson.ai``, OpenLLMetry's ``Watsonx``), Replicate,
#: Amazon SageMaker (an endpoint serves the customer's own model, on the customer's instances), and the
#: other APIs instrumentations name (OpenLIT's ``ai21``, ``premai``, ``rekaai``, ``sarvam`` and
#: ``huggingface``, OpenLLMetry's ``AlephAlpha`` and ``writer``, OpenAI-compatible hosts such as
#: DeepInfra and NVIDIA's). Their models' names are often other providers' (``openai/gpt-oss-120b`` and
#: ``mistralai/mistral-large`` on watsonx.ai, ``meta/meta-llama-3-8b-instruct`` on Replicate, an
#: endpoint named after the model it serves): a call of theirs is unpriced unless a price override
#: prices it, never priced from another provider's list by the model's name. A name the catalog comes
#: to list is priced by the catalog.
UNLISTED_PROVIDERS: Final[Mapping[str, str]] = {
    "ibm.watsonx.ai": "ibm",
    "ibm.watson.ai": "ibm",
    "watsonx.ai": "ibm",
    "watsonx": "ibm",
    "ibm": "ibm",
    "replicate": "replicate",
    "aws.sagemaker": "sagemaker",
    "amazon_sagemaker": "sagemaker",
    "sagemaker": "sagemaker",
    "ai21": "ai21",
    "aleph_alpha": "aleph_alpha",
    "writer": "writer",
    "premai": "premai",
    "reka": "reka",
    "rekaai": "reka",
    "sarvam": "sarvam",
    "huggingface": "huggingface",
    "deepinfra": "deepinfra",
    "nvidia": "nvidia",
    "nvidia_nim": "nvidia",
}
#: The same names without separators: how `unlisted_provider` matches any spelling of them.
_UNLISTED_BARE: Final[Mapping[str, str]] = {_bare(k): v for k, v in UNLISTED_PROVIDERS.items()}


#: The API hosts of `UNLISTED_PROVIDERS` (full matches of the lower-cased ``server.address``) -> the
#: provider: an OpenAI client pointed at one of them records the provider as ``openai``, and its call
#: would be priced from OpenAI's list by a model name both serve (``openai/gpt-oss-120b`` on DeepInfra,
#: NVIDIA's API, watsonx.ai or Hugging Face's router); the host says it is theirs, hence unpriced.
#: Hugging Face's router serves providers the catalog lists by the path (``/cerebras``, ``/groq``), which
#: a span's host does not carry.
UNLISTED_HOSTS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"api\.deepinfra\.com"), "deepinfra"),
    (re.compile(r"integrate\.api\.nvidia\.com"), "nvidia"),
    (re.compile(r"(?:router|api-inference)\.huggingface\.co"), "huggingface"),
    (re.compile(r"(?:[a-z0-9-]+\.)?ml\.cloud\.ibm\.com"), "ibm.watsonx.ai"),  # <region>.ml.cloud.ibm.com
    (re.compile(r"api\.ai21\.com"), "ai21"),
    (re.compile(r"api\.writer\.com"), "writer"),
    (re.compile(r"api\.reka\.ai"), "reka"),
    (re.compile(r"api\.sarvam\.ai"), "sarvam"),
    (re.compile(r"api\.aleph-alpha\.com"), "aleph_alpha"),
    (re.compile(r"api\.replicate\.com"), "replicate"),
    (re.compile(r"runtime\.sagemaker\.[a-z0-9-]+\.amazonaws\.com"), "aws.sagemaker"),
)


@functools.lru_cache(maxsize=1024)
def unlisted_host(address: str) -> str | None:
    """The provider of `UNLISTED_PROVIDERS` whose API is served at `address` (``server.address``: a
    host name; `UNLISTED_HOSTS`), as a name `unlisted_provider` knows; None for any other host. Never
    raises."""
    host = _host(address)
    if len(host) > _MAX_HOST:
        return None
    return next((provider for pattern, provider in UNLISTED_HOSTS if pattern.fullmatch(host)), None)


def unlisted_provider(name: str) -> str | None:
    """The provider of `UNLISTED_PROVIDERS` that `name` (a span's provider, any spelling: ``Watsonx``,
    ``ibm.watsonx.ai``, ``Replicate``, ``aws.sagemaker``) names; None for any other name."""
    return _UNLISTED_BARE.get(_bare(name))


def is_local_provider(name: str) -> bool:
    """Whether `name` (a span's provider) is a local model server's (`LOCAL_PROVIDERS`)."""
    return _bare(name) in _LOCAL_BARE


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=1024)
def local_server(address: str, port: int | str) -> str | None:
    """The local model server (a `LOCAL_PROVIDERS` name) that `address` (``server.address``: a host
    name or IP address) and `port` (``server.port``) name by its default port: ``ollama`` for port
    11434 on any host; ``vllm`` (8000) and ``lm_studio`` (1234) on a loopback host (``localhost``,
    ``127.0.0.0/8``, ``::1``); None otherwise. Never raises."""
    host = _host(address)
    if not host or isinstance(port, bool):
        return None
    try:
        number = int(port)
    except (TypeError, ValueError):
        return None
    if number == _OLLAMA_PORT:
        return "ollama"
    server = _LOOPBACK_PORTS.get(number)
    return server if server is not None and _loopback(host) else None
