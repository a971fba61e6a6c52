"""Local models (Ollama, vLLM, LM Studio, ...): run on the user's own hardware, billed by nobody. A call
of one is unpriced (never 0), and never priced as a hosted model that shares its name (``deepseek-r1:8b``
served by Ollama is not DeepSeek's ``deepseek-reasoner``; ``openai/gpt-oss-20b`` served by vLLM is not
OpenAI's ``gpt-oss-20b``), unless a price override names it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.genai.overrides import override_file
from tokenbook.genai.billing import STATUS_UNPRICED
from tokenbook.genai.calls import span_provider
from tokenbook.genai.pricing.catalog import PriceCatalog
from tokenbook.genai.pricing.providers import local_server
from tokenbook.genai.usage import Usage

USAGE = Usage(1200, 80, 0, 0, 0, present=True)
# model names of local servers that name a hosted model of the catalog too
COLLIDING = ("deepseek-r1:8b", "gpt-oss-20b", "openai/gpt-oss-20b")


@pytest.mark.parametrize("provider", ["ollama", "Ollama", "vllm", "lm_studio", "llama.cpp", "gpt4all"])
@pytest.mark.parametrize("model", [*COLLIDING, "llama3.1", "qwen2.5:7b"])
def test_a_local_servers_model_is_unpriced_whatever_hosted_model_shares_its_name(
    provider: str, model: str
) -> None:
    """Failed before for the colliding names: a provider the catalog does not know fell back to the
    model's name, and priced deepseek-r1:8b as DeepSeek's deepseek-reasoner, gpt-oss-20b as OpenAI's."""
    quote = PriceCatalog().quote(provider, model, USAGE, time.time_ns())
    assert quote.status == STATUS_UNPRICED
    assert quote.picos is None
    assert "local model server" in quote.source


def test_a_price_override_prices_a_local_model(tmp_path: Path) -> None:
    overrides = override_file(
        tmp_path, entry="gpu-box", provider="ollama", model="deepseek-r1:8b", source="our GPU's cost"
    )
    quote = PriceCatalog(overrides).quote("ollama", "deepseek-r1:8b", USAGE, time.time_ns())
    assert quote.picos is not None


@pytest.mark.parametrize(
    ("attrs", "provider"),
    [
        # the official OpenAI instrumentation and OpenLIT: server.address and server.port
        ({"gen_ai.provider.name": "openai", "server.address": "localhost", "server.port": 11434}, "ollama"),
        ({"gen_ai.provider.name": "openai", "server.address": "127.0.0.1", "server.port": "11434"}, "ollama"),
        ({"gen_ai.provider.name": "openai", "server.address": "ollama", "server.port": 11434}, "ollama"),
        ({"gen_ai.provider.name": "openai", "server.address": "localhost", "server.port": 8000}, "vllm"),
        ({"gen_ai.provider.name": "openai", "server.address": "127.0.0.1", "server.port": 1234}, "lm_studio"),
        ({"gen_ai.system": "openai", "server.address": "::1", "server.port": 8000}, "vllm"),
        # OpenLLMetry's OpenAI instrumentation: the client's base URL only
        (
            {"gen_ai.provider.name": "openai", "gen_ai.openai.api_base": "http://localhost:11434/v1/"},
            "ollama",
        ),
        ({"gen_ai.provider.name": "openai", "gen_ai.openai.api_base": "http://localhost:8000/v1/"}, "vllm"),
        (
            {"gen_ai.provider.name": "openai", "gen_ai.openai.api_base": "https://api.groq.com/openai/v1"},
            "groq",
        ),
        # server.address written as the client's base URL (Microsoft Agent Framework 1.23)
        ({"gen_ai.provider.name": "openai", "server.address": "http://localhost:11434/v1/"}, "ollama"),
        ({"gen_ai.provider.name": "openai", "server.address": "http://127.0.0.1:8000/v1"}, "vllm"),
        ({"gen_ai.provider.name": "openai", "server.address": "https://api.groq.com/openai/v1/"}, "groq"),
        (
            {
                "gen_ai.provider.name": "openai",
                "server.address": "https://my-resource.openai.azure.com/openai/v1/",
            },
            "azure.ai.openai",
        ),
        ({"gen_ai.provider.name": "openai", "server.address": "http://127.0.0.1:35641/v1/"}, "openai"),
        ({"gen_ai.provider.name": "openai", "server.address": "https://api.openai.com/v1/"}, "openai"),
        ({"gen_ai.provider.name": "openai", "server.address": "http://localhost:99999/v1"}, "openai"),
        # not a local server's well-known port: the provider the span names
        ({"gen_ai.provider.name": "openai", "server.address": "127.0.0.1", "server.port": 43567}, "openai"),
        (
            {"gen_ai.provider.name": "openai", "server.address": "api.example.com", "server.port": 8000},
            "openai",
        ),
        (
            {"gen_ai.provider.name": "openai", "gen_ai.openai.api_base": "https://api.openai.com/v1/"},
            "openai",
        ),
        ({"gen_ai.provider.name": "openai", "gen_ai.openai.api_base": "not a url:x"}, "openai"),
        ({"gen_ai.provider.name": "openai", "server.address": "localhost", "server.port": [8000]}, "openai"),
        ({"gen_ai.provider.name": "openai", "server.address": "localhost", "server.port": True}, "openai"),
        ({"gen_ai.provider.name": "openai", "gen_ai.openai.api_base": "http://localhost:99999/v1"}, "openai"),
        # a provider other than the OpenAI client's is kept
        (
            {"gen_ai.provider.name": "anthropic", "server.address": "localhost", "server.port": 11434},
            "anthropic",
        ),
    ],
)
def test_an_openai_client_on_a_local_servers_port_is_that_servers(
    attrs: dict[str, object], provider: str
) -> None:
    """Failed before: the span's provider stayed ``openai`` (OpenAI's price for gpt-oss-20b)."""
    assert span_provider(attrs) == provider


@pytest.mark.parametrize(
    ("address", "port", "server"),
    [
        ("127.0.0.1", 11434, "ollama"),
        ("gpu-box.internal", 11434, "ollama"),  # Ollama's port on any host
        ("localhost", 8000, "vllm"),
        ("127.0.0.2", 8000, "vllm"),
        ("[::1]", 8000, "vllm"),
        ("app.localhost", 1234, "lm_studio"),
        ("10.0.0.5", 8000, None),  # vLLM's port names it on a loopback host only
        ("localhost", 8001, None),
        ("localhost", None, None),
        ("", 11434, None),
    ],
)
def test_a_local_servers_port_names_it(address: str, port: int | None, server: str | None) -> None:
    assert local_server(address, port) == server
