"""Records the conformance corpus: real instrumentation libraries, calling loopback provider stubs.

For each setup in `SETUPS`: a throwaway venv with the pinned packages (reused while its pins are the
same), the provider stubs and an OTLP/HTTP sink on 127.0.0.1, and `driver.py` run in that venv. Every
call style the driver makes becomes one fixture, `<library>-<version>-<call_style>.json`, holding the
raw OTLP export bodies (base64 protobuf) and the usage the stubs really answered (`true_calls`).

    .venv/bin/python tests/conformance/record.py [--only NAME ...] [--out DIR] [--venvs DIR]

Nothing here reaches beyond loopback except the package installs.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tests.conformance` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conformance import stubs
from tests.conformance.otlp import FIXTURES, decode, fixture_name

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver.py"
DRIVER_JS = HERE / "driver.mjs"
PYTHON = "python3.11"
DRIVER_TIMEOUT = 300


def otel(version: str) -> dict[str, str]:
    """The OpenTelemetry SDK and its OTLP/HTTP exporter at `version` (1.45.2 unless a library forbids it)."""
    return {"opentelemetry-sdk": version, "opentelemetry-exporter-otlp-proto-http": version}


OTEL = otel("1.45.2")
OPENAI = {"openai": "3.63.0"}
ANTHROPIC = {"anthropic": "2.17.0"}
GOOGLE_GENAI = {"google-genai": "3.6.1"}
# The Vertex AI SDK (vertexai.generative_models); aiohttp for its async REST transport (google-auth's
# async credentials). google-cloud-aiplatform 2.7.0 requires google-genai < 3.
AIPLATFORM = {"google-cloud-aiplatform": "2.7.0", "google-genai": "2.34.0", "aiohttp": "3.14.5"}
BOTO3 = {"boto3": "1.44.18"}
MISTRALAI = {"mistralai": "3.7.0"}
# OpenLLMetry's Mistral instrumentation (0.62.4) and OpenLIT's (1.45.0) import `mistralai.models` and wrap
# `mistralai.chat`, which mistralai 2 moved under `mistralai.client`: with the newest mistralai 1
MISTRALAI_1 = {"mistralai": "1.12.4"}
GROQ = {"groq": "1.7.0"}
OLLAMA = {"ollama": "0.6.3"}
COHERE = {"cohere": "7.3.1"}
# OpenLLMetry's Cohere instrumentation (0.62.4) instruments cohere < 6 only: with the newest cohere 5
COHERE_5 = {"cohere": "5.21.1"}
TL = "0.62.4"  # OpenLLMetry
# The OpenTelemetry JS SDK of the Node.js setups: sdk-trace-node's newest (2.12.1) requires an api < 1.10,
# and exporter-trace-otlp-proto 0.223.1 is the newest on that SDK line (0.300 and later need sdk-trace 3)
OTEL_JS = {
    "@opentelemetry/api": "1.9.1",
    "@opentelemetry/sdk-trace-node": "2.12.1",
    "@opentelemetry/sdk-trace-base": "2.12.1",
    "@opentelemetry/resources": "2.12.1",
    "@opentelemetry/exporter-trace-otlp-proto": "0.223.1",
}
AI_SDK = {
    "@ai-sdk/otel": "1.0.185",
    "ai": "7.0.185",
    "@ai-sdk/openai": "4.0.126",
    "@ai-sdk/anthropic": "3.0.140",
    "zod": "4.6.7",
    **OTEL_JS,
}
# The official SDKs for Node.js; openai 7 requires Node.js 22 (the recorder's is 20): its newest 6
OPENAI_JS = {"openai": "6.49.0"}
ANTHROPIC_JS = {"@anthropic-ai/sdk": "1.17.0"}
# OpenLLMetry's Anthropic instrumentation (0.27.0) wraps `Anthropic.Completions`, which @anthropic-ai/sdk 1
# removed (it throws on any 1.x): with the newest 0.x
ANTHROPIC_JS_0 = {"@anthropic-ai/sdk": "0.137.0"}
TL_JS = "0.27.0"  # OpenLLMetry JS
# OpenTelemetry JS's instrumentations (and Elastic's): prompts and answers not recorded (their default too)
OTEL_JS_NO_CONTENT = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"}
BEDROCK_JS = {"@aws-sdk/client-bedrock-runtime": "3.1178.0"}
# The Google Gen AI SDK for Node.js: OpenLLMetry's instrumentation (0.27.0) instruments @google/genai 1 only
# (>=1.0.0 <2.0.0): its newest 1
GOOGLE_GENAI_JS = {"@google/genai": "1.52.0"}
# Mastra: an agent (@mastra/core) with its observability (@mastra/observability) exported by its own
# OpenTelemetry exporter (@mastra/otel-exporter, which loads the OTLP exporter it is configured with)
MASTRA_JS = {
    "@mastra/core": "1.71.0",
    "@mastra/observability": "1.17.9",
    "@mastra/otel-exporter": "1.4.0",
    "@ai-sdk/openai": "4.0.126",
    "zod": "4.6.7",
    **OTEL_JS,
}
# LangChain.js: @langchain/openai 1.5.9 and later require openai 7 and Node.js 22 (the recorder's is 20): its
# newest on openai 6. @langchain/anthropic brings its own @anthropic-ai/sdk (0.122, ^0.122.0: no tracing of
# its own, and no provider instrumentation is handed it).
LANGCHAIN_JS = {
    "@langchain/core": "1.4.0",
    "@langchain/openai": "1.5.8",
    "@langchain/anthropic": "1.5.11",
    **OPENAI_JS,
    **OTEL_JS,
}
OI_LANGCHAIN_JS = {"@arizeai/openinference-instrumentation-langchain": "4.1.1"}
TL_LANGCHAIN_JS = {"@traceloop/instrumentation-langchain": TL_JS}
UTIL_GENAI = {"opentelemetry-util-genai": "1.3b0"}
LANGCHAIN = {"langchain-openai": "1.8.1", "langchain-core": "1.8.3"}
LANGCHAIN_AWS = {"langchain-aws": "1.9.1", "langchain-core": "1.8.3", **BOTO3}
OI_LANGCHAIN = {"openinference-instrumentation-langchain": "0.1.80"}
TL_LANGCHAIN = {"opentelemetry-instrumentation-langchain": TL}
# The official LangChain instrumentation instruments only where the `langchain` package is installed (its
# instrumentation dependency), not for langchain-core and the provider packages alone
OTEL_LANGCHAIN = {
    "opentelemetry-instrumentation-genai-langchain": "1.3b0",
    "langchain": "1.5.2",
    "langchain-anthropic": "1.7.10",
    **LANGCHAIN,
    **UTIL_GENAI,
}
# LangGraph, and LangChain 1's `create_agent` (the prebuilt ReAct agent, built on LangGraph)
LANGGRAPH = {
    "langgraph": "1.2.24",
    "langchain": "1.5.2",
    "langchain-anthropic": "1.7.10",
    **LANGCHAIN,
    **OPENAI,
    **ANTHROPIC,
    **OTEL,
}
OI_OPENAI = {"openinference-instrumentation-openai": "0.1.66"}
TL_OPENAI = {"opentelemetry-instrumentation-openai": "0.62.4"}
# Prompt and completion content off wherever a library captures it by default: a ledger needs none of it,
# and it would make the fixtures large.
OI_NO_CONTENT = {"OPENINFERENCE_HIDE_INPUTS": "true", "OPENINFERENCE_HIDE_OUTPUTS": "true"}
TL_NO_CONTENT = {"TRACELOOP_TELEMETRY": "false", "TRACELOOP_TRACE_CONTENT": "false"}
# crewai 1.15.30 requires openai < 3; LiteLLM (its `litellm` extra) for its LiteLLM route. Its anonymous
# telemetry (a provider of its own, exporting to CrewAI) and its trace upload off (OTEL_SDK_DISABLED
# would turn off the driver's provider too); LiteLLM's model cost map from its bundled copy.
CREWAI = {"crewai": "1.15.30", "litellm": "1.110.2", "openai": "2.54.0"}
CREWAI_ENV = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOCAL_MODEL_COST_MAP": "true",
}
HAYSTACK = {"haystack-ai": "3.4.1", **OPENAI}
HAYSTACK_ENV = {"HAYSTACK_TELEMETRY_ENABLED": "False"}
# Microsoft Agent Framework: its core and its OpenAI clients (agent-framework-openai)
MAF = {"agent-framework-core": "1.23.0", "agent-framework-openai": "1.17.0", **OPENAI, **OTEL}
# AG2, the AutoGen 0.2 fork: its newest release with the `autogen` namespace (AG2 1.0 is a new framework,
# `ag2`, without the classic agents; OpenInference's AG2 instrumentation requires ag2 < 1). ag2 0.14.0
# requires openai < 3: the newest openai 2.
AG2 = {"ag2": "0.14.0", "openai": "2.54.0"}  # its `openai` extra is the openai client alone
# MCP: the Python SDK (its own spans on: client requests, the server's middleware) on stdio; the
# recording has the spans of both processes, the client's driver and the server it starts
MCP = {"mcp": "2.3.0"}
# OpenLLMetry's MCP instrumentation (0.62.4) wraps `streamablehttp_client`, which mcp 2 renamed (its import
# hook fails on `import mcp`): with the newest mcp 1 (no spans of its own)
MCP_1 = {"mcp": "1.30.0"}
MCP_NOTES = (
    "an MCP client (stdio) calls a tool of a server subprocess that asks OpenAI, with tokenbook's "
    "attribution keys in W3C Baggage"
)
# OpenTelemetry's Baggage span processor (opentelemetry-processor-baggage): each Baggage entry onto every span
BAGGAGE_PROCESSOR = {"opentelemetry-processor-baggage": "0.66b1"}
# Agno's anonymous telemetry (a request to Agno's API per agent run) off
AGNO_ENV = {"AGNO_TELEMETRY": "false"}

# traceloop-sdk 0.62.4 requires opentelemetry-instrumentation-threading, whose newest release (0.66b1)
# requires opentelemetry-semantic-conventions 0.66b1, which opentelemetry-sdk 1.45.2 does not accept
OTEL_TRACELOOP = otel("1.45.1")
# The clients openlit 1.45.0 accepts (openai<3, anthropic<1) and an opentelemetry-sdk it accepts (not 1.45.2)
OPENLIT_CLIENTS = {"openai": "2.54.0", "anthropic": "0.125.0", **otel("1.45.1")}
OPENLIT_ENV = {"OPENLIT_DISABLE_TELEMETRY": "true", "TELEMETRY_DISABLED": "true"}

# Resolved packages worth recording in a fixture besides the pins.
KEY_PACKAGES = re.compile(
    r"^(openai|anthropic|openai-agents|openlit|httpx|wrapt|opentelemetry-(api|sdk|semantic-conventions"
    r"|instrumentation|util-genai|exporter-otlp-proto-http)|opentelemetry-instrumentation-.*|openinference-.*"
    r"|langchain|langchain-(core|openai|anthropic|aws)|langgraph|langgraph-(prebuilt|checkpoint)|traceloop-.*|opentelemetry-semantic-conventions-ai|pydantic-ai-slim|litellm|google-genai"
    r"|google-cloud-aiplatform|google-auth|boto3|botocore|langfuse|mlflow|mlflow-tracing|strands-agents|semantic-kernel|google-adk|logfire|llama-index|llama-index-core|llama-index-llms-openai|llama-index-llms-openai-like"
    r"|mistralai|groq|cohere|ollama|httpx2|crewai|dspy|haystack-ai|opentelemetry-haystack|langsmith|langtrace-python-sdk|trace-attributes"
    r"|smolagents|agno|ag2|autogen-(agentchat|core|ext)|mcp|together|portkey-ai|instructor|beeai-framework|claude-agent-sdk|agent-framework-core|agent-framework-openai"
    r"|ibm-watsonx-ai|ibm-watson-machine-learning|replicate|writer-sdk|aleph-alpha-client)$"
)


@dataclass(frozen=True)
class Setup:
    name: str
    library: str  # the PyPI package a fixture is named after; its pinned version is the fixture's version
    pins: dict[str, str]
    instrument: tuple[str, ...]  # driver.py instrumentation names, applied in this order
    calls: tuple[str, ...]  # driver.py call groups
    env: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    # Another layer recorded beside the library (a second instrumentor on the same calls): named in the
    # fixture's file name (`<library>-<version>+<beside>-<call_style>.json`) and its "beside" key.
    beside: str = ""
    # "node": the pins are npm packages, installed into a folder, and `driver.mjs` runs under Node.js.
    runtime: str = "python"

    @property
    def version(self) -> str:
        return self.pins[self.library]

    def fixture_name(self, call_style: str) -> str:
        return fixture_name(self.library, self.version, call_style, self.beside)


SETUPS: tuple[Setup, ...] = (
    Setup(
        "otel-genai-openai",
        "opentelemetry-instrumentation-genai-openai",
        {"opentelemetry-instrumentation-genai-openai": "1.3b0", **UTIL_GENAI, **OPENAI, **OTEL},
        ("otel-genai-openai",),
        ("openai",),
    ),
    Setup(
        "otel-openai-v2",
        "opentelemetry-instrumentation-openai-v2",
        # 2.4b0 imports httpx, which openai 3 no longer brings, and a module opentelemetry-util-genai
        # dropped in 1.2b0: with openai 2 and util-genai 1.1b0
        {
            "opentelemetry-instrumentation-openai-v2": "2.4b0",
            "opentelemetry-util-genai": "1.1b0",
            "openai": "2.54.0",
            **OTEL,
        },
        ("otel-openai-v2",),
        ("openai",),
        notes="the official OpenAI instrumentation's earlier package, still widely installed",
    ),
    Setup(
        "otel-genai-anthropic",
        "opentelemetry-instrumentation-genai-anthropic",
        {"opentelemetry-instrumentation-genai-anthropic": "1.3b0", **UTIL_GENAI, **ANTHROPIC, **OTEL},
        ("otel-genai-anthropic",),
        ("anthropic",),
        notes="the anthropic SDK's own spans are on too (its default with a global SDK TracerProvider)",
    ),
    Setup(
        "anthropic-sdk",
        "anthropic",
        {**ANTHROPIC, **OTEL},
        ("anthropic-sdk",),
        ("anthropic",),
        notes="no instrumentor: only the anthropic SDK's own tracing",
    ),
    Setup(
        "openinference-openai",
        "openinference-instrumentation-openai",
        {**OI_OPENAI, **OPENAI, **OTEL},
        ("openinference-openai",),
        ("openai",),
        env=OI_NO_CONTENT,
    ),
    Setup(
        "openinference-anthropic",
        "openinference-instrumentation-anthropic",
        {"openinference-instrumentation-anthropic": "3.1.0", **ANTHROPIC, **OTEL},
        ("openinference-anthropic",),
        ("anthropic",),
        env=OI_NO_CONTENT,
        notes="the anthropic SDK's own spans are on too",
    ),
    Setup(
        "openinference-langchain",
        "openinference-instrumentation-langchain",
        {"openinference-instrumentation-langchain": "0.1.80", **OI_OPENAI, **LANGCHAIN, **OPENAI, **OTEL},
        ("openinference-langchain", "openinference-openai"),
        ("langchain",),
        env=OI_NO_CONTENT,
        notes="LangChain and OpenAI instrumentors together: each model call is recorded by both layers",
    ),
    Setup(
        "otel-genai-langchain",
        "opentelemetry-instrumentation-genai-langchain",
        {**OTEL_LANGCHAIN, **OPENAI, **ANTHROPIC, **OTEL},
        ("otel-genai-langchain",),
        ("langchain", "langchain-tool", "langchain-anthropic"),
        notes="the official LangChain instrumentation alone (ChatOpenAI, ChatAnthropic); the anthropic "
        "SDK's own spans are on too",
    ),
    Setup(
        "otel-genai-langchain-openai",
        "opentelemetry-instrumentation-genai-langchain",
        {**OTEL_LANGCHAIN, "opentelemetry-instrumentation-genai-openai": "1.3b0", **OPENAI, **OTEL},
        ("otel-genai-langchain", "otel-genai-openai"),
        ("langchain", "langchain-tool"),
        beside="otel-genai-openai",
        notes="the official LangChain and OpenAI instrumentations together: each model call is recorded "
        "by both layers",
    ),
    Setup(
        "otel-genai-langchain-anthropic",
        "opentelemetry-instrumentation-genai-langchain",
        {**OTEL_LANGCHAIN, "opentelemetry-instrumentation-genai-anthropic": "1.3b0", **ANTHROPIC, **OTEL},
        ("otel-genai-langchain", "otel-genai-anthropic"),
        ("langchain-anthropic",),
        beside="otel-genai-anthropic",
        notes="the official LangChain and Anthropic instrumentations together (ChatAnthropic); the anthropic "
        "SDK's own spans are on too",
    ),
    Setup(
        "otel-genai-langchain-no-sdk-spans",
        "opentelemetry-instrumentation-genai-langchain",
        {**OTEL_LANGCHAIN, **ANTHROPIC, **OTEL},
        ("otel-genai-langchain",),
        ("langchain-anthropic",),
        env={"ANTHROPIC_OPEN_TELEMETRY": "false"},
        beside="no-sdk-spans",
        notes="ChatAnthropic with the anthropic SDK's own spans off (`ANTHROPIC_OPEN_TELEMETRY=false`): "
        "LangChain's span alone records each call",
    ),
    Setup(
        "openllmetry-openai",
        "opentelemetry-instrumentation-openai",
        {**TL_OPENAI, **OPENAI, **OTEL},
        ("openllmetry-openai",),
        ("openai",),
        env=TL_NO_CONTENT,
    ),
    Setup(
        "openllmetry-azure",
        "opentelemetry-instrumentation-openai",
        {**TL_OPENAI, **OPENAI, **OTEL},
        ("openllmetry-openai",),
        ("azure",),
        env=TL_NO_CONTENT,
        beside="azure",
        notes="Azure OpenAI (`AzureOpenAI`, deployments, an Azure host through the stub as HTTP proxy)",
    ),
    Setup(
        "openinference-azure",
        "openinference-instrumentation-openai",
        {**OI_OPENAI, **OPENAI, **OTEL},
        ("openinference-openai",),
        ("azure",),
        env=OI_NO_CONTENT,
        beside="azure",
        notes="Azure OpenAI (`AzureOpenAI`, deployments, an Azure host through the stub as HTTP proxy)",
    ),
    Setup(
        "otel-genai-azure",
        "opentelemetry-instrumentation-genai-openai",
        {"opentelemetry-instrumentation-genai-openai": "1.3b0", **UTIL_GENAI, **OPENAI, **OTEL},
        ("otel-genai-openai",),
        ("azure",),
        beside="azure",
        notes="Azure OpenAI (`AzureOpenAI`, deployments, an Azure host through the stub as HTTP proxy)",
    ),
    Setup(
        "openinference-langchain-azure",
        "openinference-instrumentation-langchain",
        {"openinference-instrumentation-langchain": "0.1.80", **OI_OPENAI, **LANGCHAIN, **OPENAI, **OTEL},
        ("openinference-langchain", "openinference-openai"),
        ("langchain-azure",),
        env=OI_NO_CONTENT,
        beside="azure",
        notes="LangChain's `AzureChatOpenAI` with the LangChain and OpenAI instrumentors",
    ),
    Setup(
        "openinference-langchain-bedrock",
        "openinference-instrumentation-langchain",
        {**OI_LANGCHAIN, **LANGCHAIN_AWS, **OTEL},
        ("openinference-langchain",),
        ("langchain-bedrock",),
        env=OI_NO_CONTENT,
        notes="langchain-aws (ChatBedrockConverse, ChatBedrock) with the LangChain instrumentor alone",
    ),
    Setup(
        "openinference-langchain-bedrock-instr",
        "openinference-instrumentation-langchain",
        {**OI_LANGCHAIN, "openinference-instrumentation-bedrock": "0.1.61", **LANGCHAIN_AWS, **OTEL},
        ("openinference-langchain", "openinference-bedrock"),
        ("langchain-bedrock",),
        env=OI_NO_CONTENT,
        beside="openinference-bedrock",
        notes="langchain-aws with OpenInference's LangChain and Bedrock instrumentors: each model call is "
        "recorded by both layers",
    ),
    Setup(
        "openllmetry-langchain-bedrock",
        "opentelemetry-instrumentation-langchain",
        {**TL_LANGCHAIN, **LANGCHAIN_AWS, **OTEL},
        ("openllmetry-langchain",),
        ("langchain-bedrock",),
        env=TL_NO_CONTENT,
        notes="langchain-aws (ChatBedrockConverse, ChatBedrock) with the LangChain instrumentor alone",
    ),
    Setup(
        "openllmetry-langchain-bedrock-instr",
        "opentelemetry-instrumentation-langchain",
        {**TL_LANGCHAIN, "opentelemetry-instrumentation-bedrock": TL, **LANGCHAIN_AWS, **OTEL},
        ("openllmetry-langchain", "openllmetry-bedrock"),
        ("langchain-bedrock",),
        env=TL_NO_CONTENT,
        beside="openllmetry-bedrock",
        notes="langchain-aws with OpenLLMetry's LangChain and Bedrock instrumentors: each model call is "
        "recorded by both layers",
    ),
    Setup(
        "openllmetry-anthropic",
        "opentelemetry-instrumentation-anthropic",
        {"opentelemetry-instrumentation-anthropic": "0.62.4", **ANTHROPIC, **OTEL},
        ("openllmetry-anthropic",),
        ("anthropic",),
        env=TL_NO_CONTENT,
        notes="the anthropic SDK's own spans are on too",
    ),
    Setup(
        "openllmetry-langchain",
        "opentelemetry-instrumentation-langchain",
        {"opentelemetry-instrumentation-langchain": "0.62.4", **TL_OPENAI, **LANGCHAIN, **OPENAI, **OTEL},
        ("openllmetry-langchain", "openllmetry-openai"),
        ("langchain",),
        env=TL_NO_CONTENT,
        notes="LangChain and OpenAI instrumentors together",
    ),
    Setup(
        "openinference-langgraph",
        "openinference-instrumentation-langchain",
        {**OI_LANGCHAIN, **LANGGRAPH},
        ("openinference-langchain",),
        ("langgraph-openai", "langgraph-anthropic"),
        env=OI_NO_CONTENT,
        notes="LangGraph (the prebuilt ReAct agent with ChatOpenAI, a supervisor and worker graph with "
        "ChatAnthropic) with the LangChain instrumentor alone; the anthropic SDK's own spans are on too",
    ),
    Setup(
        "openinference-langgraph-sdk",
        "openinference-instrumentation-langchain",
        {**OI_LANGCHAIN, **OI_OPENAI, "openinference-instrumentation-anthropic": "3.1.0", **LANGGRAPH},
        ("openinference-langchain", "openinference-openai", "openinference-anthropic"),
        ("langgraph-openai", "langgraph-anthropic"),
        env=OI_NO_CONTENT,
        beside="openinference-openai-anthropic",
        notes="LangGraph with OpenInference's LangChain, OpenAI and Anthropic instrumentors: each model call "
        "is recorded by both layers",
    ),
    Setup(
        "openllmetry-langgraph",
        "opentelemetry-instrumentation-langchain",
        {**TL_LANGCHAIN, **LANGGRAPH},
        ("openllmetry-langchain",),
        ("langgraph-openai", "langgraph-anthropic"),
        env=TL_NO_CONTENT,
        notes="LangGraph with OpenLLMetry's LangChain instrumentor alone; the anthropic SDK's own spans are "
        "on too",
    ),
    Setup(
        "openllmetry-langgraph-sdk",
        "opentelemetry-instrumentation-langchain",
        {**TL_LANGCHAIN, **TL_OPENAI, "opentelemetry-instrumentation-anthropic": TL, **LANGGRAPH},
        ("openllmetry-langchain", "openllmetry-openai", "openllmetry-anthropic"),
        ("langgraph-openai", "langgraph-anthropic"),
        env=TL_NO_CONTENT,
        beside="openllmetry-openai-anthropic",
        notes="LangGraph with OpenLLMetry's LangChain, OpenAI and Anthropic instrumentors",
    ),
    Setup(
        "otel-genai-langgraph",
        "opentelemetry-instrumentation-genai-langchain",
        {**OTEL_LANGCHAIN, **LANGGRAPH},
        ("otel-genai-langchain",),
        ("langgraph-openai", "langgraph-anthropic"),
        notes="LangGraph with the official LangChain instrumentation alone; the anthropic SDK's own spans "
        "are on too",
    ),
    Setup(
        "otel-genai-langgraph-sdk",
        "opentelemetry-instrumentation-genai-langchain",
        {
            **OTEL_LANGCHAIN,
            "opentelemetry-instrumentation-genai-openai": "1.3b0",
            "opentelemetry-instrumentation-genai-anthropic": "1.3b0",
            **LANGGRAPH,
        },
        ("otel-genai-langchain", "otel-genai-openai", "otel-genai-anthropic"),
        ("langgraph-openai", "langgraph-anthropic"),
        beside="otel-genai-openai-anthropic",
        notes="LangGraph with the official LangChain, OpenAI and Anthropic instrumentations",
    ),
    # the supervisor graph with the anthropic SDK's own spans off: LangChain's span alone records each call
    *(
        Setup(
            f"{name}-langgraph-no-sdk-spans",
            library,
            {**pins, **LANGGRAPH},
            (instrumentor,),
            ("langgraph-anthropic",),
            env={**env, "ANTHROPIC_OPEN_TELEMETRY": "false"},
            beside="no-sdk-spans",
            notes="the LangGraph supervisor graph (ChatAnthropic) with the anthropic SDK's own spans off "
            "(`ANTHROPIC_OPEN_TELEMETRY=false`): LangChain's span alone records each call",
        )
        for name, library, pins, instrumentor, env in (
            (
                "openinference",
                "openinference-instrumentation-langchain",
                OI_LANGCHAIN,
                "openinference-langchain",
                OI_NO_CONTENT,
            ),
            (
                "openllmetry",
                "opentelemetry-instrumentation-langchain",
                TL_LANGCHAIN,
                "openllmetry-langchain",
                TL_NO_CONTENT,
            ),
            (
                "otel-genai",
                "opentelemetry-instrumentation-genai-langchain",
                OTEL_LANGCHAIN,
                "otel-genai-langchain",
                {},
            ),
        )
    ),
    Setup(
        "openlit",
        "openlit",
        # openlit 1.45.0 requires openai<3, anthropic<1 and an opentelemetry-sdk that is not 1.45.2
        {
            "openlit": "1.45.0",
            "openai": "2.54.0",
            "anthropic": "0.125.0",
            **otel("1.45.1"),
        },
        ("openlit",),
        ("openai", "anthropic"),
        env={"OPENLIT_DISABLE_TELEMETRY": "true", "TELEMETRY_DISABLED": "true"},
    ),
    Setup(
        "openai-agents",
        "openinference-instrumentation-openai-agents",
        {
            "openinference-instrumentation-openai-agents": "2.6.0",
            "openai-agents": "0.24.0",
            **OI_OPENAI,
            **OPENAI,
            **OTEL,
        },
        ("openinference-openai-agents", "openinference-openai"),
        ("agents", "agents-stream"),
        env={**OI_NO_CONTENT, "OPENAI_AGENTS_DONT_LOG_MODEL_DATA": "1"},
        notes="openai-agents via OpenInference, with the OpenInference OpenAI instrumentor too",
    ),
    Setup(
        "otel-google-genai",
        "opentelemetry-instrumentation-google-genai",
        # 1.3b0 instruments google-genai >= 1.32.0, < 3 only
        {
            "opentelemetry-instrumentation-google-genai": "1.3b0",
            **UTIL_GENAI,
            "google-genai": "2.34.0",
            **OTEL,
        },
        ("otel-google-genai",),
        ("gemini",),
    ),
    Setup(
        "openinference-google-genai",
        "openinference-instrumentation-google-genai",
        {"openinference-instrumentation-google-genai": "1.4.14", **GOOGLE_GENAI, **OTEL},
        ("openinference-google-genai",),
        ("gemini",),
        env=OI_NO_CONTENT,
    ),
    Setup(
        "openllmetry-google-genai",
        "opentelemetry-instrumentation-google-generativeai",
        {"opentelemetry-instrumentation-google-generativeai": "0.62.4", **GOOGLE_GENAI, **OTEL},
        ("openllmetry-google-genai",),
        ("gemini",),
        env=TL_NO_CONTENT,
    ),
    Setup(
        "otel-google-genai-vertex",
        "opentelemetry-instrumentation-google-genai",
        # 1.3b0 instruments google-genai >= 1.32.0, < 3 only
        {
            "opentelemetry-instrumentation-google-genai": "1.3b0",
            **UTIL_GENAI,
            "google-genai": "2.34.0",
            **OTEL,
        },
        ("otel-google-genai",),
        ("vertex",),
        notes="the google-genai SDK in Vertex AI mode (vertexai=True, a project, a region, an access token)",
    ),
    Setup(
        "openinference-google-genai-vertex",
        "openinference-instrumentation-google-genai",
        {"openinference-instrumentation-google-genai": "1.4.14", **GOOGLE_GENAI, **OTEL},
        ("openinference-google-genai",),
        ("vertex",),
        env=OI_NO_CONTENT,
        notes="the google-genai SDK in Vertex AI mode",
    ),
    Setup(
        "openllmetry-google-genai-vertex",
        "opentelemetry-instrumentation-google-generativeai",
        {"opentelemetry-instrumentation-google-generativeai": "0.62.4", **GOOGLE_GENAI, **OTEL},
        ("openllmetry-google-genai",),
        ("vertex",),
        env=TL_NO_CONTENT,
        notes="the google-genai SDK in Vertex AI mode",
    ),
    Setup(
        "openllmetry-vertexai",
        "opentelemetry-instrumentation-vertexai",
        {"opentelemetry-instrumentation-vertexai": "0.62.4", **AIPLATFORM, **OTEL},
        ("openllmetry-vertexai",),
        ("vertexai",),
        env=TL_NO_CONTENT,
        notes="the Vertex AI SDK's GenerativeModel (google-cloud-aiplatform), its REST transport",
    ),
    Setup(
        "openinference-vertexai",
        "openinference-instrumentation-vertexai",
        {"openinference-instrumentation-vertexai": "0.1.29", **AIPLATFORM, **OTEL},
        ("openinference-vertexai",),
        ("vertexai",),
        env=OI_NO_CONTENT,
        notes="the Vertex AI SDK's GenerativeModel (google-cloud-aiplatform), its REST transport",
    ),
    Setup(
        "anthropic-sdk-vertex",
        "anthropic",
        {**ANTHROPIC, **OTEL},
        ("anthropic-sdk",),
        ("anthropic-vertex",),
        notes="Claude on Vertex AI through anthropic.AnthropicVertex, the anthropic SDK's own tracing",
    ),
    Setup(
        "otel-genai-anthropic-vertex",
        "opentelemetry-instrumentation-genai-anthropic",
        {"opentelemetry-instrumentation-genai-anthropic": "1.3b0", **UTIL_GENAI, **ANTHROPIC, **OTEL},
        ("otel-genai-anthropic",),
        ("anthropic-vertex",),
        notes="Claude on Vertex AI through anthropic.AnthropicVertex; the anthropic SDK's own spans on too",
    ),
    Setup(
        "openinference-anthropic-vertex",
        "openinference-instrumentation-anthropic",
        {"openinference-instrumentation-anthropic": "3.1.0", **ANTHROPIC, **OTEL},
        ("openinference-anthropic",),
        ("anthropic-vertex",),
        env=OI_NO_CONTENT,
        notes="Claude on Vertex AI through anthropic.AnthropicVertex; the anthropic SDK's own spans on too",
    ),
    Setup(
        "openllmetry-anthropic-vertex",
        "opentelemetry-instrumentation-anthropic",
        {"opentelemetry-instrumentation-anthropic": "0.62.4", **ANTHROPIC, **OTEL},
        ("openllmetry-anthropic",),
        ("anthropic-vertex",),
        env=TL_NO_CONTENT,
        notes="Claude on Vertex AI through anthropic.AnthropicVertex; the anthropic SDK's own spans on too",
    ),
    Setup(
        "otel-botocore",
        "opentelemetry-instrumentation-botocore",
        {"opentelemetry-instrumentation-botocore": "0.66b2", **BOTO3, **OTEL},
        ("otel-botocore",),
        ("bedrock", "bedrock-invoke"),
    ),
    Setup(
        "otel-genai-bedrock",
        "opentelemetry-instrumentation-genai-bedrock",
        {"opentelemetry-instrumentation-genai-bedrock": "1.3b0", **UTIL_GENAI, **BOTO3, **OTEL},
        ("otel-genai-bedrock",),
        ("bedrock", "bedrock-invoke"),
    ),
    Setup(
        "openllmetry-bedrock",
        "opentelemetry-instrumentation-bedrock",
        {"opentelemetry-instrumentation-bedrock": "0.62.4", **BOTO3, **OTEL},
        ("openllmetry-bedrock",),
        ("bedrock", "bedrock-invoke"),
        env=TL_NO_CONTENT,
    ),
    Setup(
        "openinference-bedrock",
        "openinference-instrumentation-bedrock",
        {"openinference-instrumentation-bedrock": "0.1.61", **BOTO3, **OTEL},
        ("openinference-bedrock",),
        ("bedrock", "bedrock-invoke"),
        env=OI_NO_CONTENT,
    ),
    Setup(
        "langfuse",
        "langfuse",
        {"langfuse": "5.2.0", **OPENAI, **OTEL},
        ("langfuse",),
        ("langfuse-openai",),
        env={"LANGFUSE_TRACING_ENVIRONMENT": "conformance"},
        notes="Langfuse's OpenAI wrapper (`langfuse.openai.OpenAI`), its spans on the driver's provider",
    ),
    Setup(
        "langfuse-langchain",
        "langfuse",
        {"langfuse": "5.2.0", "langchain-anthropic": "1.7.10", **LANGCHAIN, **OPENAI, **ANTHROPIC, **OTEL},
        ("langfuse", "langfuse-langchain"),
        ("langchain", "langchain-tool", "langchain-anthropic"),
        # the anthropic SDK's own spans off: Langfuse's alone record each call
        env={"LANGFUSE_TRACING_ENVIRONMENT": "conformance", "ANTHROPIC_OPEN_TELEMETRY": "false"},
        beside="langchain",
        notes="Langfuse's LangChain callback handler (`langfuse.langchain.CallbackHandler`), ChatOpenAI and "
        "ChatAnthropic, its spans on the driver's provider",
    ),
    Setup(
        "mlflow",
        "mlflow",
        {"mlflow": "3.17.2", **OPENAI, **ANTHROPIC, **OTEL},
        ("mlflow",),
        ("openai", "anthropic", "mlflow"),
        env={"MLFLOW_USE_DEFAULT_TRACER_PROVIDER": "false"},
        notes="MLflow's OpenAI and Anthropic autologging, its spans on the global OpenTelemetry provider; "
        "a traced agent function with a traced tool",
    ),
    Setup(
        "strands",
        "strands-agents",
        # strands-agents 1.62.0 requires openai < 3 and an opentelemetry-sdk that is not 1.45.2
        {
            "strands-agents": "1.62.0",
            "openai": "2.54.0",
            **otel("1.45.1"),
        },
        ("strands",),
        ("strands",),
        notes="Strands Agents' own telemetry (`StrandsTelemetry(tracer_provider=...)`), an OpenAI model",
    ),
    Setup(
        "semantic-kernel",
        "semantic-kernel",
        {"semantic-kernel": "1.45.0", **OPENAI, **OTEL},
        ("semantic-kernel",),
        ("semantic-kernel",),
        env={"SEMANTICKERNEL_EXPERIMENTAL_GENAI_ENABLE_OTEL_DIAGNOSTICS": "true"},
        notes="Semantic Kernel's own model diagnostics (content off), an OpenAI chat service",
    ),
    Setup(
        "semantic-kernel-openai",
        "semantic-kernel",
        {
            "semantic-kernel": "1.45.0",
            "opentelemetry-instrumentation-genai-openai": "1.3b0",
            **UTIL_GENAI,
            **OPENAI,
            **OTEL,
        },
        ("semantic-kernel", "otel-genai-openai"),
        ("semantic-kernel",),
        env={"SEMANTICKERNEL_EXPERIMENTAL_GENAI_ENABLE_OTEL_DIAGNOSTICS": "true"},
        notes="Semantic Kernel's diagnostics and the official OpenAI instrumentor together",
        beside="otel-genai-openai",
    ),
    Setup(
        "agent-framework",
        "agent-framework-core",
        MAF,
        ("maf",),
        ("maf", "maf-local"),
        notes="Microsoft Agent Framework's own telemetry (`enable_instrumentation`, content off), its "
        "OpenAI clients (chat completions, Responses; and on Ollama's OpenAI-compatible API)",
    ),
    Setup(
        "agent-framework-v1_36",
        "agent-framework-core",
        MAF,
        ("maf",),
        ("maf-v1_36",),
        # an opt-in list without `gen_ai_latest_experimental` (here: stable HTTP conventions only) selects
        # the v1.36.0 GenAI conventions, where Agent Framework's default is the latest
        env={"OTEL_SEMCONV_STABILITY_OPT_IN": "http"},
        notes="Microsoft Agent Framework's own telemetry with the v1.36.0 GenAI conventions "
        "(`OTEL_SEMCONV_STABILITY_OPT_IN=http`)",
    ),
    Setup(
        "agent-framework-openai",
        "agent-framework-core",
        {**MAF, "opentelemetry-instrumentation-genai-openai": "1.3b0", **UTIL_GENAI},
        ("maf", "otel-genai-openai"),
        ("maf",),
        notes="Microsoft Agent Framework's telemetry and the official OpenAI instrumentor together",
        beside="otel-genai-openai",
    ),
    Setup(
        "agent-framework-openinference-openai",
        "agent-framework-core",
        {**MAF, **OI_OPENAI},
        ("maf", "openinference-openai"),
        ("maf",),
        env=OI_NO_CONTENT,
        notes="Microsoft Agent Framework's telemetry and OpenInference's OpenAI instrumentor together",
        beside="openinference-openai",
    ),
    Setup(
        "openinference-agent-framework",
        "openinference-instrumentation-agent-framework",
        {"openinference-instrumentation-agent-framework": "0.1.13", **MAF},
        ("maf", "openinference-agent-framework"),
        ("maf",),
        env=OI_NO_CONTENT,
        notes="OpenInference's span processor for Microsoft Agent Framework's spans "
        "(`AgentFrameworkToOpenInferenceProcessor`)",
    ),
    Setup(
        "google-adk",
        "google-adk",
        # google-adk 2.13.0 requires google-genai < 3 and opentelemetry-sdk < 1.45
        {
            "google-adk": "2.13.0",
            "google-genai": "2.34.0",
            **otel("1.44.0"),
        },
        ("adk",),
        ("adk", "adk-tool"),
        notes="Google's Agent Development Kit, its own spans, a Gemini model",
    ),
    Setup(
        "logfire",
        "logfire",
        {"logfire": "5.4.0", **OPENAI, **OTEL},
        ("logfire",),
        ("openai",),
        env={"LOGFIRE_SEND_TO_LOGFIRE": "false", "LOGFIRE_IGNORE_NO_CONFIG": "1"},
        notes="Logfire's OpenAI instrumentation (`logfire.instrument_openai()`), its own provider",
    ),
    Setup(
        "logfire-anthropic",
        "logfire",
        {"logfire": "5.4.0", **ANTHROPIC, **OTEL},
        ("logfire-anthropic",),
        ("anthropic",),
        env={"LOGFIRE_SEND_TO_LOGFIRE": "false", "LOGFIRE_IGNORE_NO_CONFIG": "1"},
        beside="anthropic",
        notes="Logfire's Anthropic instrumentation (`logfire.instrument_anthropic()`), its own provider",
    ),
    Setup(
        "logfire-anthropic-no-sdk-spans",
        "logfire",
        {"logfire": "5.4.0", **ANTHROPIC, **OTEL},
        ("logfire-anthropic",),
        ("anthropic",),
        env={
            "LOGFIRE_SEND_TO_LOGFIRE": "false",
            "LOGFIRE_IGNORE_NO_CONFIG": "1",
            "ANTHROPIC_OPEN_TELEMETRY": "false",
        },
        beside="anthropic-no-sdk-spans",
        notes="`logfire.instrument_anthropic()` with the anthropic SDK's own spans off "
        "(`ANTHROPIC_OPEN_TELEMETRY=false`): Logfire's spans alone record each call",
    ),
    Setup(
        "logfire-litellm",
        "logfire",
        {
            "logfire": "5.4.0",
            "openinference-instrumentation-litellm": "0.1.51",
            "litellm": "1.110.2",
            **OPENAI,
            **OTEL,
        },
        ("logfire-litellm",),
        ("litellm",),
        env={
            "LOGFIRE_SEND_TO_LOGFIRE": "false",
            "LOGFIRE_IGNORE_NO_CONFIG": "1",
            "LITELLM_TELEMETRY": "False",
            **OI_NO_CONTENT,
        },
        beside="litellm",
        notes="`logfire.instrument_litellm()`: OpenInference's LiteLLM instrumentor on Logfire's provider",
    ),
    Setup(
        "logfire-google-genai",
        "logfire",
        # the official google-genai instrumentation (1.3b0) instruments google-genai >= 1.32.0, < 3 only
        {
            "logfire": "5.4.0",
            "opentelemetry-instrumentation-google-genai": "1.3b0",
            **UTIL_GENAI,
            "google-genai": "2.34.0",
            **OTEL,
        },
        ("logfire-google-genai",),
        ("gemini",),
        env={"LOGFIRE_SEND_TO_LOGFIRE": "false", "LOGFIRE_IGNORE_NO_CONFIG": "1"},
        beside="google-genai",
        notes="`logfire.instrument_google_genai()`: the official google-genai instrumentor on Logfire's "
        "provider",
    ),
    Setup(
        "openinference-llama-index",
        "openinference-instrumentation-llama-index",
        # llama-index-llms-openai 0.8.3 requires openai < 3
        {
            "openinference-instrumentation-llama-index": "4.6.1",
            "llama-index-core": "0.14.25",
            "llama-index-llms-openai": "0.8.3",
            **OI_OPENAI,
            "openai": "2.54.0",
            **OTEL,
        },
        ("openinference-llama-index", "openinference-openai"),
        ("llama-index",),
        env=OI_NO_CONTENT,
        notes="LlamaIndex and OpenAI instrumentors together: each model call is recorded by both layers",
    ),
    Setup(
        "pydantic-ai",
        "pydantic-ai-slim",
        {"pydantic-ai-slim": "2.78.0", **OPENAI, **OTEL},
        ("pydantic-ai",),
        ("pydantic-ai",),
        notes="pydantic-ai's own instrumentation (the conventions Logfire shows), content off",
    ),
    Setup(
        "pydantic-ai-openai",
        "pydantic-ai-slim",
        {
            "pydantic-ai-slim": "2.78.0",
            "opentelemetry-instrumentation-genai-openai": "1.3b0",
            **UTIL_GENAI,
            **OPENAI,
            **OTEL,
        },
        ("pydantic-ai", "otel-genai-openai"),
        ("pydantic-ai",),
        beside="otel-genai-openai",
        notes="pydantic-ai's instrumentation and the official OpenAI instrumentor together: each model call "
        "is recorded by both layers",
    ),
    Setup(
        "litellm-openai",
        "litellm",
        {"litellm": "1.110.2", **TL_OPENAI, **OPENAI, **OTEL},
        ("litellm", "openllmetry-openai"),
        ("litellm",),
        beside="openllmetry-openai",
        env={"LITELLM_TELEMETRY": "False", **TL_NO_CONTENT},
        notes="LiteLLM's callback and OpenLLMetry's OpenAI instrumentor together (the instrumentor records "
        "none of LiteLLM's calls)",
    ),
    Setup(
        "ai-sdk",
        "ai",
        AI_SDK,
        ("ai-sdk-otel",),
        ("ai-sdk",),
        notes="the AI SDK (Node.js) with its OpenTelemetry integration: "
        "`registerTelemetry(new OpenTelemetry())`",
        runtime="node",
    ),
    Setup(
        "ai-sdk-5",
        "ai",
        {
            "ai": "5.0.285",
            "@ai-sdk/openai": "2.0.140",
            "@ai-sdk/anthropic": "2.0.112",
            **{
                k: v
                for k, v in AI_SDK.items()
                if k not in ("ai", "@ai-sdk/otel", "@ai-sdk/openai", "@ai-sdk/anthropic")
            },
        },
        ("ai-sdk-builtin",),
        ("ai-sdk",),
        notes="the AI SDK 5 (Node.js) with the tracing built into `ai` (`experimental_telemetry`)",
        runtime="node",
    ),
    Setup(
        "openinference-vercel",
        "@arizeai/openinference-vercel",
        {
            "@arizeai/openinference-vercel": "2.8.1",
            "ai": "5.0.285",
            "@ai-sdk/openai": "2.0.140",
            "@ai-sdk/anthropic": "2.0.112",
            **{
                k: v
                for k, v in AI_SDK.items()
                if k not in ("ai", "@ai-sdk/otel", "@ai-sdk/openai", "@ai-sdk/anthropic")
            },
        },
        ("ai-sdk-builtin", "openinference-vercel"),
        ("ai-sdk",),
        notes="OpenInference's span processor for the AI SDK (`OpenInferenceBatchSpanProcessor`, no "
        "filter: OpenInference's attributes added to the AI SDK 5's spans); its newest release for Node.js "
        "20 and ai 5",
        runtime="node",
    ),
    Setup(
        "ai-sdk-legacy",
        "ai",
        AI_SDK,
        ("ai-sdk-legacy",),
        ("ai-sdk",),
        notes="the same with `LegacyOpenTelemetry`, the ai.* spans of the AI SDK's earlier releases",
        beside="legacy",
        runtime="node",
    ),
    Setup(
        "anthropic-sdk-js",
        "@anthropic-ai/sdk",
        {**ANTHROPIC_JS, **OTEL_JS},
        ("none",),
        ("anthropic",),
        notes="no instrumentor: only the @anthropic-ai/sdk package's own tracing (Node.js)",
        runtime="node",
    ),
    Setup(
        "openinference-openai-js",
        "@arizeai/openinference-instrumentation-openai",
        {"@arizeai/openinference-instrumentation-openai": "4.2.7", **OPENAI_JS, **OTEL_JS},
        ("openinference-openai",),
        ("openai",),
        env=OI_NO_CONTENT,
        notes="OpenInference's OpenAI instrumentation for Node.js (`manuallyInstrument`, an ES module)",
        runtime="node",
    ),
    Setup(
        "openinference-anthropic-js",
        "@arizeai/openinference-instrumentation-anthropic",
        {"@arizeai/openinference-instrumentation-anthropic": "0.2.8", **ANTHROPIC_JS, **OTEL_JS},
        ("openinference-anthropic",),
        ("anthropic",),
        env=OI_NO_CONTENT,
        notes="OpenInference's Anthropic instrumentation for Node.js; the SDK's own spans are on too",
        runtime="node",
    ),
    Setup(
        "otel-openai-js",
        "@opentelemetry/instrumentation-openai",
        {
            "@opentelemetry/instrumentation-openai": "0.21.0",
            "@opentelemetry/instrumentation": "0.223.0",
            **OPENAI_JS,
            **OTEL_JS,
        },
        ("otel-openai",),
        ("openai",),
        env=OTEL_JS_NO_CONTENT,
        notes="OpenTelemetry JS's contrib OpenAI instrumentation (registered, the openai ES module seen "
        "through the instrumentation package's loader hook); its newest release for Node.js 20 and "
        "@opentelemetry/api 1.9",
        runtime="node",
    ),
    Setup(
        "elastic-openai-js",
        "@elastic/opentelemetry-instrumentation-openai",
        {
            "@elastic/opentelemetry-instrumentation-openai": "0.5.1",
            "@opentelemetry/instrumentation": "0.203.0",
            "openai": "4.104.0",  # it instruments openai 4 only (>=4.19.0 <5): its newest 4
            **OTEL_JS,
        },
        ("elastic-openai",),
        ("openai",),
        env=OTEL_JS_NO_CONTENT,
        notes="Elastic's OpenAI instrumentation for Node.js (EDOT Node.js's; registered, as otel-openai-js)",
        runtime="node",
    ),
    Setup(
        "langfuse-openai-js",
        "@langfuse/openai",
        {"@langfuse/openai": "5.11.1", "@langfuse/tracing": "5.11.1", **OPENAI_JS, **OTEL_JS},
        ("langfuse-openai",),
        ("openai",),
        env={"LANGFUSE_TRACING_ENVIRONMENT": "conformance"},
        notes="Langfuse's OpenAI wrapper for Node.js (`observeOpenAI`), its spans on the driver's provider",
        runtime="node",
    ),
    Setup(
        "openllmetry-openai-js",
        "@traceloop/instrumentation-openai",
        {"@traceloop/instrumentation-openai": TL_JS, **OPENAI_JS, **OTEL_JS},
        ("openllmetry-openai",),
        ("openai",),
        env=TL_NO_CONTENT,
        notes="OpenLLMetry's OpenAI instrumentation for Node.js alone (`traceContent: false`)",
        runtime="node",
    ),
    Setup(
        "openllmetry-cohere-js",
        "@traceloop/instrumentation-cohere",
        {"@traceloop/instrumentation-cohere": TL_JS, "cohere-ai": "8.1.0", **OTEL_JS},
        ("openllmetry-cohere",),
        ("cohere",),
        env=TL_NO_CONTENT,
        notes="OpenLLMetry's Cohere instrumentation for Node.js (`traceContent: false`): cohere-ai's "
        "`CohereClient` (the API's first version); 0.27.0 reads a chat answer's `token_count`, which the API "
        "no longer returns (its usage is in `meta`): a span with the model and no token counts, no fixture",
        runtime="node",
    ),
    Setup(
        "openllmetry-anthropic-js",
        "@traceloop/instrumentation-anthropic",
        {"@traceloop/instrumentation-anthropic": TL_JS, **ANTHROPIC_JS_0, **OTEL_JS},
        ("openllmetry-anthropic",),
        ("anthropic",),
        env=TL_NO_CONTENT,
        notes="OpenLLMetry's Anthropic instrumentation for Node.js alone; the SDK's own spans are on too",
        runtime="node",
    ),
    Setup(
        "openllmetry-anthropic-js-alone",
        "@traceloop/instrumentation-anthropic",
        {"@traceloop/instrumentation-anthropic": TL_JS, **ANTHROPIC_JS_0, **OTEL_JS},
        ("openllmetry-anthropic",),
        ("anthropic",),
        env={**TL_NO_CONTENT, "ANTHROPIC_OPEN_TELEMETRY": "false"},
        notes="the same with the SDK's own spans off (`ANTHROPIC_OPEN_TELEMETRY=false`; before 0.134.0 "
        "the SDK had none): OpenLLMetry's span alone records each call",
        beside="no-sdk-spans",
        runtime="node",
    ),
    Setup(
        "openinference-langchain-js",
        "@arizeai/openinference-instrumentation-langchain",
        {**OI_LANGCHAIN_JS, **LANGCHAIN_JS},
        ("openinference-langchain",),
        ("langchain",),
        env=OI_NO_CONTENT,
        notes="OpenInference's LangChain instrumentation for Node.js alone (`manuallyInstrument` of "
        "@langchain/core's callback manager): ChatOpenAI and ChatAnthropic",
        runtime="node",
    ),
    Setup(
        "openinference-langchain-js-openai",
        "@arizeai/openinference-instrumentation-langchain",
        {**OI_LANGCHAIN_JS, "@arizeai/openinference-instrumentation-openai": "4.2.7", **LANGCHAIN_JS},
        ("openinference-langchain", "openinference-openai"),
        ("langchain",),
        env=OI_NO_CONTENT,
        notes="the same with OpenInference's OpenAI instrumentation beside it: each ChatOpenAI call is "
        "recorded by both layers",
        beside="openinference-openai",
        runtime="node",
    ),
    Setup(
        "openllmetry-langchain-js",
        "@traceloop/instrumentation-langchain",
        {**TL_LANGCHAIN_JS, **LANGCHAIN_JS},
        ("openllmetry-langchain",),
        ("langchain",),
        env=TL_NO_CONTENT,
        notes="OpenLLMetry's LangChain instrumentation for Node.js alone (`traceContent: false`): "
        "ChatOpenAI and ChatAnthropic",
        runtime="node",
    ),
    Setup(
        "openllmetry-langchain-js-openai",
        "@traceloop/instrumentation-langchain",
        {**TL_LANGCHAIN_JS, "@traceloop/instrumentation-openai": TL_JS, **LANGCHAIN_JS},
        ("openllmetry-langchain", "openllmetry-openai"),
        ("langchain",),
        env=TL_NO_CONTENT,
        notes="the same with OpenLLMetry's OpenAI instrumentation beside it: each ChatOpenAI call is "
        "recorded by both layers",
        beside="openllmetry-openai",
        runtime="node",
    ),
    Setup(
        "traceloop-js",
        "@traceloop/node-server-sdk",
        # its peer exporter-trace-otlp-proto is ^0.203.0 (it sends with the exporter it is given)
        {
            "@traceloop/node-server-sdk": TL_JS,
            **OPENAI_JS,
            **ANTHROPIC_JS_0,
            **OTEL_JS,
            "@opentelemetry/exporter-trace-otlp-proto": "0.203.0",
        },
        ("traceloop-sdk",),
        ("openai", "anthropic", "traceloop"),
        env=TL_NO_CONTENT,
        notes="Traceloop's SDK for Node.js: `initialize` with an exporter to the sink and the ES modules "
        "to instrument (`instrumentModules`); the @anthropic-ai/sdk package's own spans are on too",
        runtime="node",
    ),
    Setup(
        "openllmetry-bedrock-js",
        "@traceloop/instrumentation-bedrock",
        {"@traceloop/instrumentation-bedrock": TL_JS, **BEDROCK_JS, **OTEL_JS},
        ("openllmetry-bedrock",),
        ("bedrock", "bedrock-invoke"),
        env=TL_NO_CONTENT,
        notes="OpenLLMetry's Bedrock instrumentation for Node.js (`traceContent: false`): "
        "@aws-sdk/client-bedrock-runtime's Converse and InvokeModel",
        runtime="node",
    ),
    Setup(
        "otel-aws-sdk-js",
        "@opentelemetry/instrumentation-aws-sdk",
        {
            "@opentelemetry/instrumentation-aws-sdk": "0.78.0",
            "@opentelemetry/instrumentation": "0.223.0",
            **BEDROCK_JS,
            **OTEL_JS,
        },
        ("otel-aws-sdk",),
        ("bedrock", "bedrock-invoke"),
        env=OTEL_JS_NO_CONTENT,
        notes="OpenTelemetry JS's contrib AWS SDK instrumentation (registered, as otel-openai-js): "
        "@aws-sdk/client-bedrock-runtime's Converse and InvokeModel; its newest release for Node.js 20",
        runtime="node",
    ),
    Setup(
        "openinference-bedrock-js",
        "@arizeai/openinference-instrumentation-bedrock",
        {"@arizeai/openinference-instrumentation-bedrock": "0.5.1", **BEDROCK_JS, **OTEL_JS},
        ("openinference-bedrock",),
        ("bedrock", "bedrock-invoke"),
        env=OI_NO_CONTENT,
        notes="OpenInference's Bedrock instrumentation for Node.js: "
        "@aws-sdk/client-bedrock-runtime's Converse and InvokeModel",
        runtime="node",
    ),
    Setup(
        "openllmetry-google-genai-js",
        "@traceloop/instrumentation-google-generativeai",
        {"@traceloop/instrumentation-google-generativeai": TL_JS, **GOOGLE_GENAI_JS, **OTEL_JS},
        ("openllmetry-google-genai",),
        ("gemini", "vertex"),
        env=TL_NO_CONTENT,
        notes="OpenLLMetry's Google Gen AI instrumentation for Node.js (`traceContent: false`): "
        "@google/genai on the Gemini API and in Vertex AI mode",
        runtime="node",
    ),
    Setup(
        "mastra",
        "@mastra/core",
        MASTRA_JS,
        ("mastra",),
        ("mastra",),
        env={"MASTRA_TELEMETRY_DISABLED": "1"},
        notes="a Mastra agent (an OpenAI model through the AI SDK's provider), `generate` and `stream`, "
        "its traces exported by @mastra/otel-exporter",
        runtime="node",
    ),
    Setup(
        "openinference-litellm",
        "openinference-instrumentation-litellm",
        {"openinference-instrumentation-litellm": "0.1.51", "litellm": "1.110.2", **OPENAI, **OTEL},
        ("openinference-litellm",),
        ("litellm",),
        env={"LITELLM_TELEMETRY": "False", **OI_NO_CONTENT},
        notes="OpenInference's LiteLLM instrumentor (LiteLLM's own callback off)",
    ),
    Setup(
        "traceloop",
        "traceloop-sdk",
        # `langchain` too: Traceloop.init turns the LangChain instrumentor on only where the `langchain` (or
        # `langgraph`) package is installed, not for langchain-core and langchain-openai alone
        {
            "traceloop-sdk": "0.62.4",
            **OPENAI,
            **ANTHROPIC,
            "langchain": "1.5.2",
            **LANGCHAIN,
            **OTEL_TRACELOOP,
        },
        ("traceloop",),
        ("traceloop",),
        env=TL_NO_CONTENT,
        notes="Traceloop's SDK (`Traceloop.init(exporter=...)`): a provider of its own and every OpenLLMetry "
        "instrumentor it finds (OpenAI, Anthropic, LangChain, ...); the anthropic SDK's own spans are on too",
    ),
    Setup(
        "langsmith",
        "langsmith",
        # its `otel` extra is the OpenTelemetry API, SDK and OTLP/HTTP exporter, pinned here
        {"langsmith": "0.15.1", **OPENAI, **LANGCHAIN, **OTEL},
        ("langsmith",),
        ("langsmith",),
        env={
            "LANGSMITH_TRACING": "true",
            "LANGSMITH_TRACING_MODE": "otel",
            "LANGSMITH_HIDE_INPUTS": "true",
        },
        notes="LangSmith's OpenTelemetry export (tracing mode otel: no LangSmith API call), its spans on "
        "the global provider: `wrap_openai(OpenAI())` and its LangChain tracer",
    ),
    Setup(
        "langtrace",
        "langtrace-python-sdk",
        # importlib-metadata too: langtrace-python-sdk 3.8.21 imports it without requiring it (the
        # OpenTelemetry API brought it until 1.45); setuptools 81.0.0, the last with pkg_resources, which
        # it imports (it requires setuptools, any version)
        {
            "langtrace-python-sdk": "3.8.21",
            "importlib-metadata": "10.2.0",
            "setuptools": "81.0.0",
            **OPENAI,
            **OTEL,
        },
        ("langtrace",),
        ("langtrace",),
        env={"LANGTRACE_ERROR_REPORTING": "False", "TRACE_PROMPT_COMPLETION_DATA": "false"},
        notes="Langtrace (`langtrace.init(custom_remote_exporter=...)`): a provider of its own and every "
        "Langtrace instrumentor it finds",
    ),
    Setup(
        "laminar",
        "lmnr",
        # lmnr 0.8.2 requires opentelemetry-instrumentation-threading too (`OTEL_TRACELOOP`)
        {"lmnr": "0.8.2", **OPENAI, **ANTHROPIC, "langchain": "1.5.2", **LANGCHAIN, **OTEL_TRACELOOP},
        ("laminar",),
        ("laminar",),
        env={"LMNR_TRACE_CONTENT": "false"},
        notes="Laminar's SDK (`Laminar.initialize(base_url=..., http_port=..., force_http=True)`): a "
        "provider of its own, its OTLP/HTTP exporter and every Laminar instrumentor it finds (its own "
        "OpenAI, Anthropic and LangChain instrumentations)",
    ),
    Setup(
        "agentops",
        "agentops",
        # opentelemetry-sdk 1.38.0: agentops 0.4.21's exporter reads a private field of the OTLP/HTTP
        # exporter that 1.45 no longer has (every export fails there)
        {"agentops": "0.4.21", **OPENAI, **ANTHROPIC, **otel("1.38.0")},
        ("agentops",),
        ("agentops",),
        env={"AGENTOPS_LOGGING_TO_FILE": "False"},  # else it writes agentops.log in the working directory
        notes="AgentOps' SDK (`agentops.init(endpoint=..., exporter_endpoint=...)`): a provider of its own, "
        "its exporter and every AgentOps instrumentor it finds",
    ),
    Setup(
        "litellm",
        "litellm",
        {"litellm": "1.110.2", **OPENAI, **OTEL},
        ("litellm",),
        ("litellm",),
        env={"LITELLM_TELEMETRY": "False"},
        notes="LiteLLM's OpenTelemetry callback (`callbacks = ['otel']`) on the global provider",
    ),
    Setup(
        "openllmetry-mistralai",
        "opentelemetry-instrumentation-mistralai",
        {"opentelemetry-instrumentation-mistralai": TL, **MISTRALAI_1, **OTEL},
        ("openllmetry-mistralai",),
        ("mistral",),
        env=TL_NO_CONTENT,
    ),
    Setup(
        "openinference-mistralai",
        "openinference-instrumentation-mistralai",
        {"openinference-instrumentation-mistralai": "2.2.2", **MISTRALAI, **OTEL},
        ("openinference-mistralai",),
        ("mistral",),
        env=OI_NO_CONTENT,
    ),
    Setup(
        "mistralai-sdk",
        "mistralai",
        {**MISTRALAI, **OTEL},
        ("mistralai-sdk",),
        ("mistral",),
        env={"MISTRAL_SDK_TELEMETRY": "global"},
        notes="no instrumentor: the mistralai SDK's own tracing, on the global provider (its opt-in)",
    ),
    Setup(
        "openllmetry-groq",
        "opentelemetry-instrumentation-groq",
        {"opentelemetry-instrumentation-groq": TL, **GROQ, **OTEL},
        ("openllmetry-groq",),
        ("groq",),
        env=TL_NO_CONTENT,
    ),
    Setup(
        "openinference-groq",
        "openinference-instrumentation-groq",
        {"openinference-instrumentation-groq": "0.1.33", **GROQ, **OTEL},
        ("openinference-groq",),
        ("groq",),
        env=OI_NO_CONTENT,
    ),
    Setup(
        "openllmetry-cohere",
        "opentelemetry-instrumentation-cohere",
        {"opentelemetry-instrumentation-cohere": TL, **COHERE_5, **OTEL},
        ("openllmetry-cohere",),
        ("cohere",),
        env=TL_NO_CONTENT,
    ),
    Setup(
        "openlit-mistral-groq-cohere",
        "openlit",
        # openlit 1.45.0 requires openai<3, anthropic<1 and an opentelemetry-sdk that is not 1.45.2, and
        # instruments mistralai 1 only (see MISTRALAI_1)
        {
            "openlit": "1.45.0",
            "openai": "2.54.0",
            "anthropic": "0.125.0",
            **MISTRALAI_1,
            **GROQ,
            **COHERE,
            **otel("1.45.1"),
        },
        ("openlit",),
        ("mistral", "groq", "cohere"),
        env={"OPENLIT_DISABLE_TELEMETRY": "true", "TELEMETRY_DISABLED": "true"},
        notes="OpenLIT's Mistral, Groq and Cohere instrumentations",
    ),
    Setup(
        "openllmetry-ollama",
        "opentelemetry-instrumentation-ollama",
        {"opentelemetry-instrumentation-ollama": TL, **OLLAMA, **OTEL},
        ("openllmetry-ollama",),
        ("ollama",),
        env=TL_NO_CONTENT,
        notes="the ollama client on a local Ollama server (127.0.0.1:11434)",
    ),
    Setup(
        "openllmetry-watsonx",
        "opentelemetry-instrumentation-watsonx",
        # 0.62.4 instruments ibm-watsonx-ai's ModelInference, but declares (and imports) the deprecated
        # ibm-watson-machine-learning too: without it, `instrument()` does nothing (a dependency
        # conflict) or, skipping that check, fails to import its module. Its newest release, beside
        # the newest ibm-watsonx-ai (which then resolves pandas 2.1.4).
        {
            "opentelemetry-instrumentation-watsonx": TL,
            "ibm-watsonx-ai": "1.8.1",
            "ibm-watson-machine-learning": "1.0.370",
            **OTEL,
        },
        ("openllmetry-watsonx",),
        ("watsonx",),
        env=TL_NO_CONTENT,
        notes="ibm-watsonx-ai's ModelInference on IBM Cloud's watsonx.ai (us-south, IAM API key): "
        "generate, generate_text_stream, chat and chat_stream (which the instrumentation does not wrap)",
    ),
    Setup(
        "openllmetry-replicate",
        "opentelemetry-instrumentation-replicate",
        {"opentelemetry-instrumentation-replicate": TL, "replicate": "1.0.7", **OTEL},
        ("openllmetry-replicate",),
        ("replicate",),
        env=TL_NO_CONTENT,
        notes="replicate.run of a language model (meta/meta-llama-3-8b-instruct) on Replicate's predictions "
        "API; 0.62.4 records the model but no token counts (Replicate's metrics are not read): no fixture",
    ),
    Setup(
        "openllmetry-writer",
        "opentelemetry-instrumentation-writer",
        # 0.62.4 instruments writer-sdk < 3 only: with the newest writer-sdk 2
        {"opentelemetry-instrumentation-writer": TL, "writer-sdk": "2.4.0", **OTEL},
        ("openllmetry-writer",),
        ("writer",),
        env=TL_NO_CONTENT,
        notes="the writer-sdk's chat (Writer's API, a Palmyra model), plain and streamed; Writer's prices "
        "are not in the catalog: unpriced",
    ),
    Setup(
        "openllmetry-alephalpha",
        "opentelemetry-instrumentation-alephalpha",
        {"opentelemetry-instrumentation-alephalpha": TL, "aleph-alpha-client": "11.5.1", **OTEL},
        ("openllmetry-alephalpha",),
        ("aleph-alpha",),
        env=TL_NO_CONTENT,
        notes="the aleph-alpha-client's `Client.complete` (the only method it wraps); Aleph Alpha's prices "
        "are not in the catalog: unpriced",
    ),
    Setup(
        "openllmetry-sagemaker",
        "opentelemetry-instrumentation-sagemaker",
        {"opentelemetry-instrumentation-sagemaker": TL, **BOTO3, **OTEL},
        ("openllmetry-sagemaker",),
        ("sagemaker",),
        env=TL_NO_CONTENT,
        notes="boto3's sagemaker-runtime invoke_endpoint and invoke_endpoint_with_response_stream on an "
        "endpoint serving TGI's Messages API; 0.62.4 records the endpoint name as the model, no provider "
        "and no token counts: no fixture",
    ),
    Setup(
        "openinference-ollama",
        "openinference-instrumentation-ollama",
        {"openinference-instrumentation-ollama": "0.1.13", **OLLAMA, **OTEL},
        ("openinference-ollama",),
        ("ollama",),
        env=OI_NO_CONTENT,
        notes="the ollama client on a local Ollama server (127.0.0.1:11434)",
    ),
    Setup(
        "openlit-local",
        "openlit",
        # openlit 1.45.0 requires openai<3, anthropic<1 and an opentelemetry-sdk that is not 1.45.2
        {"openlit": "1.45.0", "openai": "2.54.0", "anthropic": "0.125.0", **OLLAMA, **otel("1.45.1")},
        ("openlit",),
        ("ollama", "ollama-v1", "vllm"),
        env={"OPENLIT_DISABLE_TELEMETRY": "true", "TELEMETRY_DISABLED": "true"},
        notes="OpenLIT's Ollama and OpenAI instrumentations on local servers: the ollama client on Ollama, "
        "the openai client on Ollama's OpenAI-compatible API and on vLLM's",
    ),
    # `openlit.init()` instruments every library it supports that is installed: a framework and its
    # provider client both record each call (OpenLIT's framework instrumentations beside its client ones)
    Setup(
        "openlit-langchain",
        "openlit",
        # openlit 1.45.0 requires openai<3, anthropic<1 and an opentelemetry-sdk that is not 1.45.2
        {
            "openlit": "1.45.0",
            "langgraph": "1.2.24",
            "langchain": "1.5.2",
            "langchain-anthropic": "1.7.10",
            **LANGCHAIN,
            **OPENLIT_CLIENTS,
        },
        ("openlit",),
        ("langchain", "langchain-tool", "langchain-anthropic", "langgraph-openai"),
        env=OPENLIT_ENV,
        beside="langchain",
        notes="`openlit.init()` with LangChain (ChatOpenAI, ChatAnthropic, LangChain 1's `create_agent`): "
        "OpenLIT's LangChain and LangGraph instrumentations beside its OpenAI and Anthropic ones",
    ),
    Setup(
        "openlit-llama-index",
        "openlit",
        # OpenLIT's LlamaIndex instrumentor instruments only where the `llama-index` package is installed
        # (without it, `llama-index-core` and the OpenAI LLM alone, it does nothing); llama-index 0.14.25
        # requires llama-index-llms-openai < 0.8
        {
            "openlit": "1.45.0",
            "llama-index": "0.14.25",
            "llama-index-core": "0.14.25",
            "llama-index-llms-openai": "0.7.10",
            **OPENLIT_CLIENTS,
        },
        ("openlit",),
        ("llama-index", "llama-index-fn-agent"),
        env=OPENLIT_ENV,
        beside="llama-index",
        notes="`openlit.init()` with LlamaIndex's OpenAI LLM (chat, and a function agent): OpenLIT's "
        "LlamaIndex and OpenAI instrumentations",
    ),
    Setup(
        "openlit-crewai",
        "openlit",
        {"openlit": "1.45.0", **CREWAI, **OPENLIT_CLIENTS},
        ("openlit",),
        ("crewai",),
        env={**OPENLIT_ENV, **CREWAI_ENV},
        beside="crewai",
        notes="`openlit.init()` with a one-agent CrewAI crew: OpenLIT's CrewAI, LiteLLM and OpenAI "
        "instrumentations",
    ),
    Setup(
        "openlit-litellm",
        "openlit",
        {"openlit": "1.45.0", "litellm": "1.110.2", **OPENLIT_CLIENTS},
        ("openlit",),
        ("litellm",),
        env={**OPENLIT_ENV, "LITELLM_TELEMETRY": "False", "LITELLM_LOCAL_MODEL_COST_MAP": "true"},
        beside="litellm",
        notes="`openlit.init()` with LiteLLM: OpenLIT's LiteLLM instrumentation beside its OpenAI and "
        "Anthropic ones",
    ),
    Setup(
        "openlit-openai-agents",
        "openlit",
        # openai-agents 0.21 and later require openai 3, which openlit 1.45.0 does not accept: 0.20.0
        {"openlit": "1.45.0", "openai-agents": "0.20.0", **OPENLIT_CLIENTS},
        ("openlit",),
        ("agents", "agents-stream"),
        env={**OPENLIT_ENV, "OPENAI_AGENTS_DONT_LOG_MODEL_DATA": "1"},
        beside="openai-agents",
        notes="`openlit.init()` with the OpenAI Agents SDK: OpenLIT's Agents and OpenAI instrumentations",
    ),
    Setup(
        "openlit-bedrock-google-genai",
        "openlit",
        {"openlit": "1.45.0", **BOTO3, **GOOGLE_GENAI, **OPENLIT_CLIENTS},
        ("openlit",),
        ("bedrock", "bedrock-invoke", "gemini"),
        env=OPENLIT_ENV,
        beside="bedrock-google-genai",
        notes="`openlit.init()` with boto3's bedrock-runtime and the google-genai SDK (Gemini API): "
        "OpenLIT's Bedrock and Google AI Studio instrumentations",
    ),
    Setup(
        "otel-genai-local",
        "opentelemetry-instrumentation-genai-openai",
        {"opentelemetry-instrumentation-genai-openai": "1.3b0", **UTIL_GENAI, **OPENAI, **OTEL},
        ("otel-genai-openai",),
        ("ollama-v1", "vllm", "groq-openai"),
        notes="the openai client on local servers: Ollama's OpenAI-compatible API (localhost:11434/v1) "
        "and vLLM's (localhost:8000/v1); and on Groq's (api.groq.com/openai/v1)",
    ),
    Setup(
        "openinference-openai-local",
        "openinference-instrumentation-openai",
        {**OI_OPENAI, **OPENAI, **OTEL},
        ("openinference-openai",),
        ("ollama-v1", "vllm", "groq-openai"),
        env=OI_NO_CONTENT,
        notes="the openai client on local servers (Ollama's OpenAI-compatible API and vLLM's) and on Groq's",
    ),
    Setup(
        "openllmetry-openai-local",
        "opentelemetry-instrumentation-openai",
        {**TL_OPENAI, **OPENAI, **OTEL},
        ("openllmetry-openai",),
        ("ollama-v1", "vllm", "groq-openai"),
        env=TL_NO_CONTENT,
        notes="the openai client on local servers (Ollama's OpenAI-compatible API and vLLM's) and on Groq's",
    ),
    Setup(
        "openinference-beeai",
        "openinference-instrumentation-beeai",
        {"openinference-instrumentation-beeai": "0.1.30", "beeai-framework": "0.1.85", **OPENAI, **OTEL},
        ("openinference-beeai",),
        ("beeai",),
        env={**OI_NO_CONTENT, "LITELLM_TELEMETRY": "False", "LITELLM_LOCAL_MODEL_COST_MAP": "true"},
        notes="the BeeAI framework (its OpenAI and Ollama chat models, LiteLLM underneath) with "
        "OpenInference's BeeAI instrumentor",
    ),
    Setup(
        "openinference-claude-agent-sdk",
        "openinference-instrumentation-claude-agent-sdk",
        {
            "openinference-instrumentation-claude-agent-sdk": "0.1.22",
            "claude-agent-sdk": "0.2.184",
            **OTEL,
        },
        ("openinference-claude-agent-sdk",),
        ("claude-agent",),
        # its bundled Claude Code CLI: no telemetry, no update check, no other traffic than the model's
        env={
            **OI_NO_CONTENT,
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        },
        notes="the Claude Agent SDK (its bundled Claude Code CLI, on the Anthropic stand-in) with "
        "OpenInference's instrumentor",
    ),
    Setup(
        "openinference-crewai",
        "openinference-instrumentation-crewai",
        {
            "openinference-instrumentation-crewai": "1.1.21",
            **OI_OPENAI,
            "openinference-instrumentation-litellm": "0.1.51",
            **CREWAI,
            **OTEL,
        },
        ("openinference-crewai", "openinference-openai", "openinference-litellm"),
        ("crewai",),
        env={**OI_NO_CONTENT, **CREWAI_ENV},
        notes="CrewAI with OpenInference's CrewAI, OpenAI and LiteLLM instrumentors",
    ),
    Setup(
        "openinference-crewai-events",
        "openinference-instrumentation-crewai",
        {
            "openinference-instrumentation-crewai": "1.1.21",
            **OI_OPENAI,
            "openinference-instrumentation-litellm": "0.1.51",
            **CREWAI,
            **OTEL,
        },
        ("openinference-crewai-events", "openinference-openai", "openinference-litellm"),
        ("crewai",),
        env={**OI_NO_CONTENT, **CREWAI_ENV},
        notes="the same with the CrewAI instrumentor's event-listener mode (`use_event_listener=True`), "
        "which records an LLM span per model call",
        beside="events",
    ),
    Setup(
        "openllmetry-crewai",
        "opentelemetry-instrumentation-crewai",
        {
            "opentelemetry-instrumentation-crewai": "0.62.4",
            **TL_OPENAI,
            "opentelemetry-instrumentation-litellm": "0.62.4",
            **CREWAI,
            **OTEL,
        },
        ("openllmetry-crewai", "openllmetry-openai", "openllmetry-litellm"),
        ("crewai",),
        env={**TL_NO_CONTENT, **CREWAI_ENV},
        notes="CrewAI with OpenLLMetry's CrewAI, OpenAI and LiteLLM instrumentors",
    ),
    Setup(
        "openinference-dspy",
        "openinference-instrumentation-dspy",
        {
            "openinference-instrumentation-dspy": "0.1.48",
            "openinference-instrumentation-litellm": "0.1.51",
            "dspy": "3.4.1",
            "litellm": "1.110.2",
            **OPENAI,
            **OTEL,
        },
        ("openinference-dspy", "openinference-litellm"),
        ("dspy",),
        # LiteLLM's and DSPy's model metadata from their bundled copies (both fetch it from the web)
        env={"LITELLM_TELEMETRY": "False", "LITELLM_LOCAL_MODEL_COST_MAP": "true", **OI_NO_CONTENT},
        notes="DSPy with OpenInference's DSPy and LiteLLM instrumentors",
    ),
    Setup(
        "openinference-haystack",
        "openinference-instrumentation-haystack",
        {"openinference-instrumentation-haystack": "0.1.46", **OI_OPENAI, **HAYSTACK, **OTEL},
        ("openinference-haystack", "openinference-openai"),
        ("haystack",),
        env={**OI_NO_CONTENT, **HAYSTACK_ENV},
        notes="a Haystack pipeline with OpenInference's Haystack and OpenAI instrumentors",
    ),
    Setup(
        "haystack-otel",
        "opentelemetry-haystack",
        {
            "opentelemetry-haystack": "2.0.0",
            "opentelemetry-instrumentation-genai-openai": "1.3b0",
            **UTIL_GENAI,
            **HAYSTACK,
            **OTEL,
        },
        ("haystack-otel", "otel-genai-openai"),
        ("haystack",),
        env=HAYSTACK_ENV,
        notes="Haystack's own tracing (opentelemetry-haystack's OpenTelemetryTracer, content tracing off) "
        "and the official OpenAI instrumentor",
        beside="otel-genai-openai",
    ),
    Setup(
        "openinference-pydantic-ai",
        "openinference-instrumentation-pydantic-ai",
        {
            "openinference-instrumentation-pydantic-ai": "0.1.30",
            "pydantic-ai-slim": "2.78.0",
            **OI_OPENAI,
            **OPENAI,
            **OTEL,
        },
        ("openinference-pydantic-ai", "pydantic-ai", "openinference-openai"),
        ("pydantic-ai",),
        env=OI_NO_CONTENT,
        notes="pydantic-ai's own instrumentation with OpenInference's span processor for it "
        "(`OpenInferenceSpanProcessor`) and OpenInference's OpenAI instrumentor",
    ),
    Setup(
        "openinference-google-adk",
        "openinference-instrumentation-google-adk",
        # google-adk 2.13.0 requires google-genai < 3 and opentelemetry-sdk < 1.45
        {
            "openinference-instrumentation-google-adk": "1.0.5",
            "google-adk": "2.13.0",
            "google-genai": "2.34.0",
            "openinference-instrumentation-google-genai": "1.4.14",
            **otel("1.44.0"),
        },
        ("openinference-google-adk", "openinference-google-genai"),
        ("adk", "adk-tool"),
        env=OI_NO_CONTENT,
        notes="Google's Agent Development Kit (its own spans on too) with OpenInference's ADK and Google "
        "GenAI instrumentors",
    ),
    Setup(
        "openinference-smolagents",
        "openinference-instrumentation-smolagents",
        {
            "openinference-instrumentation-smolagents": "0.1.43",
            "smolagents": "1.26.0",
            **OI_OPENAI,
            **OPENAI,
            **OTEL,
        },
        ("openinference-smolagents", "openinference-openai"),
        ("smolagents",),
        env=OI_NO_CONTENT,
        notes="smolagents with OpenInference's smolagents and OpenAI instrumentors: each model call is "
        "recorded by both layers",
    ),
    Setup(
        "openinference-agno",
        "openinference-instrumentation-agno",
        {"openinference-instrumentation-agno": "1.0.15", "agno": "3.1.10", **OI_OPENAI, **OPENAI, **OTEL},
        ("openinference-agno", "openinference-openai"),
        ("agno",),
        env={**OI_NO_CONTENT, **AGNO_ENV},
        notes="Agno with OpenInference's Agno and OpenAI instrumentors",
    ),
    Setup(
        "openinference-autogen-agentchat",
        "openinference-instrumentation-autogen-agentchat",
        {
            "openinference-instrumentation-autogen-agentchat": "0.1.22",
            "autogen-agentchat": "0.7.5",
            "autogen-ext[openai]": "0.7.5",
            **OI_OPENAI,
            **OPENAI,
            **OTEL,
        },
        ("openinference-autogen-agentchat", "openinference-openai"),
        ("autogen",),
        env=OI_NO_CONTENT,
        notes="AutoGen AgentChat with OpenInference's AutoGen AgentChat and OpenAI instrumentors",
    ),
    Setup(
        "ag2",
        "ag2",
        {**AG2, **OTEL},
        ("ag2",),
        ("ag2",),
        notes="AG2's own tracing (`autogen.opentelemetry`: `instrument_llm_wrapper` and `instrument_agent`)",
    ),
    Setup(
        "ag2-openinference-openai",
        "ag2",
        {**AG2, **OI_OPENAI, **OTEL},
        ("ag2", "openinference-openai"),
        ("ag2",),
        env=OI_NO_CONTENT,
        beside="openinference-openai",
        notes="AG2's own tracing with OpenInference's OpenAI instrumentor beside it",
    ),
    Setup(
        "ag2-openllmetry-openai",
        "ag2",
        {**AG2, **TL_OPENAI, **OTEL},
        ("ag2", "openllmetry-openai"),
        ("ag2",),
        env=TL_NO_CONTENT,
        beside="openllmetry-openai",
        notes="AG2's own tracing with OpenLLMetry's OpenAI instrumentor beside it",
    ),
    Setup(
        "openinference-ag2",
        "openinference-instrumentation-ag2",
        {"openinference-instrumentation-ag2": "0.1.12", **AG2, **OI_OPENAI, **OTEL},
        ("openinference-ag2", "openinference-openai"),
        ("ag2",),
        env=OI_NO_CONTENT,
        notes="AG2 with OpenInference's AG2 and OpenAI instrumentors",
    ),
    Setup(
        "mcp-sdk-baggage",
        "mcp",
        {**MCP, **BAGGAGE_PROCESSOR, **OI_OPENAI, **OPENAI, **OTEL},
        ("baggage-processor", "mcp-sdk", "openinference-openai"),
        ("mcp",),
        env=OI_NO_CONTENT,
        beside="baggage",
        notes=MCP_NOTES + "; no MCP instrumentor: the mcp SDK's own spans and trace context, OpenInference's "
        "OpenAI instrumentor and OpenTelemetry's Baggage span processor in both",
    ),
    Setup(
        "openllmetry-mcp",
        "opentelemetry-instrumentation-mcp",
        {"opentelemetry-instrumentation-mcp": TL, **MCP_1, **TL_OPENAI, **OPENAI, **OTEL},
        ("openllmetry-mcp", "openllmetry-openai"),
        ("mcp",),
        env=TL_NO_CONTENT,
        notes=MCP_NOTES + "; OpenLLMetry's MCP and OpenAI instrumentors in both",
    ),
    Setup(
        "openllmetry-mcp-baggage",
        "opentelemetry-instrumentation-mcp",
        {
            "opentelemetry-instrumentation-mcp": TL,
            **MCP_1,
            **BAGGAGE_PROCESSOR,
            **TL_OPENAI,
            **OPENAI,
            **OTEL,
        },
        ("baggage-processor", "openllmetry-mcp", "openllmetry-openai"),
        ("mcp",),
        env=TL_NO_CONTENT,
        beside="baggage",
        notes=MCP_NOTES + "; OpenLLMetry's MCP and OpenAI instrumentors and OpenTelemetry's Baggage span "
        "processor in both",
    ),
    Setup(
        "openinference-mcp",
        "openinference-instrumentation-mcp",
        {"openinference-instrumentation-mcp": "2.0.13", **MCP, **OI_OPENAI, **OPENAI, **OTEL},
        ("openinference-mcp", "openinference-openai"),
        ("mcp",),
        env=OI_NO_CONTENT,
        notes=MCP_NOTES + "; OpenInference's MCP (context propagation) and OpenAI instrumentors in both",
    ),
    Setup(
        "openinference-mcp-baggage",
        "openinference-instrumentation-mcp",
        {
            "openinference-instrumentation-mcp": "2.0.13",
            **MCP,
            **BAGGAGE_PROCESSOR,
            **OI_OPENAI,
            **OPENAI,
            **OTEL,
        },
        ("baggage-processor", "openinference-mcp", "openinference-openai"),
        ("mcp",),
        env=OI_NO_CONTENT,
        beside="baggage",
        notes=MCP_NOTES + "; OpenInference's MCP and OpenAI instrumentors and OpenTelemetry's Baggage span "
        "processor in both",
    ),
    Setup(
        "openllmetry-openai-agents",
        "opentelemetry-instrumentation-openai-agents",
        {
            "opentelemetry-instrumentation-openai-agents": TL,
            "openai-agents": "0.24.0",
            **TL_OPENAI,
            **OPENAI,
            **OTEL,
        },
        ("openllmetry-openai-agents", "openllmetry-openai"),
        ("agents", "agents-stream"),
        env={**TL_NO_CONTENT, "OPENAI_AGENTS_DONT_LOG_MODEL_DATA": "1"},
        notes="openai-agents with OpenLLMetry's OpenAI Agents and OpenAI instrumentors",
    ),
    Setup(
        "openllmetry-llamaindex",
        "opentelemetry-instrumentation-llamaindex",
        # llama-index-llms-openai 0.8.3 requires openai < 3
        {
            "opentelemetry-instrumentation-llamaindex": TL,
            "llama-index-core": "0.14.25",
            "llama-index-llms-openai": "0.8.3",
            "llama-index-llms-openai-like": "0.8.1",
            **TL_OPENAI,
            "openai": "2.54.0",
            **OTEL,
        },
        ("openllmetry-llamaindex", "openllmetry-openai"),
        ("llama-index", "llama-index-agent"),
        env=TL_NO_CONTENT,
        notes="LlamaIndex with OpenLLMetry's LlamaIndex and OpenAI instrumentors",
    ),
    Setup(
        "otel-genai-openai-agents",
        "opentelemetry-instrumentation-genai-openai-agents",
        {
            "opentelemetry-instrumentation-genai-openai-agents": "1.3b0",
            "opentelemetry-instrumentation-genai-openai": "1.3b0",
            **UTIL_GENAI,
            "openai-agents": "0.24.0",
            **OPENAI,
            **OTEL,
        },
        ("otel-genai-openai-agents", "otel-genai-openai"),
        ("agents", "agents-stream"),
        env={"OPENAI_AGENTS_DONT_LOG_MODEL_DATA": "1"},
        notes="the OpenAI Agents SDK with the official OpenAI Agents instrumentor (workflow, agent and tool "
        "spans, no model-call span of its own) and the official OpenAI instrumentor",
        beside="otel-genai-openai",
    ),
    Setup(
        "otel-genai-llama-index",
        "opentelemetry-instrumentation-genai-llama-index",
        # llama-index-llms-openai 0.8.3 requires openai < 3
        {
            "opentelemetry-instrumentation-genai-llama-index": "1.3b0",
            "opentelemetry-instrumentation-genai-openai": "1.3b0",
            **UTIL_GENAI,
            "llama-index-core": "0.14.25",
            "llama-index-llms-openai": "0.8.3",
            "llama-index-llms-openai-like": "0.8.1",
            "openai": "2.54.0",
            **OTEL,
        },
        ("otel-genai-llama-index", "otel-genai-openai"),
        ("llama-index", "llama-index-agent"),
        notes="LlamaIndex with the official LlamaIndex instrumentor (agent, tool and workflow spans, no "
        "model-call span of its own) and the official OpenAI instrumentor",
        beside="otel-genai-openai",
    ),
    Setup(
        "otel-genai-dspy",
        "opentelemetry-instrumentation-genai-dspy",
        {
            "opentelemetry-instrumentation-genai-dspy": "1.3b0",
            **UTIL_GENAI,
            "dspy": "3.4.1",
            "litellm": "1.110.2",
            **OPENAI,
            **OTEL,
        },
        ("otel-genai-dspy",),
        ("dspy", "dspy-agent"),
        # LiteLLM's and DSPy's model metadata from their bundled copies (both fetch it from the web)
        env={"LITELLM_TELEMETRY": "False", "LITELLM_LOCAL_MODEL_COST_MAP": "true"},
        notes="DSPy with the official DSPy instrumentor alone",
    ),
    Setup(
        "otel-genai-dspy-openai",
        "opentelemetry-instrumentation-genai-dspy",
        {
            "opentelemetry-instrumentation-genai-dspy": "1.3b0",
            "opentelemetry-instrumentation-genai-openai": "1.3b0",
            **UTIL_GENAI,
            "dspy": "3.4.1",
            "litellm": "1.110.2",
            **OPENAI,
            **OTEL,
        },
        ("otel-genai-dspy", "otel-genai-openai"),
        ("dspy", "dspy-agent"),
        env={"LITELLM_TELEMETRY": "False", "LITELLM_LOCAL_MODEL_COST_MAP": "true"},
        notes="DSPy with the official DSPy and OpenAI instrumentors",
        beside="otel-genai-openai",
    ),
    Setup(
        "otel-genai-agno",
        "opentelemetry-instrumentation-genai-agno",
        {
            "opentelemetry-instrumentation-genai-agno": "1.3b0",
            "opentelemetry-instrumentation-genai-openai": "1.3b0",
            **UTIL_GENAI,
            "agno": "3.1.10",
            **OPENAI,
            **OTEL,
        },
        ("otel-genai-agno", "otel-genai-openai"),
        ("agno",),
        env=AGNO_ENV,
        notes="Agno with the official Agno instrumentor (agent and tool spans, no model-call span of its "
        "own) and the official OpenAI instrumentor",
        beside="otel-genai-openai",
    ),
    Setup(
        "openllmetry-together",
        "opentelemetry-instrumentation-together",
        # 0.62.4 instruments together < 2 only (it wraps together 1's resources): with the newest together 1
        {"opentelemetry-instrumentation-together": TL, "together": "1.5.35", **OTEL},
        ("openllmetry-together",),
        ("together",),
        env=TL_NO_CONTENT,
        notes="the Together AI SDK (together 1) at a stand-in of Together's API",
    ),
    Setup(
        "openinference-together",
        "openinference-instrumentation-together",
        {"openinference-instrumentation-together": "0.1.13", "together": "3.1.1", **OTEL},
        ("openinference-together",),
        ("together",),
        env=OI_NO_CONTENT,
        notes="the Together AI SDK at a stand-in of Together's API",
    ),
    Setup(
        "openinference-portkey",
        "openinference-instrumentation-portkey",
        {"openinference-instrumentation-portkey": "0.1.22", "portkey-ai": "2.3.4", **OTEL},
        ("openinference-portkey",),
        ("portkey",),
        env=OI_NO_CONTENT,
        notes="the Portkey SDK at a stand-in of Portkey's gateway (virtual keys of OpenAI and Groq)",
    ),
    Setup(
        "otel-genai-portkey",
        "opentelemetry-instrumentation-genai-portkey",
        {"opentelemetry-instrumentation-genai-portkey": "1.3b0", **UTIL_GENAI, "portkey-ai": "2.3.4", **OTEL},
        ("otel-genai-portkey",),
        ("portkey",),
        notes="the Portkey SDK at a stand-in of Portkey's gateway (virtual keys of OpenAI and Groq)",
    ),
    Setup(
        "openinference-instructor",
        "openinference-instrumentation-instructor",
        # instructor 1.17.0 requires jiter < 0.15, which openai 3.4 and later do not accept: openai 3.3.0
        {
            "openinference-instrumentation-instructor": "0.1.29",
            "instructor": "1.17.0",
            **OI_OPENAI,
            "openai": "3.3.0",
            **OTEL,
        },
        ("openinference-instructor", "openinference-openai"),
        ("instructor",),
        env=OI_NO_CONTENT,
        notes="Instructor over the openai client with OpenInference's Instructor and OpenAI instrumentors",
    ),
    Setup(
        "openinference-openllmetry",
        "openinference-instrumentation-openllmetry",
        # 0.1.23 requires opentelemetry-semantic-conventions-ai < 0.5, which OpenLLMetry's instrumentations
        # from 0.54 on do not accept: with the newest OpenAI instrumentation that does, 0.53.3
        {
            "openinference-instrumentation-openllmetry": "0.1.23",
            "opentelemetry-instrumentation-openai": "0.53.3",
            **OPENAI,
            **OTEL,
        },
        ("openinference-openllmetry", "openllmetry-openai"),
        ("openai",),
        # its span processor converts only the spans that carry the prompt: content capture on
        env={"TRACELOOP_TELEMETRY": "false", "TRACELOOP_TRACE_CONTENT": "true"},
        notes="OpenLLMetry's OpenAI instrumentation with OpenInference's span processor for OpenLLMetry's "
        "spans (`openinference.instrumentation.openllmetry.OpenInferenceSpanProcessor`), content on",
    ),
    Setup(
        "openinference-openlit",
        "openinference-instrumentation-openlit",
        # openlit 1.45.0's pins (see the openlit setup)
        {
            "openinference-instrumentation-openlit": "0.1.19",
            "openlit": "1.45.0",
            "openai": "2.54.0",
            "anthropic": "0.125.0",
            **otel("1.45.1"),
        },
        ("openinference-openlit", "openlit"),
        ("openai", "anthropic"),
        env={"OPENLIT_DISABLE_TELEMETRY": "true", "TELEMETRY_DISABLED": "true"},
        notes="OpenLIT with OpenInference's span processor for OpenLIT's spans "
        "(`openinference.instrumentation.openlit.OpenInferenceSpanProcessor`)",
    ),
)

#: Setups recorded again on a call that names its end user (`user=`): the setup's pins, instrumentation
#: and environment, with the driver's call group of that call, and where the library records the user.
_END_USER = {
    "openlit": ("openai-user", "OpenLIT records it as `gen_ai.request.user`"),
    "openllmetry-openai": ("openai-user", "OpenLLMetry records it as `gen_ai.user`"),
    "litellm": ("litellm-user", "LiteLLM's callback records it as `llm.user`"),
}
SETUPS += tuple(
    replace(
        setup,
        name=f"{setup.name}-user",
        calls=(_END_USER[setup.name][0],),
        notes=f"the end user named on the call (`user=`): {_END_USER[setup.name][1]}",
    )
    for setup in SETUPS
    if setup.name in _END_USER
)


# The driver's environment starts without these: no endpoint, key or capture setting from the host.
_CLEARED_ENV = (
    "OTEL_",
    "OPENAI_",
    "AZURE_",
    "ANTHROPIC_",
    "GEMINI_",
    "GOOGLE_",
    "AWS_",
    "LANGFUSE_",
    "TRACELOOP_",
    "OPENLIT_",
    "MISTRAL_",
    "GROQ_",
    "CO_",
    "COHERE_",
    "CREWAI_",
    "MASTRA_",
    "AGNO_",
    "AUTOGEN_",
    "SMOLAGENTS_",
    "HAYSTACK_",
    "DSPY_",
    "LITELLM_",
    "LANGSMITH_",
    "LANGCHAIN_",
    "LANGTRACE_",
    "TOGETHER_",
    "PORTKEY_",
    "INSTRUCTOR_",
    "ENABLE_",
    "OLLAMA_",
    "BEEAI_",
    "CLAUDE",
    "DISABLE_",
    "WATSONX_",
    "WX_",
    "REPLICATE_",
    "IBM_",
    "WRITER_",
)


def log(msg: str) -> None:
    print(f"[record {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def uv() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


def ensure_node(setup: Setup, root: Path) -> Path:
    """The setup's folder with exactly its npm pins installed (reused when a previous run installed the
    same), and the driver beside them (Node.js resolves packages from the importing file's folder)."""
    folder = root / setup.name
    stamp = folder / ".tokenbook-pins.json"
    wanted = json.dumps(setup.pins, sort_keys=True)
    if not (stamp.exists() and stamp.read_text() == wanted):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / "package.json").write_text('{"private": true, "type": "module"}\n')
        specs = [f"{name}@{version}" for name, version in setup.pins.items()]
        log(f"{setup.name}: installing {' '.join(specs)}")
        npm = ["npm", "install", "--no-audit", "--no-fund", "--silent", "--save-exact", *specs]
        subprocess.run(npm, cwd=folder, check=True)
        stamp.write_text(wanted)
    shutil.copyfile(DRIVER_JS, folder / DRIVER_JS.name)
    return folder


# The npm packages worth recording beside the pins: these scopes, and the provider SDKs a framework brings
NODE_KEY_SCOPES = ("@opentelemetry/", "@ai-sdk/", "@arizeai/", "@traceloop/", "@langchain/", "@mastra/")
NODE_KEY_PACKAGES = ("openai", "@anthropic-ai/sdk", "@aws-sdk/client-bedrock-runtime", "ai", "@google/genai")


def node_packages(folder: Path, setup: Setup) -> dict[str, str]:
    """The installed version of each pin and of the OpenTelemetry and AI SDK packages beside them."""
    found: dict[str, str] = {}
    # the shallowest copy of a package first: the one the folder's own imports resolve to
    manifests = sorted((folder / "node_modules").glob("**/package.json"), key=lambda p: (len(p.parts), p))
    for manifest in manifests:
        try:
            meta = json.loads(manifest.read_text())
        except ValueError:
            continue
        name = meta.get("name")
        if isinstance(name, str) and (
            name in setup.pins or name in NODE_KEY_PACKAGES or name.startswith(NODE_KEY_SCOPES)
        ):
            found.setdefault(name, str(meta.get("version")))
    return {k: v for k, v in sorted(found.items()) if k in setup.pins or not k.startswith("@opentelemetry/")}


def ensure_venv(setup: Setup, root: Path) -> Path:
    """The setup's venv with exactly its pins installed (reused when a previous run installed the same)."""
    venv = root / setup.name
    python = venv / "bin" / "python"
    stamp = venv / ".tokenbook-pins.json"
    wanted = json.dumps(setup.pins, sort_keys=True)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    specs = [f"{name}=={version}" for name, version in setup.pins.items()]
    log(f"{setup.name}: installing {' '.join(specs)}")
    tool = uv()
    if tool:
        subprocess.run([tool, "venv", "-q", "--python", PYTHON, str(venv)], check=True)
        subprocess.run([tool, "pip", "install", "-q", "--python", str(python), *specs], check=True)
    else:
        subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *specs], check=True)
    stamp.write_text(wanted)
    return venv


def resolved_packages(venv: Path, setup: Setup) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version"
        " for d in m.distributions()}))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True
    )
    every: dict[str, str] = json.loads(out.stdout)
    return {k: v for k, v in sorted(every.items()) if k in setup.pins or KEY_PACKAGES.match(k)}


def stderr_by_style(stderr: str) -> dict[str, list[str]]:
    """The driver's stderr split at its `--- call style NAME` markers; each distinct line once, counted."""
    sections: dict[str, Counter[str]] = {}
    style = "(setup)"
    for line in stderr.splitlines():
        if line.startswith("--- call style "):
            style = line.removeprefix("--- call style ").strip()
            continue
        if line.strip():
            sections.setdefault(style, Counter())[line.strip()[:200]] += 1
    return {
        s: [f"{line} (x{n})" if n > 1 else line for line, n in lines.most_common(8)]
        for s, lines in sections.items()
    }


def has_usage_span(bodies: list[bytes]) -> bool:
    return any(span.model and span.has_usage for body in bodies for span in decode(body))


def record(setup: Setup, venv_root: Path, out: Path) -> dict[str, Any]:
    """Runs one setup; writes its fixtures; answers what happened, for the index."""
    result: dict[str, Any] = {"library": setup.library, "version": setup.version, "notes": setup.notes}
    try:
        venv = ensure_node(setup, venv_root) if setup.runtime == "node" else ensure_venv(setup, venv_root)
    except subprocess.CalledProcessError as e:
        result["status"] = f"install failed: {e}"
        return result
    packages = node_packages(venv, setup) if setup.runtime == "node" else resolved_packages(venv, setup)
    result["packages"] = packages
    server = stubs.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_CLEARED_ENV)}
        env.update(
            {
                "OPENAI_BASE_URL": f"{server.url}/v1",
                "ANTHROPIC_BASE_URL": server.url,
                "GEMINI_BASE_URL": server.url,
                "BEDROCK_BASE_URL": server.url,
                "MISTRAL_BASE_URL": f"{server.url}/mistral",
                "GROQ_BASE_URL": server.url,
                "COHERE_BASE_URL": server.url,
                "TOGETHER_BASE_URL": f"{server.url}/together/v1",
                "PORTKEY_BASE_URL": f"{server.url}/portkey/v1",
                "VERTEX_BASE_URL": server.url,
                "OPENAI_API_KEY": "sk-test",
                "ANTHROPIC_API_KEY": "sk-ant-test",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "TB_WORKDIR": str(venv),
                # no auto-configured exporters, metrics or logs from anything the driver did not set up
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_SERVICE_NAME": "tokenbook-conformance",
                **setup.env,
            }
        )
        runner = (
            ["node", str(venv / DRIVER_JS.name)]
            if setup.runtime == "node"
            else [str(venv / "bin" / "python"), str(DRIVER)]
        )
        cmd = [
            *runner,
            "--stub",
            server.url,
            "--sink",
            server.sink_url,
            "--instrument",
            ",".join(setup.instrument),
            "--calls",
            ",".join(setup.calls),
        ]
        log(f"{setup.name}: running the driver")
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=DRIVER_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            result["status"] = f"driver timed out after {DRIVER_TIMEOUT}s"
            result["stderr"] = str(e.stderr or "")[-2000:]
            return result
        styles = [json.loads(line[9:]) for line in proc.stdout.splitlines() if line.startswith("TB-STYLE ")]
        if proc.returncode != 0 or not styles:
            result["status"] = f"driver exited {proc.returncode}"
            result["stderr"] = proc.stderr[-3000:]
            return result
        rec = server.recording
        result["status"] = "ok"
        result["fixtures"] = []
        result["not_recorded"] = {}
        for style in styles:
            name = style["style"]
            bodies = rec.exports_of(name)
            calls = rec.calls_of(name)
            if not style["ok"]:
                result["not_recorded"][name] = "call failed: " + style["error"].strip().splitlines()[-1]
                continue
            if not calls:
                result["not_recorded"][name] = "the call reached no stub"
                continue
            if not has_usage_span(bodies):
                spans = [s for b in bodies for s in decode(b)]
                result["not_recorded"][name] = f"no span with a model and token usage ({len(spans)} spans)"
                continue
            fixture = {
                "library": setup.library,
                "version": setup.version,
                "setup": setup.name,
                "instrumentation": list(setup.instrument),
                "packages": packages,
                "call_style": name,
                **({"beside": setup.beside} if setup.beside else {}),
                "true_calls": calls,
                "otlp": [base64.b64encode(b).decode("ascii") for b in bodies],
            }
            path = out / setup.fixture_name(name)
            path.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            result["fixtures"].append(path.name)
        warnings = stderr_by_style(proc.stderr)
        if warnings:
            result["stderr"] = warnings
        return result
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="a setup name (repeatable)")
    ap.add_argument("--out", type=Path, default=FIXTURES)
    ap.add_argument("--venvs", type=Path, default=Path("/tmp/tokenbook-conformance"))
    ap.add_argument("--list", action="store_true", help="list the setups and exit")
    args = ap.parse_args(argv)
    if args.list:
        for s in SETUPS:
            print(f"{s.name:26} {s.library}=={s.version}  calls={','.join(s.calls)}")
        return 0
    unknown = set(args.only) - {s.name for s in SETUPS}
    if unknown:
        ap.error(f"unknown setup(s): {', '.join(sorted(unknown))}")
    chosen = [s for s in SETUPS if not args.only or s.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    args.venvs.mkdir(parents=True, exist_ok=True)
    index_path = args.out / "_index.json"
    index: dict[str, Any] = json.loads(index_path.read_text()) if index_path.exists() else {}
    failed = 0
    for setup in chosen:
        result = record(setup, args.venvs, args.out)
        index[setup.name] = result
        log(
            f"{setup.name}: {result['status']}; {len(result.get('fixtures', []))} fixtures"
            + "".join(f"\n    not recorded {k}: {v}" for k, v in result.get("not_recorded", {}).items())
        )
        if result["status"] != "ok":
            failed += 1
            log(result.get("stderr", "")[-1500:])
        index_path.write_text(json.dumps(dict(sorted(index.items())), indent=1) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
