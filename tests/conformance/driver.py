"""The program that `record.py` runs inside each throwaway venv: instrument, call the stubs, export.

It imports only what that venv has (the provider SDKs, the instrumentation libraries, the OpenTelemetry
SDK and its OTLP/HTTP exporter), never tokenbook. Usage:

    driver.py --stub URL --sink URL --instrument NAME[,NAME] --calls GROUP[,GROUP]

A global SDK `TracerProvider` with a `BatchSpanProcessor` and the OTLP/HTTP exporter sends to the
recorder's sink at `SINK/v1/traces` (for an SDK that makes its own provider, `SDK_SETUPS`, that SDK's
setup call with an OTLP/HTTP exporter to the sink instead). Before each call style the driver
flushes the provider and tells the recorder the style's name (`POST URL/_tb/style`), so exports and
provider answers are split per style.
It prints one line per call style on stdout: `TB-STYLE {"style": ..., "ok": bool, "error": str | null}`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

TIMEOUT = 10.0
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
# A cached system prompt: the stub answers with cache reads and writes whatever the request says.
ANTHROPIC_SYSTEM = [
    {
        "type": "text",
        "text": "You are a terse weather bot.",
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    }
]


# -- instrumentation ------------------------------------------------------------------------------------


#: Instrumentors switched on with `Instrumentor().instrument(tracer_provider=...)` alone: the setup's
#: instrumentor name -> (module, class). The others are switched on in `instrument`.
_INSTRUMENTORS: dict[str, tuple[str, str]] = {
    "otel-genai-openai": ("opentelemetry.instrumentation.genai.openai", "OpenAIInstrumentor"),
    "otel-genai-langchain": ("opentelemetry.instrumentation.genai.langchain", "LangChainInstrumentor"),
    "otel-genai-bedrock": ("opentelemetry.instrumentation.genai.bedrock", "BedrockInstrumentor"),
    "otel-openai-v2": ("opentelemetry.instrumentation.openai_v2", "OpenAIInstrumentor"),
    "otel-genai-anthropic": ("opentelemetry.instrumentation.genai.anthropic", "AnthropicInstrumentor"),
    "openinference-openai": ("openinference.instrumentation.openai", "OpenAIInstrumentor"),
    "openinference-anthropic": ("openinference.instrumentation.anthropic", "AnthropicInstrumentor"),
    "openinference-langchain": ("openinference.instrumentation.langchain", "LangChainInstrumentor"),
    "openllmetry-openai": ("opentelemetry.instrumentation.openai", "OpenAIInstrumentor"),
    "openllmetry-anthropic": ("opentelemetry.instrumentation.anthropic", "AnthropicInstrumentor"),
    "openllmetry-langchain": ("opentelemetry.instrumentation.langchain", "LangchainInstrumentor"),
    "otel-google-genai": ("opentelemetry.instrumentation.google_genai", "GoogleGenAiSdkInstrumentor"),
    "openinference-google-genai": ("openinference.instrumentation.google_genai", "GoogleGenAIInstrumentor"),
    "openllmetry-google-genai": (
        "opentelemetry.instrumentation.google_generativeai",
        "GoogleGenerativeAiInstrumentor",
    ),
    "openllmetry-vertexai": ("opentelemetry.instrumentation.vertexai", "VertexAIInstrumentor"),
    "openinference-vertexai": ("openinference.instrumentation.vertexai", "VertexAIInstrumentor"),
    "otel-botocore": ("opentelemetry.instrumentation.botocore", "BotocoreInstrumentor"),
    "openllmetry-bedrock": ("opentelemetry.instrumentation.bedrock", "BedrockInstrumentor"),
    "openinference-bedrock": ("openinference.instrumentation.bedrock", "BedrockInstrumentor"),
    "openinference-llama-index": ("openinference.instrumentation.llama_index", "LlamaIndexInstrumentor"),
    "openinference-litellm": ("openinference.instrumentation.litellm", "LiteLLMInstrumentor"),
    "openinference-crewai": ("openinference.instrumentation.crewai", "CrewAIInstrumentor"),
    "openllmetry-crewai": ("opentelemetry.instrumentation.crewai", "CrewAIInstrumentor"),
    "openllmetry-litellm": ("opentelemetry.instrumentation.litellm", "LiteLLMInstrumentor"),
    "openinference-dspy": ("openinference.instrumentation.dspy", "DSPyInstrumentor"),
    "openinference-haystack": ("openinference.instrumentation.haystack", "HaystackInstrumentor"),
    "openinference-google-adk": ("openinference.instrumentation.google_adk", "GoogleADKInstrumentor"),
    "openinference-smolagents": ("openinference.instrumentation.smolagents", "SmolagentsInstrumentor"),
    "openinference-agno": ("openinference.instrumentation.agno", "AgnoInstrumentor"),
    "openinference-ag2": ("openinference.instrumentation.ag2", "AG2Instrumentor"),
    "openinference-mcp": ("openinference.instrumentation.mcp", "MCPInstrumentor"),
    "openllmetry-mcp": ("opentelemetry.instrumentation.mcp", "McpInstrumentor"),
    "openinference-autogen-agentchat": (
        "openinference.instrumentation.autogen_agentchat",
        "AutogenAgentChatInstrumentor",
    ),
    "openllmetry-llamaindex": ("opentelemetry.instrumentation.llamaindex", "LlamaIndexInstrumentor"),
    "otel-genai-llama-index": ("opentelemetry.instrumentation.genai.llama_index", "LlamaIndexInstrumentor"),
    "otel-genai-dspy": ("opentelemetry.instrumentation.genai.dspy", "DSPyInstrumentor"),
    "otel-genai-agno": ("opentelemetry.instrumentation.genai.agno", "AgnoInstrumentor"),
    "openllmetry-mistralai": ("opentelemetry.instrumentation.mistralai", "MistralAiInstrumentor"),
    "openinference-mistralai": ("openinference.instrumentation.mistralai", "MistralAIInstrumentor"),
    "openllmetry-groq": ("opentelemetry.instrumentation.groq", "GroqInstrumentor"),
    "openinference-groq": ("openinference.instrumentation.groq", "GroqInstrumentor"),
    "openllmetry-cohere": ("opentelemetry.instrumentation.cohere", "CohereInstrumentor"),
    "openllmetry-together": ("opentelemetry.instrumentation.together", "TogetherAiInstrumentor"),
    "openinference-together": ("openinference.instrumentation.together", "TogetherInstrumentor"),
    "openinference-portkey": ("openinference.instrumentation.portkey", "PortkeyInstrumentor"),
    "otel-genai-portkey": ("opentelemetry.instrumentation.genai.portkey", "PortkeyInstrumentor"),
    "openinference-instructor": ("openinference.instrumentation.instructor", "InstructorInstrumentor"),
    "openllmetry-ollama": ("opentelemetry.instrumentation.ollama", "OllamaInstrumentor"),
    "openllmetry-watsonx": ("opentelemetry.instrumentation.watsonx", "WatsonxInstrumentor"),
    "openllmetry-replicate": ("opentelemetry.instrumentation.replicate", "ReplicateInstrumentor"),
    "openllmetry-sagemaker": ("opentelemetry.instrumentation.sagemaker", "SageMakerInstrumentor"),
    "openllmetry-writer": ("opentelemetry.instrumentation.writer", "WriterInstrumentor"),
    "openllmetry-alephalpha": ("opentelemetry.instrumentation.alephalpha", "AlephAlphaInstrumentor"),
    "openinference-ollama": ("openinference.instrumentation.ollama", "OllamaInstrumentor"),
    "openinference-beeai": ("openinference.instrumentation.beeai", "BeeAIInstrumentor"),
    "openinference-claude-agent-sdk": (
        "openinference.instrumentation.claude_agent_sdk",
        "ClaudeAgentSDKInstrumentor",
    ),
}


def instrument(name: str, provider: TracerProvider) -> None:
    """Switch on the instrumentor `name` (a `Setup`'s) with `provider`."""
    if (known := _INSTRUMENTORS.get(name)) is not None:
        module, cls = known
        getattr(importlib.import_module(module), cls)().instrument(tracer_provider=provider)
        return
    if name == "anthropic-sdk":
        return  # the anthropic SDK's own spans: on by default once a global SDK TracerProvider is set
    if name == "openinference-openai-agents":
        from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

        # exclusive_processor (the default) replaces the agents SDK's own exporter to OpenAI's backend
        OpenAIAgentsInstrumentor().instrument(tracer_provider=provider, exclusive_processor=True)
    elif name == "openlit":
        import openlit

        pricing = os.path.join(os.environ["TB_WORKDIR"], "openlit-pricing.json")
        with open(pricing, "w", encoding="utf-8") as f:
            json.dump({"chat": {}, "embeddings": {}, "images": {}, "audio": {}}, f)
        # The global provider set above is reused; no exporter of its own, no metrics, no events, a local
        # pricing file (the default fetches one from the web), and no HTTP-client spans.
        openlit.init(
            application_name="tokenbook-conformance",
            environment="conformance",
            disable_metrics=True,
            disable_events=True,
            pricing_json=pricing,
            capture_message_content=False,
            disabled_instrumentors=["httpx", "requests", "urllib", "urllib3", "aiohttp-client"],
        )
    elif name == "langfuse":
        from langfuse import Langfuse

        # Langfuse's spans on the driver's provider (its documented way into an existing OpenTelemetry
        # set-up), none exported by Langfuse's own processor
        Langfuse(
            public_key="pk-lf-test",
            secret_key="sk-lf-test",
            base_url=os.environ["OPENAI_BASE_URL"],
            tracer_provider=provider,
            should_export_span=lambda span: False,
        )
    elif name == "langfuse-langchain":
        from langchain_core.tracers.context import register_configure_hook
        from langfuse.langchain import CallbackHandler

        # Langfuse's LangChain callback handler (after `langfuse`, which made the client it uses) on every
        # run, as `config={"callbacks": [handler]}` would put it: a configure hook, inherited by child runs
        handler: ContextVar[Any] = ContextVar("tb_langfuse_handler", default=None)
        handler.set(CallbackHandler())
        register_configure_hook(handler, inheritable=True)
    elif name == "mlflow":
        # its tracking store in the setup's folder; with MLFLOW_USE_DEFAULT_TRACER_PROVIDER=false, its
        # spans go to the global provider
        import tempfile

        os.chdir(tempfile.mkdtemp(prefix="tb-mlflow-"))  # a fresh tracking store, artifacts (./mlruns) beside
        os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///mlflow.db"
        import mlflow.anthropic
        import mlflow.openai

        mlflow.openai.autolog()
        mlflow.anthropic.autolog()
    elif name == "strands":
        from strands.telemetry import StrandsTelemetry

        StrandsTelemetry(tracer_provider=provider)
    elif name == "semantic-kernel":
        return  # on with SEMANTICKERNEL_EXPERIMENTAL_GENAI_ENABLE_OTEL_DIAGNOSTICS, the global provider
    elif name == "maf":
        from agent_framework.observability import enable_instrumentation

        # Agent Framework's own spans, on the global provider (on by default; its documented switch,
        # content off: no sensitive data)
        enable_instrumentation(enable_sensitive_data=False)
    elif name == "openinference-agent-framework":
        return  # a span processor of Agent Framework's spans, added before the exporter (`main`)
    elif name == "adk":
        return  # Google ADK's own spans, on the global provider
    elif name == "mcp-sdk":
        return  # the mcp SDK's own spans (client requests, server middleware), on the global provider
    elif name == "baggage-processor":
        return  # a span processor that copies Baggage onto spans, added before the exporter (`main`)
    elif name == "ag2":
        from autogen.opentelemetry import instrument_llm_wrapper

        # AG2's own tracing: LLM spans of its OpenAIWrapper (content off, its default); the agents'
        # spans are switched on per agent (`_ag2_agents`)
        instrument_llm_wrapper(tracer_provider=provider)
        _AG2_TRACED.append(provider)
    elif name in ("logfire", "logfire-anthropic", "logfire-litellm", "logfire-google-genai"):
        import logfire
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        # Logfire sets up a provider of its own: each of its spans is exported as it ends, to the sink
        sink = OTLPSpanExporter(endpoint=f"{os.environ['TB_SINK']}/v1/traces", timeout=TIMEOUT)
        logfire.configure(
            send_to_logfire=False,
            console=False,
            service_name="tokenbook-conformance",
            additional_span_processors=[SimpleSpanProcessor(sink)],
        )
        if name == "logfire":
            logfire.instrument_openai()
        elif name == "logfire-anthropic":
            logfire.instrument_anthropic()  # its own spans (suppressing other instrumentation inside them)
        elif name == "logfire-litellm":
            logfire.instrument_litellm()  # OpenInference's LiteLLM instrumentor on Logfire's provider
        else:
            logfire.instrument_google_genai()  # the official google-genai instrumentor on Logfire's provider
    elif name == "openinference-crewai-events":
        from openinference.instrumentation.crewai import CrewAIInstrumentor

        # its event-listener mode: spans from CrewAI's event bus, an LLM span per model call
        CrewAIInstrumentor().instrument(tracer_provider=provider, use_event_listener=True)
    elif name in ("openinference-pydantic-ai", "openinference-openllmetry", "openinference-openlit"):
        return  # a span processor of another library's spans, added before the exporter (`main`)
    elif name == "openllmetry-openai-agents":
        from opentelemetry.instrumentation.openai_agents import OpenAIAgentsInstrumentor as TLAgents

        # its processor as the agents SDK's only one: the SDK's own exporter to OpenAI's backend is dropped
        TLAgents(replace_existing_processors=True).instrument(tracer_provider=provider)
    elif name == "otel-genai-openai-agents":
        from opentelemetry.instrumentation.genai.openai_agents import OpenAIAgentsInstrumentor as OtelAgents

        # traces through OpenTelemetry only: the agents SDK's own exporter to OpenAI's backend is dropped
        OtelAgents().instrument(tracer_provider=provider, disable_openai_trace_export=True)
    elif name == "haystack-otel":
        from haystack import tracing
        from haystack_integrations.tracing.opentelemetry import OpenTelemetryTracer

        # Haystack's own spans (opentelemetry-haystack), on the global provider; content tracing off
        # (HAYSTACK_CONTENT_TRACING_ENABLED unset)
        tracing.enable_tracing(OpenTelemetryTracer(provider.get_tracer("haystack")))
    elif name == "pydantic-ai":
        from pydantic_ai import Agent
        from pydantic_ai.models.instrumented import InstrumentationSettings

        Agent.instrument_all(InstrumentationSettings(tracer_provider=provider, include_content=False))
    elif name == "mistralai-sdk":
        return  # the mistralai SDK's own spans: on the global provider with MISTRAL_SDK_TELEMETRY=global
    elif name == "litellm":
        import litellm

        # LiteLLM's OpenTelemetry callback, on the global provider set above
        litellm.callbacks = ["otel"]
    elif name in SDK_SETUPS:
        return  # set up by `sdk_provider`, before any call
    elif name == "langsmith":
        # on with LANGSMITH_TRACING and LANGSMITH_TRACING_MODE=otel (the setup's env): its client, made at
        # the first traced call, exports through the global provider set above and calls no LangSmith API
        return
    else:
        raise SystemExit(f"unknown instrumentation {name!r}")


#: Observability SDKs whose own setup call makes the global TracerProvider, its exporter and every
#: instrumentor they know (users adopt them whole): the driver makes no provider for them, and flushes theirs.
SDK_SETUPS = ("traceloop", "langtrace", "laminar", "agentops")


def sdk_provider(names: list[str], sink: str) -> TracerProvider | None:
    """The global provider that the setup call of the SDK in `names` (`SDK_SETUPS`) made, its OTLP/HTTP
    exporter pointed at the sink; None when `names` has no such SDK."""
    exporter = OTLPSpanExporter(endpoint=f"{sink}/v1/traces", timeout=TIMEOUT)
    if "traceloop" in names:
        from traceloop.sdk import Traceloop

        # every OpenLLMetry instrumentor installed, a BatchSpanProcessor on a provider of its own (made
        # global); content off with TRACELOOP_TRACE_CONTENT=false, no metrics with a custom exporter
        Traceloop.init(
            app_name="tokenbook-conformance",
            api_endpoint=sink,
            exporter=exporter,
            disable_batch=False,
            telemetry_enabled=False,
        )
    elif "langtrace" in names:
        from langtrace_python_sdk import langtrace

        # every Langtrace instrumentor installed, a BatchSpanProcessor on a provider of its own (made
        # global); its error reporting off with LANGTRACE_ERROR_REPORTING=False (the setup's env)
        langtrace.init(
            api_key="lt-test",
            custom_remote_exporter=exporter,
            batch=True,
            write_spans_to_console=False,
            service_name="tokenbook-conformance",
        )
    elif "laminar" in names:
        from urllib.parse import urlsplit

        from lmnr import Laminar

        # every Laminar instrumentor it finds, its own provider (made global) and its OTLP/HTTP exporter,
        # pointed at the sink by URL and port (it makes the exporter itself: none can be handed in)
        url = urlsplit(sink)
        Laminar.initialize(
            project_api_key="lmnr-test",
            base_url=f"{url.scheme}://{url.hostname}",
            http_port=url.port,
            force_http=True,
            export_timeout_seconds=int(TIMEOUT),
        )
    elif "agentops" in names:
        import agentops

        # every AgentOps instrumentor it finds, its own provider (made global) and exporter, pointed at the
        # sink (its API too: the token it asks for there is refused, and it exports without one)
        agentops.init(
            api_key="00000000-0000-4000-8000-000000000000",
            endpoint=sink,
            exporter_endpoint=f"{sink}/v1/traces",
            env_data_opt_out=True,
            log_level="ERROR",
        )
    else:
        return None
    made = trace.get_tracer_provider()
    if not isinstance(made, TracerProvider):
        raise SystemExit(f"{names}: the SDK set no global SDK TracerProvider ({type(made).__name__})")
    return made


# -- calls ----------------------------------------------------------------------------------------------


def openai_client() -> Any:
    import openai

    return openai.OpenAI(
        base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0, timeout=TIMEOUT
    )


def anthropic_client() -> Any:
    import anthropic

    return anthropic.Anthropic(
        base_url=os.environ["ANTHROPIC_BASE_URL"], api_key="sk-ant-test", max_retries=0, timeout=TIMEOUT
    )


def openai_chat() -> None:
    openai_client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def openai_chat_stream() -> None:
    stream = openai_client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass


def openai_chat_stream_async() -> None:
    import asyncio

    import openai

    async def run() -> None:
        client: Any = openai.AsyncOpenAI(
            base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0, timeout=TIMEOUT
        )
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async for _ in stream:
            pass

    asyncio.run(run())


#: The end user an app names on a call (the OpenAI API's `user` parameter), which some instrumentations
#: record as an attribute of the call's span.
END_USER = "end-user-42"


def openai_chat_user() -> None:
    openai_client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user=END_USER)


def openai_reasoning() -> None:
    openai_client().chat.completions.create(model="o3-mini", messages=MESSAGES, reasoning_effort="low")


def openai_tool_call() -> None:
    openai_client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=[OPENAI_TOOL])


def openai_embeddings() -> None:
    openai_client().embeddings.create(model="text-embedding-3-small", input=["weather in Paris", "in Rome"])


def openai_responses() -> None:
    openai_client().responses.create(model="gpt-4o-mini", input="What is the weather in Paris?")


def anthropic_messages() -> None:
    anthropic_client().messages.create(
        model="claude-sonnet-4-5", max_tokens=256, system=ANTHROPIC_SYSTEM, messages=MESSAGES
    )


def anthropic_messages_stream() -> None:
    stream = anthropic_client().messages.create(
        model="claude-sonnet-4-5", max_tokens=256, system=ANTHROPIC_SYSTEM, messages=MESSAGES, stream=True
    )
    for _ in stream:
        pass


def anthropic_messages_stream_async() -> None:
    import asyncio

    import anthropic

    async def run() -> None:
        client: Any = anthropic.AsyncAnthropic(
            base_url=os.environ["ANTHROPIC_BASE_URL"], api_key="sk-ant-test", max_retries=0, timeout=TIMEOUT
        )
        stream = await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=256, system=ANTHROPIC_SYSTEM, messages=MESSAGES, stream=True
        )
        async for _ in stream:
            pass

    asyncio.run(run())


def anthropic_messages_stream_helper() -> None:
    with anthropic_client().messages.stream(
        model="claude-sonnet-4-5", max_tokens=256, system=ANTHROPIC_SYSTEM, messages=MESSAGES
    ) as stream:
        for _ in stream.text_stream:
            pass
        stream.get_final_message()


def anthropic_tool_use() -> None:
    anthropic_client().messages.create(
        model="claude-sonnet-4-5",
        max_tokens=256,
        system=ANTHROPIC_SYSTEM,
        messages=MESSAGES,
        tools=[ANTHROPIC_TOOL],
    )


def anthropic_thinking() -> None:
    anthropic_client().messages.create(
        model="claude-sonnet-4-5",
        max_tokens=2048,
        system=ANTHROPIC_SYSTEM,
        messages=MESSAGES,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )


def _langchain_chain(llm: Any = None) -> Any:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    if llm is None:
        llm = ChatOpenAI(
            model="gpt-4o-mini",
            base_url=os.environ["OPENAI_BASE_URL"],
            api_key="sk-test",
            max_retries=0,
            timeout=TIMEOUT,
            stream_usage=True,
        )
    ask = ChatPromptTemplate.from_messages([("user", "What is the weather in {city}?")])
    summarize = ChatPromptTemplate.from_messages([("user", "Say it shorter: {answer}")])
    # two model calls in one chain: prompt | model | parser, then its answer into a second prompt | model
    return (
        ask
        | llm
        | StrOutputParser()
        | (lambda answer: {"answer": answer})
        | summarize
        | llm
        | StrOutputParser()
    )


def langchain_chain() -> None:
    _langchain_chain().invoke({"city": "Paris"})


def langchain_chain_stream() -> None:
    for _ in _langchain_chain().stream({"city": "Paris"}):
        pass


def _langchain_weather_tool() -> Any:
    from langchain_core.tools import tool

    @tool  # type: ignore[untyped-decorator]
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return f"Sunny, 21 °C in {city}."

    return get_weather


def langchain_tool_call() -> None:
    """A model call that asks for a tool, the tool run (LangChain's `tool.invoke`), and a second model
    call with its result."""
    from langchain_core.messages import HumanMessage

    get_weather = _langchain_weather_tool()
    llm = _langchain_openai().bind_tools([get_weather])
    history: list[Any] = [HumanMessage("What is the weather in Paris?")]
    asked = llm.invoke(history)
    history.append(asked)
    for call in asked.tool_calls:
        history.append(get_weather.invoke(call))
    llm.invoke(history)


def _langchain_openai() -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=os.environ["OPENAI_BASE_URL"],
        api_key="sk-test",
        max_retries=0,
        timeout=TIMEOUT,
        stream_usage=True,
    )


def _langchain_anthropic() -> Any:
    from langchain_anthropic import ChatAnthropic

    return ChatAnthropic(
        model="claude-sonnet-4-5",
        base_url=os.environ["ANTHROPIC_BASE_URL"],
        api_key="sk-ant-test",
        max_retries=0,
        timeout=TIMEOUT,
        max_tokens=256,
    )


def _langchain_anthropic_messages() -> list[Any]:
    from langchain_core.messages import HumanMessage, SystemMessage

    # the cached system prompt of the Anthropic calls (the stub answers cache reads and writes anyway)
    return [SystemMessage(content=ANTHROPIC_SYSTEM), HumanMessage("What is the weather in Paris?")]


def langchain_anthropic_chat() -> None:
    _langchain_anthropic().invoke(_langchain_anthropic_messages())


def langchain_anthropic_chat_stream() -> None:
    for _ in _langchain_anthropic().stream(_langchain_anthropic_messages()):
        pass


def langchain_anthropic_tool_call() -> None:
    get_weather = _langchain_weather_tool()
    llm = _langchain_anthropic().bind_tools([get_weather])
    history = _langchain_anthropic_messages()
    asked = llm.invoke(history)
    history.append(asked)
    for call in asked.tool_calls:
        history.append(get_weather.invoke(call))
    llm.invoke(history)


def _langgraph_agent() -> Any:
    """LangGraph's prebuilt ReAct agent, as LangChain 1 builds it (`create_agent`, the successor of
    `langgraph.prebuilt.create_react_agent`): ChatOpenAI with one tool; the stub's first answer calls the
    tool, the second (with its result) answers."""
    from langchain.agents import create_agent

    return create_agent(_langchain_openai(), tools=[_langchain_weather_tool()])


def langgraph_agent() -> None:
    from langchain_core.messages import HumanMessage

    _langgraph_agent().invoke({"messages": [HumanMessage("What is the weather in Paris?")]})


def langgraph_agent_stream() -> None:
    from langchain_core.messages import HumanMessage

    # stream_mode "messages": the model's tokens as they come, so LangGraph has ChatOpenAI stream
    for _ in _langgraph_agent().stream(
        {"messages": [HumanMessage("What is the weather in Paris?")]}, stream_mode="messages"
    ):
        pass


def langgraph_agent_async() -> None:
    """The same agent run with `ainvoke`: LangGraph's async executor."""
    import asyncio

    from langchain_core.messages import HumanMessage

    asyncio.run(_langgraph_agent().ainvoke({"messages": [HumanMessage("What is the weather in Paris?")]}))


def langgraph_supervisor() -> None:
    """A two-node LangGraph graph: a supervisor node, then a worker node, each one ChatAnthropic call
    with the cached system prompt."""
    from langchain_core.messages import HumanMessage, SystemMessage
    from langgraph.graph import END, START, MessagesState, StateGraph

    llm = _langchain_anthropic()

    def supervisor(state: MessagesState) -> dict[str, Any]:
        answer = llm.invoke([SystemMessage(content=ANTHROPIC_SYSTEM), *state["messages"]])
        return {"messages": [answer, HumanMessage("Worker: say it shorter.")]}

    def worker(state: MessagesState) -> dict[str, Any]:
        answer = llm.invoke([SystemMessage(content=ANTHROPIC_SYSTEM), *state["messages"]])
        return {"messages": [answer]}

    graph = StateGraph(MessagesState)
    graph.add_node("supervisor", supervisor)
    graph.add_node("worker", worker)
    graph.add_edge(START, "supervisor")
    graph.add_edge("supervisor", "worker")
    graph.add_edge("worker", END)
    graph.compile().invoke({"messages": [HumanMessage("What is the weather in Paris?")]})


def agents_tool(stream: bool = False) -> None:
    from agents import Agent, Runner, function_tool, set_default_openai_client
    from openai import AsyncOpenAI

    @function_tool  # type: ignore[untyped-decorator]
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return f"Sunny, 21 °C in {city}."

    set_default_openai_client(
        AsyncOpenAI(
            base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0, timeout=TIMEOUT
        ),
        use_for_tracing=False,
    )
    agent = Agent(name="weather", instructions="Answer tersely.", model="gpt-4o-mini", tools=[get_weather])
    if not stream:
        Runner.run_sync(agent, "What is the weather in Paris?")  # model call, tool, model call
        return
    import asyncio

    async def run() -> None:
        result = Runner.run_streamed(agent, "What is the weather in Paris?")
        async for _ in result.stream_events():
            pass

    asyncio.run(run())


def agents_stream() -> None:
    agents_tool(stream=True)


def gemini_client() -> Any:
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=os.environ["GEMINI_BASE_URL"], timeout=int(TIMEOUT * 1000))
    return genai.Client(api_key="gm-test", http_options=options)


QUESTION = "What is the weather in Paris?"


# A client is closed once it is garbage: each call keeps its own until the answer is read.
def gemini_generate() -> None:
    client = gemini_client()
    client.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)


def gemini_generate_stream() -> None:
    client = gemini_client()
    for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents=QUESTION):
        pass


def gemini_generate_async() -> None:
    import asyncio

    async def run() -> None:
        client = gemini_client()
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)

    asyncio.run(run())


# Vertex AI: a project and a region in the path, an OAuth access token (a fixed one: nothing to refresh,
# no network) instead of an API key.
VERTEX_PROJECT = "tb-project"
VERTEX_LOCATION = "us-central1"
VERTEX_TOKEN = "ya29.tb-test"


def vertex_client() -> Any:
    """The google-genai client in Vertex AI mode (``vertexai=True``), at the stub."""
    from google import genai
    from google.genai import types
    from google.oauth2.credentials import Credentials

    options = types.HttpOptions(base_url=os.environ["VERTEX_BASE_URL"], timeout=int(TIMEOUT * 1000))
    return genai.Client(
        vertexai=True,
        project=VERTEX_PROJECT,
        location=VERTEX_LOCATION,
        credentials=Credentials(token=VERTEX_TOKEN),
        http_options=options,
    )


def vertex_generate() -> None:
    client = vertex_client()
    client.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)


def vertex_generate_stream() -> None:
    client = vertex_client()
    for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents=QUESTION):
        pass


def vertex_generate_async() -> None:
    import asyncio

    async def run() -> None:
        client = vertex_client()
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)

    asyncio.run(run())


def _vertexai_model() -> Any:
    """The Vertex AI SDK's `GenerativeModel` (google-cloud-aiplatform), over its REST transport at the
    stub: an ``http://`` endpoint is used as it is. Anonymous credentials (no token, no refresh); its
    async REST client wants async credentials of its own, else it falls back to gRPC."""
    import vertexai
    from google.auth.aio.credentials import AnonymousCredentials as AsyncAnonymousCredentials
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform import initializer
    from vertexai.generative_models import GenerativeModel

    vertexai.init(
        project=VERTEX_PROJECT,
        location=VERTEX_LOCATION,
        api_transport="rest",
        api_endpoint=os.environ["VERTEX_BASE_URL"],
        credentials=AnonymousCredentials(),
    )
    initializer._set_async_rest_credentials(credentials=AsyncAnonymousCredentials())
    return GenerativeModel("gemini-2.5-flash")


def vertexai_generate() -> None:
    _vertexai_model().generate_content(QUESTION)


def vertexai_generate_stream() -> None:
    for _ in _vertexai_model().generate_content(QUESTION, stream=True):
        pass


def vertexai_generate_async() -> None:
    import asyncio

    async def run() -> None:
        await _vertexai_model().generate_content_async(QUESTION)

    asyncio.run(run())


def vertexai_chat() -> None:
    _vertexai_model().start_chat().send_message(QUESTION)


def anthropic_vertex_client() -> Any:
    import anthropic

    return anthropic.AnthropicVertex(
        region="us-east5",
        project_id=VERTEX_PROJECT,
        access_token=VERTEX_TOKEN,
        base_url=f"{os.environ['VERTEX_BASE_URL']}/v1",
        max_retries=0,
        timeout=TIMEOUT,
    )


VERTEX_CLAUDE = "claude-sonnet-4-5@20250929"


def anthropic_vertex_messages() -> None:
    anthropic_vertex_client().messages.create(
        model=VERTEX_CLAUDE, max_tokens=256, system=ANTHROPIC_SYSTEM, messages=MESSAGES
    )


def anthropic_vertex_messages_stream() -> None:
    stream = anthropic_vertex_client().messages.create(
        model=VERTEX_CLAUDE, max_tokens=256, system=ANTHROPIC_SYSTEM, messages=MESSAGES, stream=True
    )
    for _ in stream:
        pass


BEDROCK_MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
# A cached system prompt: the stub answers with cache reads and writes whatever the request says.
BEDROCK_SYSTEM = [{"text": "You are a terse weather bot."}, {"cachePoint": {"type": "default"}}]


def aws_client(service: str, endpoint: str) -> Any:
    """A boto3 client of `service` (``bedrock-runtime``, ``sagemaker-runtime``) on the stand-in at
    `endpoint`, with test credentials and no retries."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret-test",
        config=Config(retries={"max_attempts": 1}, read_timeout=TIMEOUT, connect_timeout=TIMEOUT),
    )


def bedrock_client() -> Any:
    return aws_client("bedrock-runtime", os.environ["BEDROCK_BASE_URL"])


def _bedrock_messages() -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": QUESTION}]}]


def bedrock_converse() -> None:
    bedrock_client().converse(modelId=BEDROCK_MODEL, system=BEDROCK_SYSTEM, messages=_bedrock_messages())


def bedrock_converse_stream() -> None:
    answer = bedrock_client().converse_stream(
        modelId=BEDROCK_MODEL, system=BEDROCK_SYSTEM, messages=_bedrock_messages()
    )
    for _ in answer["stream"]:
        pass


# InvokeModel: each model family's own body. Model IDs as applications name them: cross-region inference
# profiles (us., global.), an inference profile's ARN, a bare foundation model.
BEDROCK_CLAUDE_US = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
BEDROCK_CLAUDE_GLOBAL = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
BEDROCK_CLAUDE_ARN = f"arn:aws:bedrock:us-east-1:111122223333:inference-profile/{BEDROCK_CLAUDE_US}"
BEDROCK_NOVA = "amazon.nova-lite-v1:0"
BEDROCK_NOVA_US = "us.amazon.nova-lite-v1:0"
BEDROCK_LLAMA = "us.meta.llama3-3-70b-instruct-v1:0"


def _claude_body() -> str:
    # the Messages API's body, a cached system prompt (five minutes, the default)
    system = [
        {"type": "text", "text": "You are a terse weather bot.", "cache_control": {"type": "ephemeral"}}
    ]
    return json.dumps(
        {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 256, "system": system, "messages": MESSAGES}
    )


def _nova_body() -> str:
    system = [{"text": "You are a terse weather bot."}, {"cachePoint": {"type": "default"}}]
    return json.dumps(
        {
            "schemaVersion": "messages-v1",
            "system": system,
            "messages": _bedrock_messages(),
            "inferenceConfig": {"maxTokens": 256},
        }
    )


def _llama_body() -> str:
    prompt = f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{QUESTION}<|eot_id|>"
    return json.dumps(
        {"prompt": prompt + "<|start_header_id|>assistant<|end_header_id|>\n\n", "max_gen_len": 256}
    )


def _invoke(model_id: str, body: str) -> None:
    answer = bedrock_client().invoke_model(
        modelId=model_id, body=body, contentType="application/json", accept="application/json"
    )
    json.loads(answer["body"].read())


def _invoke_stream(model_id: str, body: str) -> None:
    answer = bedrock_client().invoke_model_with_response_stream(
        modelId=model_id, body=body, contentType="application/json", accept="application/json"
    )
    for event in answer["body"]:
        json.loads(event["chunk"]["bytes"])


def bedrock_invoke_claude() -> None:
    _invoke(BEDROCK_CLAUDE_US, _claude_body())


def bedrock_invoke_claude_stream() -> None:
    _invoke_stream(BEDROCK_CLAUDE_US, _claude_body())


def bedrock_invoke_claude_global() -> None:
    _invoke(BEDROCK_CLAUDE_GLOBAL, _claude_body())


def bedrock_invoke_claude_arn() -> None:
    _invoke(BEDROCK_CLAUDE_ARN, _claude_body())


def bedrock_invoke_nova() -> None:
    _invoke(BEDROCK_NOVA, _nova_body())


def bedrock_invoke_nova_stream() -> None:
    _invoke_stream(BEDROCK_NOVA_US, _nova_body())


def bedrock_invoke_llama() -> None:
    _invoke(BEDROCK_LLAMA, _llama_body())


def bedrock_invoke_llama_stream() -> None:
    _invoke_stream(BEDROCK_LLAMA, _llama_body())


def _langchain_bedrock_messages() -> list[Any]:
    from langchain_core.messages import HumanMessage, SystemMessage

    # a cached system prompt: Bedrock's cache point after the text, as langchain-aws passes it on
    system = SystemMessage(
        content=[
            {"type": "text", "text": "You are a terse weather bot."},
            {"cachePoint": {"type": "default"}},
        ]
    )
    return [system, HumanMessage(QUESTION)]


def _langchain_converse() -> Any:
    from langchain_aws import ChatBedrockConverse

    return ChatBedrockConverse(model=BEDROCK_MODEL, client=bedrock_client(), max_tokens=256)


def langchain_bedrock_converse() -> None:
    _langchain_converse().invoke(_langchain_bedrock_messages())


def langchain_bedrock_converse_stream() -> None:
    for _ in _langchain_converse().stream(_langchain_bedrock_messages()):
        pass


def _langchain_claude_messages() -> list[Any]:
    from langchain_core.messages import HumanMessage, SystemMessage

    # the Messages API's cache_control on the system prompt (InvokeModel with Claude's own body)
    system = SystemMessage(
        content=[
            {"type": "text", "text": "You are a terse weather bot.", "cache_control": {"type": "ephemeral"}}
        ]
    )
    return [system, HumanMessage(QUESTION)]


def _langchain_chat_bedrock() -> Any:
    from langchain_aws import ChatBedrock

    # InvokeModel (Claude's Messages API body) through a cross-region inference profile
    return ChatBedrock(model_id=BEDROCK_CLAUDE_US, client=bedrock_client(), model_kwargs={"max_tokens": 256})


def langchain_bedrock_invoke() -> None:
    _langchain_chat_bedrock().invoke(_langchain_claude_messages())


def langchain_bedrock_invoke_stream() -> None:
    for _ in _langchain_chat_bedrock().stream(_langchain_claude_messages()):
        pass


def _strands_agent() -> Any:
    from strands import Agent, tool
    from strands.models.openai import OpenAIModel

    @tool  # type: ignore[untyped-decorator]
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return f"Sunny, 21 °C in {city}."

    model = OpenAIModel(
        client_args={"base_url": os.environ["OPENAI_BASE_URL"], "api_key": "sk-test"}, model_id="gpt-4o-mini"
    )
    return Agent(model=model, tools=[get_weather], system_prompt="Answer tersely.", callback_handler=None)


def strands_agent_tool() -> None:
    _strands_agent()(QUESTION)  # model call, tool, model call


def strands_agent_bedrock() -> None:
    import boto3
    from strands import Agent
    from strands.models.bedrock import BedrockModel

    session = boto3.Session(
        aws_access_key_id="AKIDTEST", aws_secret_access_key="secret-test", region_name="us-east-1"
    )
    model = BedrockModel(
        boto_session=session,
        endpoint_url=os.environ["BEDROCK_BASE_URL"],
        model_id=BEDROCK_MODEL,
        cache_prompt="default",
    )
    Agent(model=model, system_prompt="You are a terse weather bot.", callback_handler=None)(QUESTION)


def strands_agent_async() -> None:
    import asyncio

    asyncio.run(_strands_agent().invoke_async(QUESTION))


def _semantic_kernel() -> Any:
    from openai import AsyncOpenAI
    from semantic_kernel import Kernel
    from semantic_kernel.connectors.ai.open_ai import OpenAIChatCompletion

    client = AsyncOpenAI(
        base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0, timeout=TIMEOUT
    )
    kernel = Kernel()
    kernel.add_service(OpenAIChatCompletion(ai_model_id="gpt-4o-mini", async_client=client))
    return kernel


def semantic_kernel_prompt() -> None:
    import asyncio

    asyncio.run(_semantic_kernel().invoke_prompt(QUESTION))


def semantic_kernel_stream() -> None:
    import asyncio

    async def run() -> None:
        async for _ in _semantic_kernel().invoke_prompt_stream(QUESTION):
            pass

    asyncio.run(run())


def adk_agent(tools: tuple[Any, ...] = ()) -> None:
    import asyncio

    # the Google GenAI client that ADK makes for itself, pointed at the stub
    os.environ["GOOGLE_GEMINI_BASE_URL"] = os.environ["GEMINI_BASE_URL"]
    os.environ["GOOGLE_API_KEY"] = "gm-test"
    from google.adk.agents import Agent
    from google.adk.runners import InMemoryRunner
    from google.genai import types

    async def run() -> None:
        agent = Agent(
            name="weather", model="gemini-2.5-flash", instruction="Answer tersely.", tools=list(tools)
        )
        runner = InMemoryRunner(agent=agent, app_name="tokenbook")
        session = await runner.session_service.create_session(app_name="tokenbook", user_id="u")
        message = types.Content(role="user", parts=[types.Part(text=QUESTION)])
        async for _ in runner.run_async(user_id="u", session_id=session.id, new_message=message):
            pass

    asyncio.run(run())


def adk_agent_tool() -> None:
    adk_agent((get_weather,))  # model call (function call), tool, model call


def _llama_index_llm() -> Any:
    from llama_index.llms.openai import OpenAI as LlamaOpenAI

    return LlamaOpenAI(
        model="gpt-4o-mini",
        api_base=os.environ["OPENAI_BASE_URL"],
        api_key="sk-test",
        max_retries=0,
        timeout=TIMEOUT,
    )


def llama_index_chat() -> None:
    from llama_index.core.llms import ChatMessage

    _llama_index_llm().chat([ChatMessage(role="user", content=QUESTION)])


def llama_index_chat_stream() -> None:
    from llama_index.core.llms import ChatMessage

    for _ in _llama_index_llm().stream_chat([ChatMessage(role="user", content=QUESTION)]):
        pass


def _pydantic_agent() -> Any:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(
        "gpt-4o-mini", provider=OpenAIProvider(base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test")
    )
    agent: Any = Agent(model, instructions="Answer tersely.")

    @agent.tool_plain  # type: ignore[untyped-decorator]
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return f"Sunny, 21 °C in {city}."

    return agent


def pydantic_agent_tool() -> None:
    _pydantic_agent().run_sync("What is the weather in Paris?")  # model call, tool, model call


def pydantic_agent_stream() -> None:
    import asyncio

    async def run() -> None:
        async with _pydantic_agent().run_stream("What is the weather in Paris?") as result:
            async for _ in result.stream_text():
                pass

    asyncio.run(run())


def _litellm(model: str = "openai/gpt-4o-mini", **kwargs: Any) -> None:
    import time

    import litellm

    base = os.environ["OPENAI_BASE_URL"] if model.startswith("openai/") else os.environ["ANTHROPIC_BASE_URL"]
    answer = litellm.completion(
        model=model,
        api_base=base,
        api_key="sk-test",
        messages=MESSAGES,
        timeout=TIMEOUT,
        num_retries=0,
        **kwargs,
    )
    if kwargs.get("stream"):
        for _ in answer:
            pass
    # LiteLLM ends its span in a success callback on a thread of its own, after the call returns
    time.sleep(2)


def litellm_chat() -> None:
    _litellm()


def litellm_chat_user() -> None:
    _litellm(user=END_USER)


def litellm_chat_stream() -> None:
    _litellm(stream=True, stream_options={"include_usage": True})


def litellm_tool_call() -> None:
    _litellm(tools=[OPENAI_TOOL])


def litellm_messages() -> None:
    _litellm("anthropic/claude-sonnet-4-5", max_tokens=256)


def litellm_messages_stream() -> None:
    _litellm("anthropic/claude-sonnet-4-5", max_tokens=256, stream=True)


def _crewai_crew(**llm: Any) -> Any:
    from crewai import LLM, Agent, Crew, Task
    from crewai.tools import tool

    @tool("get_weather")  # type: ignore[untyped-decorator]
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return f"Sunny, 21 °C in {city}."

    model = LLM(
        model="gpt-4o-mini", base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", timeout=TIMEOUT, **llm
    )
    agent = Agent(
        role="Weather bot",
        goal="Answer questions about the weather tersely.",
        backstory="You look the weather up with your tool.",
        llm=model,
        tools=[get_weather],
        max_iter=3,
        verbose=False,
    )
    task = Task(description=QUESTION, expected_output="The weather, in one line.", agent=agent)
    return Crew(agents=[agent], tasks=[task], verbose=False)


def crewai_crew() -> None:
    _crewai_crew().kickoff()  # model call (tool call), tool, model call


def crewai_crew_stream() -> None:
    _crewai_crew(stream=True).kickoff()


def crewai_crew_litellm() -> None:
    # CrewAI's LiteLLM route (its native OpenAI client otherwise; LiteLLM for the providers it has no
    # client of its own for, or when asked)
    _crewai_crew(is_litellm=True).kickoff()
    time.sleep(2)  # LiteLLM's callbacks end their spans on a thread of their own


def _dspy_lm(engine: str, base: str = "") -> Any:
    import dspy

    # no response cache (its default caches answers on disk and in memory); the engine chooses the
    # transport: "litellm" calls litellm.completion, "auto" (the default) DSPy's vendored lm15
    return dspy.LM(
        "openai/gpt-4o-mini",
        api_base=base or os.environ["OPENAI_BASE_URL"],
        api_key="sk-test",
        cache=False,
        num_retries=0,
        engine=engine,
    )


def dspy_predict() -> None:
    import dspy

    with dspy.context(lm=_dspy_lm("litellm")):
        dspy.Predict("question -> answer")(question=QUESTION)
    time.sleep(2)  # LiteLLM's callbacks end their spans on a thread of their own


def dspy_chain_of_thought() -> None:
    import dspy

    with dspy.context(lm=_dspy_lm("litellm")):
        dspy.ChainOfThought("question -> answer")(question=QUESTION)
    time.sleep(2)


def dspy_predict_anthropic() -> None:
    import dspy

    lm = dspy.LM(
        "anthropic/claude-sonnet-4-5",
        api_base=os.environ["ANTHROPIC_BASE_URL"],
        api_key="sk-ant-test",
        max_tokens=256,
        cache=False,
        num_retries=0,
        engine="litellm",
    )
    with dspy.context(lm=lm):
        dspy.Predict("question -> answer")(question=QUESTION)
    time.sleep(2)


def dspy_react() -> None:
    import dspy

    with dspy.context(lm=_dspy_lm("litellm")):
        # a ReAct agent with one tool: model call (get_weather), tool, model call (finish), the extract call
        dspy.ReAct("question -> answer", tools=[get_weather], max_iters=3)(question=QUESTION)
    time.sleep(2)


def dspy_predict_native() -> None:
    import dspy

    # DSPy's default engine ("auto"): its vendored lm15 client, unless OPENAI_BASE_URL (or
    # OPENAI_API_BASE) is set, which keeps a gateway configured that way on LiteLLM; the address is
    # given to the LM instead, as in code that sets it there
    base = os.environ.pop("OPENAI_BASE_URL")
    try:
        with dspy.context(lm=_dspy_lm("auto", base)):
            dspy.Predict("question -> answer")(question=QUESTION)
    finally:
        os.environ["OPENAI_BASE_URL"] = base


def _haystack_pipeline(**generator: Any) -> Any:
    from haystack import Pipeline
    from haystack.components.builders import ChatPromptBuilder
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage
    from haystack.utils import Secret

    pipe = Pipeline()
    pipe.add_component(
        "prompt", ChatPromptBuilder(template=[ChatMessage.from_user("What is the weather in {{city}}?")])
    )
    pipe.add_component(
        "llm",
        OpenAIChatGenerator(
            api_key=Secret.from_token("sk-test"),
            model="gpt-4o-mini",
            api_base_url=os.environ["OPENAI_BASE_URL"],
            timeout=TIMEOUT,
            max_retries=0,
            **generator,
        ),
    )
    pipe.connect("prompt.prompt", "llm.messages")
    return pipe


def haystack_pipeline() -> None:
    _haystack_pipeline().run({"prompt": {"city": "Paris"}})


def haystack_pipeline_stream() -> None:
    # Haystack asks a stream for its usage only when told to
    stream = _haystack_pipeline(
        streaming_callback=lambda chunk: None,
        generation_kwargs={"stream_options": {"include_usage": True}},
    )
    stream.run({"prompt": {"city": "Paris"}})


def get_weather(city: str) -> str:
    """The current weather in a city.

    Args:
        city: The city's name.
    """
    return f"Sunny, 21 °C in {city}."


def _smolagents_agent(**agent: Any) -> Any:
    from smolagents import OpenAIServerModel, ToolCallingAgent, tool

    model = OpenAIServerModel(
        "gpt-4o-mini",
        api_base=os.environ["OPENAI_BASE_URL"],
        api_key="sk-test",
        client_kwargs={"max_retries": 0, "timeout": TIMEOUT},
    )
    # One step: the model calls the tool; then, at the step limit, smolagents asks the model for its final
    # answer (the stub calls the first tool it is offered whatever the conversation, and smolagents sends
    # tool results as user messages, so the model never calls `final_answer` itself here)
    return ToolCallingAgent(tools=[tool(get_weather)], model=model, max_steps=1, verbosity_level=0, **agent)


def smolagents_agent_tool() -> None:
    _smolagents_agent().run(QUESTION)  # model call (tool call), tool, model call (final answer)


def smolagents_agent_stream() -> None:
    # stream_outputs: the model's steps streamed (stream_options.include_usage), the final answer not
    for _ in _smolagents_agent(stream_outputs=True).run(QUESTION, stream=True):
        pass


def _agno_agent() -> Any:
    from agno.agent import Agent
    from agno.models.openai import OpenAIChat

    model = OpenAIChat(
        id="gpt-4o-mini",
        base_url=os.environ["OPENAI_BASE_URL"],
        api_key="sk-test",
        max_retries=0,
        timeout=TIMEOUT,
    )
    # telemetry off here too (AGNO_TELEMETRY=false in the setup's env): no request to Agno's API
    return Agent(model=model, tools=[get_weather], instructions="Answer tersely.", telemetry=False)


def agno_agent_tool() -> None:
    _agno_agent().run(QUESTION)  # model call (tool call), tool, model call


def agno_agent_stream() -> None:
    for _ in _agno_agent().run(QUESTION, stream=True):
        pass


def _autogen_run(stream: bool) -> None:
    import asyncio

    from autogen_agentchat.agents import AssistantAgent
    from autogen_ext.models.openai import OpenAIChatCompletionClient

    async def run() -> None:
        client = OpenAIChatCompletionClient(
            model="gpt-4o-mini",
            base_url=os.environ["OPENAI_BASE_URL"],
            api_key="sk-test",
            max_retries=0,
            timeout=TIMEOUT,
            **({"stream_options": {"include_usage": True}} if stream else {}),
        )
        agent = AssistantAgent(
            "weather",
            model_client=client,
            tools=[get_weather],
            system_message="Answer tersely.",
            reflect_on_tool_use=True,  # a second model call on the tool's result
            model_client_stream=stream,
        )
        await agent.run(task=QUESTION)
        await client.close()

    asyncio.run(run())


def autogen_agent_tool() -> None:
    _autogen_run(stream=False)  # model call (tool call), tool, model call


def autogen_agent_stream() -> None:
    _autogen_run(stream=True)


# AG2 (the AutoGen 0.2 fork, its `autogen` namespace): a UserProxyAgent and an AssistantAgent on the
# openai client. Its own tracing (`autogen.opentelemetry`) is on when the setup names "ag2": the wrapper's
# LLM spans (`instrument_llm_wrapper`) and each agent's conversation, reply and tool spans
# (`instrument_agent`, per agent, as its documentation says).
_AG2_TRACED: list[TracerProvider] = []


def _ag2_agents(with_tool: bool = False) -> tuple[Any, Any]:
    from autogen import AssistantAgent, LLMConfig, UserProxyAgent, register_function

    config = LLMConfig(
        {
            "api_type": "openai",
            "model": "gpt-4o-mini",
            "api_key": "sk-test",
            "base_url": os.environ["OPENAI_BASE_URL"],
            "max_retries": 0,
            "timeout": TIMEOUT,
        },
        cache_seed=None,  # no disk cache of answers: every turn calls the model
    )
    assistant = AssistantAgent("assistant", llm_config=config, system_message="Answer tersely.")
    user = UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, default_auto_reply="Thanks."
    )
    if with_tool:
        register_function(get_weather, caller=assistant, executor=user, description="The current weather.")
    if _AG2_TRACED:
        from autogen.opentelemetry import instrument_agent

        for agent in (assistant, user):
            instrument_agent(agent, tracer_provider=_AG2_TRACED[0])
    return assistant, user


def ag2_chat() -> None:
    """Two turns: the user proxy asks, the assistant answers, the proxy's auto reply, a second answer."""
    assistant, user = _ag2_agents()
    user.initiate_chat(assistant, message=QUESTION, max_turns=2, summary_method="last_msg")


def ag2_tool_call() -> None:
    """A model call that asks for get_weather, the proxy runs it, a model call with its result."""
    assistant, user = _ag2_agents(with_tool=True)
    user.initiate_chat(assistant, message=QUESTION, max_turns=2, summary_method="last_msg")


# MCP: a client (the `mcp` SDK, stdio transport) calls a tool of a server it starts as a subprocess (this
# driver again, `--serve-mcp`, with the same instrumentors and its own provider exporting to the sink); the
# tool makes an OpenAI call. The client puts tokenbook's attribution keys into W3C Baggage first, as an
# application does before it calls a tool.
MCP_BAGGAGE = {
    "tenant.id": "acme",
    "user.id": "user-7",
    "project.id": "weather-app",
    "app.feature": "mcp-weather",
    "tokenbook.context.id": "ctx-mcp-1",
}


def mcp_tool() -> None:
    import asyncio

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from opentelemetry import baggage, context

    argv = [
        os.path.abspath(__file__),
        "--serve-mcp",
        "--stub",
        os.environ["TB_STUB"],
        "--sink",
        os.environ["TB_SINK"],
        "--instrument",
        os.environ["TB_INSTRUMENT"],
        "--calls",
        "",
    ]
    # the server's environment: the driver's (stdio_client passes only a few variables by default)
    params = StdioServerParameters(command=sys.executable, args=argv, env=dict(os.environ))

    async def run() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("ask_weather", {"city": "Paris"})
            if getattr(result, "is_error", None) or getattr(result, "isError", False):  # mcp 2, mcp 1
                raise RuntimeError(f"the tool failed: {result.content}")

    ctx = context.get_current()
    for key, value in MCP_BAGGAGE.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx)
    try:
        asyncio.run(run())
    finally:
        context.detach(token)


def serve_mcp() -> None:
    """The MCP server (stdio): one tool, `ask_weather`, which asks the OpenAI stand-in."""
    import openai

    try:
        from mcp.server import MCPServer
    except ImportError:  # mcp 1: FastMCP
        from mcp.server.fastmcp import FastMCP as MCPServer

    server = MCPServer("weather")

    @server.tool()  # type: ignore[untyped-decorator]
    async def ask_weather(city: str) -> str:
        """The current weather in a city, as a model tells it."""
        client = openai.AsyncOpenAI(max_retries=0, timeout=TIMEOUT)
        answer = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"What is the weather in {city}?"}]
        )
        await client.close()
        return answer.choices[0].message.content or ""

    server.run("stdio")


def _maf_client() -> Any:
    """Microsoft Agent Framework's chat-completions client (agent-framework-openai) on the openai SDK's
    async client at the stub."""
    from agent_framework.openai import OpenAIChatCompletionClient
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0, timeout=TIMEOUT
    )
    return OpenAIChatCompletionClient(model="gpt-4o-mini", async_client=client)


def _maf_responses_client() -> Any:
    """Agent Framework's `OpenAIChatClient`: OpenAI's Responses API, on the openai SDK's async client."""
    from agent_framework.openai import OpenAIChatClient
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0, timeout=TIMEOUT
    )
    return OpenAIChatClient(model="gpt-4o-mini", async_client=client)


def _maf_get(client: Any, *, stream: bool = False) -> None:
    """One `get_response` of the framework's chat client `client`, streamed (read to its end) or not."""
    import asyncio

    async def run() -> None:
        if not stream:
            await client.get_response(QUESTION)
            return
        async for _ in client.get_response(QUESTION, stream=True):
            pass

    asyncio.run(run())


def maf_responses() -> None:
    _maf_get(_maf_responses_client())


def maf_responses_stream() -> None:
    _maf_get(_maf_responses_client(), stream=True)


def maf_responses_agent_tool() -> None:
    _maf_agent_tool(_maf_responses_client())


def _maf_ollama_v1(model: str) -> None:
    """Its chat-completions client on Ollama's OpenAI-compatible API (through the stub as its proxy)."""
    from agent_framework.openai import OpenAIChatCompletionClient

    _maf_get(OpenAIChatCompletionClient(model=model, async_client=local_openai(OLLAMA_V1, True)))


def maf_ollama_v1_chat() -> None:
    _maf_ollama_v1("llama3.1")


def maf_ollama_v1_gpt_oss() -> None:
    _maf_ollama_v1("gpt-oss:20b")  # a model name that OpenAI's price list knows too


def maf_chat() -> None:
    _maf_get(_maf_client())


def maf_chat_stream() -> None:
    _maf_get(_maf_client(), stream=True)  # its client asks `stream_options.include_usage` itself


def maf_agent_tool() -> None:
    """An `Agent` with one function tool: a model call (tool call), the tool, a model call."""
    _maf_agent_tool(_maf_client())


def maf_agent_stream() -> None:
    """The same agent, streamed (`run(stream=True)`)."""
    _maf_agent_tool(_maf_client(), stream=True)


def _maf_agent_tool(client: Any, stream: bool = False) -> None:
    import asyncio

    from agent_framework import Agent, tool

    async def run() -> None:
        agent = Agent(
            client=client,
            name="weather",
            instructions="Answer tersely.",
            tools=[tool(get_weather)],
        )
        if stream:
            async for _ in agent.run(QUESTION, stream=True):
                pass
        else:
            await agent.run(QUESTION)

    asyncio.run(run())


def _llama_index_like() -> Any:
    """LlamaIndex's `OpenAILike`, its LLM for OpenAI-compatible servers (the openai SDK underneath)."""
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(
        model="gpt-4o-mini",
        api_base=os.environ["OPENAI_BASE_URL"],
        api_key="sk-test",
        is_chat_model=True,
        is_function_calling_model=True,
        max_retries=0,
        timeout=TIMEOUT,
    )


def _llama_index_agent(llm: Any) -> None:
    import asyncio

    from llama_index.core.agent.workflow import FunctionAgent

    # streaming=False: LlamaIndex does not ask a stream for its usage
    agent = FunctionAgent(tools=[get_weather], llm=llm, system_prompt="Answer tersely.", streaming=False)

    async def run() -> None:
        await agent.run(QUESTION)  # model call (tool call), tool, model call

    asyncio.run(run())


def llama_index_agent() -> None:
    _llama_index_agent(_llama_index_llm())


def llama_index_like_chat() -> None:
    from llama_index.core.llms import ChatMessage

    _llama_index_like().chat([ChatMessage(role="user", content=QUESTION)])


def llama_index_like_agent() -> None:
    _llama_index_agent(_llama_index_like())


def _langfuse_openai() -> Any:
    from langfuse.openai import OpenAI

    return OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0, timeout=TIMEOUT)


# Azure OpenAI: the client names an Azure host and goes through the stub as its HTTP proxy, so that what
# an instrumentation reads of the client (its base URL) is what it would read against Azure itself.
AZURE_ENDPOINT = "http://conformance.openai.azure.com"
AZURE_API_VERSION = "2024-10-21"
AZURE_KEY = "az-test"


def _azure_http(asynchronous: bool = False) -> Any:
    """The openai SDK's own HTTP client (httpx, httpx2 from openai 3 on) with the stub as its proxy."""
    import openai

    make = openai.DefaultAsyncHttpxClient if asynchronous else openai.DefaultHttpxClient
    return make(proxy=os.environ["TB_STUB"], timeout=TIMEOUT)


def azure_client(asynchronous: bool = False) -> Any:
    import openai

    make = openai.AsyncAzureOpenAI if asynchronous else openai.AzureOpenAI
    return make(
        azure_endpoint=AZURE_ENDPOINT,
        api_version=AZURE_API_VERSION,
        api_key=AZURE_KEY,
        max_retries=0,
        timeout=TIMEOUT,
        http_client=_azure_http(asynchronous),
    )


def azure_chat() -> None:
    azure_client().chat.completions.create(model="prod-chat", messages=MESSAGES)


def azure_chat_stream() -> None:
    stream = azure_client().chat.completions.create(
        model="prod-chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass


def azure_chat_stream_async() -> None:
    import asyncio

    async def run() -> None:
        stream = await azure_client(asynchronous=True).chat.completions.create(
            model="prod-chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async for _ in stream:
            pass

    asyncio.run(run())


def azure_reasoning() -> None:
    azure_client().chat.completions.create(model="prod-reasoning", messages=MESSAGES, reasoning_effort="low")


def azure_tool_call() -> None:
    azure_client().chat.completions.create(model="prod-chat", messages=MESSAGES, tools=[OPENAI_TOOL])


def azure_embeddings() -> None:
    azure_client().embeddings.create(model="prod-embed", input=["weather in Paris", "in Rome"])


def _azure_v1() -> Any:
    """Azure's `/openai/v1` API: the plain OpenAI client, its base URL on the Azure host; the request's
    `model` names the deployment."""
    import openai

    return openai.OpenAI(
        base_url=f"{AZURE_ENDPOINT}/openai/v1/",
        api_key=AZURE_KEY,
        max_retries=0,
        timeout=TIMEOUT,
        http_client=_azure_http(),
    )


def azure_v1_chat() -> None:
    _azure_v1().chat.completions.create(model="prod-chat", messages=MESSAGES)


def azure_v1_chat_stream() -> None:
    stream = _azure_v1().chat.completions.create(
        model="prod-chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass


def azure_v1_embeddings() -> None:
    _azure_v1().embeddings.create(model="prod-embed", input=["weather in Paris", "in Rome"])


def _langchain_azure_chain() -> Any:
    from langchain_openai import AzureChatOpenAI

    llm = AzureChatOpenAI(
        azure_deployment="prod-chat",
        azure_endpoint=AZURE_ENDPOINT,
        api_version=AZURE_API_VERSION,
        api_key=AZURE_KEY,
        max_retries=0,
        timeout=TIMEOUT,
        stream_usage=True,
        http_client=_azure_http(),
        http_async_client=_azure_http(asynchronous=True),
    )
    return _langchain_chain(llm)


def langchain_azure_chain() -> None:
    _langchain_azure_chain().invoke({"city": "Paris"})


def langchain_azure_chain_stream() -> None:
    for _ in _langchain_azure_chain().stream({"city": "Paris"}):
        pass


def langfuse_chat() -> None:
    _langfuse_openai().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def langfuse_chat_stream() -> None:
    stream = _langfuse_openai().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass


def langfuse_reasoning() -> None:
    _langfuse_openai().chat.completions.create(model="o3-mini", messages=MESSAGES, reasoning_effort="low")


def langfuse_embeddings() -> None:
    _langfuse_openai().embeddings.create(
        model="text-embedding-3-small", input=["weather in Paris", "in Rome"]
    )


def mistral_client() -> Any:
    try:  # mistralai >= 2
        from mistralai.client import Mistral
    except ImportError:  # mistralai 1
        from mistralai import Mistral

    return Mistral(
        api_key="mistral-test", server_url=os.environ["MISTRAL_BASE_URL"], timeout_ms=int(TIMEOUT * 1000)
    )


def mistral_chat() -> None:
    mistral_client().chat.complete(model="mistral-small-latest", messages=MESSAGES)


def mistral_chat_stream() -> None:
    for _ in mistral_client().chat.stream(model="mistral-small-latest", messages=MESSAGES):
        pass


def mistral_chat_stream_async() -> None:
    import asyncio

    async def run() -> None:
        stream = await mistral_client().chat.stream_async(model="mistral-small-latest", messages=MESSAGES)
        async for _ in stream:
            pass

    asyncio.run(run())


def mistral_embeddings() -> None:
    mistral_client().embeddings.create(model="mistral-embed", inputs=["weather in Paris", "in Rome"])


def groq_client() -> Any:
    import groq

    return groq.Groq(base_url=os.environ["GROQ_BASE_URL"], api_key="gsk-test", max_retries=0, timeout=TIMEOUT)


GROQ_MODEL = "llama-3.3-70b-versatile"
GROQ_CACHING_MODEL = "openai/gpt-oss-120b"  # prompt caching and reasoning on Groq


def groq_chat() -> None:
    groq_client().chat.completions.create(model=GROQ_MODEL, messages=MESSAGES)


def groq_chat_stream() -> None:
    for _ in groq_client().chat.completions.create(model=GROQ_MODEL, messages=MESSAGES, stream=True):
        pass


def groq_chat_stream_async() -> None:
    import asyncio

    import groq

    async def run() -> None:
        client: Any = groq.AsyncGroq(
            base_url=os.environ["GROQ_BASE_URL"], api_key="gsk-test", max_retries=0, timeout=TIMEOUT
        )
        stream = await client.chat.completions.create(model=GROQ_MODEL, messages=MESSAGES, stream=True)
        async for _ in stream:
            pass

    asyncio.run(run())


def groq_cached() -> None:
    groq_client().chat.completions.create(model=GROQ_CACHING_MODEL, messages=MESSAGES)


def groq_cached_stream() -> None:
    for _ in groq_client().chat.completions.create(model=GROQ_CACHING_MODEL, messages=MESSAGES, stream=True):
        pass


def cohere_client() -> Any:
    import cohere

    return cohere.ClientV2(api_key="co-test", base_url=os.environ["COHERE_BASE_URL"], timeout=TIMEOUT)


def cohere_chat() -> None:
    cohere_client().chat(model="command-a-03-2025", messages=MESSAGES)


def cohere_chat_stream() -> None:
    for _ in cohere_client().chat_stream(model="command-r-08-2024", messages=MESSAGES):
        pass


def cohere_chat_stream_async() -> None:
    import asyncio

    import cohere

    async def run() -> None:
        client: Any = cohere.AsyncClientV2(
            api_key="co-test", base_url=os.environ["COHERE_BASE_URL"], timeout=TIMEOUT
        )
        async for _ in client.chat_stream(model="command-a-03-2025", messages=MESSAGES):
            pass

    asyncio.run(run())


def together_client(asynchronous: bool = False) -> Any:
    import importlib.metadata

    import together

    cls = together.AsyncTogether if asynchronous else together.Together
    base = os.environ["TOGETHER_BASE_URL"]  # <stub>/together/v1, as together 1 takes it
    if int(importlib.metadata.version("together").split(".")[0]) >= 2:
        base = base.removesuffix("/v1")  # together 2 and later add /v1 to each path themselves
    return cls(api_key="together-test", base_url=base, timeout=TIMEOUT)


TOGETHER_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
# A model several providers list under this name (Groq, OpenRouter, Together, ...): priced from Together's
TOGETHER_SHARED_MODEL = "openai/gpt-oss-120b"


def together_chat() -> None:
    together_client().chat.completions.create(model=TOGETHER_MODEL, messages=MESSAGES)


def together_chat_stream() -> None:
    for _ in together_client().chat.completions.create(model=TOGETHER_MODEL, messages=MESSAGES, stream=True):
        pass


def together_chat_async() -> None:
    import asyncio

    async def run() -> None:
        await together_client(asynchronous=True).chat.completions.create(
            model=TOGETHER_MODEL, messages=MESSAGES
        )

    asyncio.run(run())


def together_shared_model() -> None:
    together_client().chat.completions.create(model=TOGETHER_SHARED_MODEL, messages=MESSAGES)


def portkey_client(**kwargs: Any) -> Any:
    from portkey_ai import Portkey

    return Portkey(
        api_key="pk-test", base_url=os.environ["PORTKEY_BASE_URL"], max_retries=0, timeout=TIMEOUT, **kwargs
    )


def portkey_chat() -> None:
    """A virtual key names the provider (OpenAI); the client itself names none."""
    portkey_client(virtual_key="openai-prod").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def portkey_chat_stream() -> None:
    stream = portkey_client(virtual_key="openai-prod").chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass


def portkey_provider_chat() -> None:
    """The client names the provider (``provider="openai"``) and passes the provider's own key."""
    portkey_client(provider="openai", Authorization="Bearer sk-test").chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES
    )


def portkey_catalog_chat() -> None:
    """Portkey's model catalog: the model names the provider slug (``@openai-prod/gpt-4o-mini``)."""
    portkey_client().chat.completions.create(model="@openai-prod/gpt-4o-mini", messages=MESSAGES)


def portkey_groq_chat() -> None:
    """A virtual key of another provider (Groq), its model's name alone."""
    portkey_client(virtual_key="groq-prod").chat.completions.create(model=GROQ_MODEL, messages=MESSAGES)


def _instructor_client() -> Any:
    import instructor

    return instructor.from_openai(openai_client())


def instructor_extract() -> None:
    """A structured answer (a pydantic model) in one call: the stub's tool call parses."""
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str

    _instructor_client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, response_model=Weather, max_retries=2
    )


def instructor_retry() -> None:
    """A structured answer that fails validation on the first answer: instructor asks again (two calls)."""
    from pydantic import BaseModel, field_validator

    seen: list[str] = []

    class Weather(BaseModel):
        city: str

        @field_validator("city")
        @classmethod
        def second_time(cls, v: str) -> str:
            seen.append(v)
            if len(seen) < 2:
                raise ValueError("name the city in full, please")
            return v

    _instructor_client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, response_model=Weather, max_retries=2
    )


def traceloop_workflow() -> None:
    """An OpenAI and an Anthropic call, each in a Traceloop `@task`, in a `@workflow` that sets association
    properties (the attributes Traceloop copies onto every span started under it)."""
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import task, workflow

    @task(name="ask_openai")  # type: ignore[untyped-decorator]
    def ask_openai() -> None:
        openai_chat()

    @task(name="ask_anthropic")  # type: ignore[untyped-decorator]
    def ask_anthropic() -> None:
        anthropic_messages()

    @workflow(name="weather_report")  # type: ignore[untyped-decorator]
    def report() -> None:
        Traceloop.set_association_properties({"user_id": "user-42", "session_id": "session-7"})
        ask_openai()
        ask_anthropic()

    report()


def laminar_workflow() -> None:
    """An OpenAI and an Anthropic call, each in a Laminar `@observe` function that takes the question
    and returns the answer (which Laminar records as the span's input and output), with a tool between
    them (`span_type="TOOL"`), in an `@observe` function that names the trace's user and session
    (Laminar's association properties)."""
    from lmnr import observe

    @observe(name="ask_openai")  # type: ignore[untyped-decorator]
    def ask_openai(question: str) -> str:
        answer = openai_client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
        return str(answer.choices[0].message.content)

    @observe(name="ask_anthropic")  # type: ignore[untyped-decorator]
    def ask_anthropic(question: str) -> str:
        answer = anthropic_client().messages.create(
            model="claude-sonnet-4-5",
            max_tokens=256,
            system=ANTHROPIC_SYSTEM,
            messages=[{"role": "user", "content": question}],
        )
        return str(answer.content[0].text)

    @observe(name="get_weather", span_type="TOOL")  # type: ignore[untyped-decorator]
    def get_weather(city: str) -> str:
        return f"{city}: sunny"

    @observe(name="weather_report", user_id="user-42", session_id="session-7")  # type: ignore[untyped-decorator]
    def report(question: str) -> str:
        return f"{ask_openai(question)} {get_weather('Paris')} {ask_anthropic(question)}"

    report(MESSAGES[0]["content"])


def mlflow_workflow() -> None:
    """An OpenAI and an Anthropic call (autologged) with a tool between them (`SpanType.TOOL`), in an
    MLflow-traced agent function (`SpanType.AGENT`)."""
    import mlflow
    from mlflow.entities import SpanType

    @mlflow.trace(name="get_weather", span_type=SpanType.TOOL)  # type: ignore[untyped-decorator]
    def get_weather(city: str) -> str:
        return f"{city}: sunny"

    @mlflow.trace(name="weather_agent", span_type=SpanType.AGENT)  # type: ignore[untyped-decorator]
    def agent() -> None:
        openai_chat()
        get_weather("Paris")
        anthropic_messages()

    agent()


def _langsmith_openai() -> Any:
    from langsmith.wrappers import wrap_openai

    return wrap_openai(openai_client())


def _langsmith_flush() -> None:
    """LangSmith hands each finished run to a background thread, which makes its span: wait for it."""
    from langsmith.run_trees import get_cached_client

    get_cached_client().flush()


def langsmith_chat() -> None:
    _langsmith_openai().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    _langsmith_flush()


def langsmith_chat_stream() -> None:
    stream = _langsmith_openai().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass
    _langsmith_flush()


def langsmith_reasoning() -> None:
    _langsmith_openai().chat.completions.create(model="o3-mini", messages=MESSAGES, reasoning_effort="low")
    _langsmith_flush()


def langsmith_tool_call() -> None:
    _langsmith_openai().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=[OPENAI_TOOL])
    _langsmith_flush()


def langsmith_chain() -> None:
    langchain_chain()  # traced by LangSmith's LangChain tracer, on with LANGSMITH_TRACING
    _langsmith_flush()


def langsmith_chain_stream() -> None:
    langchain_chain_stream()
    _langsmith_flush()


# Local servers: the clients name the servers' usual addresses (Ollama's 127.0.0.1:11434, its OpenAI-
# compatible API as its documentation writes it, localhost:11434/v1; vLLM's localhost:8000/v1) and go
# through the stub as their HTTP proxy, so that what an instrumentation reads of the client is what it
# would read against the real server.
OLLAMA_HOST = "http://127.0.0.1:11434"
OLLAMA_V1 = "http://localhost:11434/v1"
VLLM_V1 = "http://localhost:8000/v1"

# -- Replicate (replicate) -------------------------------------------------------------------------------


def replicate_run() -> None:
    # the module-level `replicate.run` (what the instrumentation wraps), on the default client, which
    # reads its token and base URL from the environment
    os.environ["REPLICATE_API_TOKEN"] = "r8_tbtest"
    os.environ["REPLICATE_BASE_URL"] = os.environ["TB_STUB"]
    import replicate

    replicate.run("meta/meta-llama-3-8b-instruct", input={"prompt": "What is the weather in Paris?"})


# -- Writer (writer-sdk) and Aleph Alpha (aleph-alpha-client) ----------------------------------------------


def writer_client() -> Any:
    from writerai import Writer

    return Writer(
        api_key="tb-writer-test", base_url=f"{os.environ['TB_STUB']}/writer", max_retries=0, timeout=TIMEOUT
    )


def writer_chat() -> None:
    writer_client().chat.chat(model="palmyra-x5", messages=MESSAGES)


def writer_chat_stream() -> None:
    stream = writer_client().chat.chat(
        model="palmyra-x5", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass


def aleph_alpha_complete() -> None:
    from aleph_alpha_client import Client, CompletionRequest, Prompt

    client = Client(token="tb-aa-test", host=f"{os.environ['TB_STUB']}/aleph-alpha/", total_retries=0)
    request = CompletionRequest(prompt=Prompt.from_text("The weather in Paris is"), maximum_tokens=16)
    client.complete(request, model="pharia-1-llm-7b-control")


# -- Amazon SageMaker runtime (boto3) ---------------------------------------------------------------------

#: A SageMaker endpoint of the customer's, serving a Hugging Face TGI container (its Messages API)
SAGEMAKER_ENDPOINT = "weather-llama-endpoint"


def sagemaker_client() -> Any:
    return aws_client("sagemaker-runtime", os.environ["TB_STUB"])


def sagemaker_invoke() -> None:
    body = {"messages": MESSAGES, "max_tokens": 64}
    answer = sagemaker_client().invoke_endpoint(
        EndpointName=SAGEMAKER_ENDPOINT, ContentType="application/json", Body=json.dumps(body)
    )
    answer["Body"].read()


def sagemaker_invoke_stream() -> None:
    body = {"messages": MESSAGES, "max_tokens": 64, "stream": True, "stream_options": {"include_usage": True}}
    answer = sagemaker_client().invoke_endpoint_with_response_stream(
        EndpointName=SAGEMAKER_ENDPOINT, ContentType="application/json", Body=json.dumps(body)
    )
    for _ in answer["Body"]:
        pass


# -- IBM watsonx.ai (ibm-watsonx-ai) ---------------------------------------------------------------------

#: watsonx.ai's Dallas region, as an application names it: the SDK tells IBM Cloud from an on-premises
#: install by this URL (IAM and the projects API at their own IBM Cloud hosts), and accepts only https
#: there. Its HTTP client's transport sends every request to the stub over plain HTTP, the host in the
#: Host header unchanged: the SDK, its requests and the instrumentation are as with IBM Cloud.
WATSONX_URL = "https://us-south.ml.cloud.ibm.com"
WATSONX_PROJECT = "tb-conformance-project"


def watsonx_model(model_id: str) -> Any:
    import httpx
    from ibm_watsonx_ai import APIClient, Credentials
    from ibm_watsonx_ai.foundation_models import ModelInference

    stub = httpx.URL(os.environ["TB_STUB"])

    class ToStub(httpx.HTTPTransport):  # type: ignore[misc]  # (httpx is not in the recorder's venv)
        def handle_request(self, request: Any) -> Any:
            request.url = request.url.copy_with(scheme="http", host=stub.host, port=stub.port)
            return super().handle_request(request)

    client = APIClient(
        Credentials(url=WATSONX_URL, api_key="tb-test-apikey"),
        project_id=WATSONX_PROJECT,
        httpx_client=httpx.Client(transport=ToStub(), timeout=TIMEOUT),
    )
    return ModelInference(model_id=model_id, api_client=client)


def watsonx_generate() -> None:
    watsonx_model("ibm/granite-3-3-8b-instruct").generate(prompt="What is the weather in Paris?")


def watsonx_generate_stream() -> None:
    model = watsonx_model("ibm/granite-3-3-8b-instruct")
    for _ in model.generate_text_stream(prompt="What is the weather in Paris?"):
        pass


def watsonx_generate_gpt_oss() -> None:
    # a model of another vendor's that watsonx.ai hosts and bills at its own price; the price catalog
    # lists OpenAI's model of that name
    watsonx_model("openai/gpt-oss-120b").generate(prompt="What is the weather in Paris?")


def watsonx_chat() -> None:
    watsonx_model("meta-llama/llama-3-3-70b-instruct").chat(messages=MESSAGES)


def watsonx_chat_stream() -> None:
    for _ in watsonx_model("meta-llama/llama-3-3-70b-instruct").chat_stream(messages=MESSAGES):
        pass


def ollama_client(asynchronous: bool = False) -> Any:
    import ollama

    make = ollama.AsyncClient if asynchronous else ollama.Client
    return make(host=OLLAMA_HOST, proxy=os.environ["TB_STUB"], timeout=TIMEOUT)


def ollama_chat() -> None:
    ollama_client().chat(model="llama3.1", messages=MESSAGES)


def ollama_chat_stream() -> None:
    for _ in ollama_client().chat(model="llama3.1", messages=MESSAGES, stream=True):
        pass


def ollama_chat_stream_async() -> None:
    import asyncio

    async def run() -> None:
        async for _ in await ollama_client(True).chat(model="llama3.1", messages=MESSAGES, stream=True):
            pass

    asyncio.run(run())


def ollama_thinking() -> None:
    ollama_client().chat(model="deepseek-r1:8b", messages=MESSAGES, think=True)


def ollama_tool_call() -> None:
    ollama_client().chat(model="qwen2.5:7b", messages=MESSAGES, tools=[OPENAI_TOOL])


def ollama_generate() -> None:
    ollama_client().generate(model="llama3.1", prompt="What is the weather in Paris?")


def ollama_generate_stream() -> None:
    for _ in ollama_client().generate(model="llama3.1", prompt="What is the weather in Paris?", stream=True):
        pass


def ollama_embed() -> None:
    ollama_client().embed(model="nomic-embed-text", input=["weather in Paris", "in Rome"])


def local_openai(base_url: str, asynchronous: bool = False) -> Any:
    """The openai client on a local server's OpenAI-compatible API (through the stub as its proxy)."""
    import openai

    make = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return make(
        base_url=base_url,
        api_key="local",
        max_retries=0,
        timeout=TIMEOUT,
        http_client=_azure_http(asynchronous),
    )


def _local_stream(base_url: str, model: str) -> None:
    stream = local_openai(base_url).chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass


def ollama_v1_chat() -> None:
    local_openai(OLLAMA_V1).chat.completions.create(model="llama3.1", messages=MESSAGES)


def ollama_v1_chat_stream() -> None:
    _local_stream(OLLAMA_V1, "llama3.1")


def ollama_v1_gpt_oss() -> None:
    local_openai(OLLAMA_V1).chat.completions.create(model="gpt-oss:20b", messages=MESSAGES)


def vllm_chat() -> None:
    local_openai(VLLM_V1).chat.completions.create(model="meta-llama/Llama-3.1-8B-Instruct", messages=MESSAGES)


def vllm_chat_stream() -> None:
    _local_stream(VLLM_V1, "meta-llama/Llama-3.1-8B-Instruct")


def vllm_chat_stream_async() -> None:
    import asyncio

    async def run() -> None:
        client = local_openai(VLLM_V1, asynchronous=True)
        stream = await client.chat.completions.create(
            model="meta-llama/Llama-3.1-8B-Instruct",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for _ in stream:
            pass

    asyncio.run(run())


def vllm_gpt_oss() -> None:
    local_openai(VLLM_V1).chat.completions.create(model="openai/gpt-oss-20b", messages=MESSAGES)


def vllm_cached() -> None:
    local_openai(VLLM_V1).chat.completions.create(model="Qwen/Qwen2.5-7B-Instruct", messages=MESSAGES)


def vllm_cached_stream() -> None:
    _local_stream(VLLM_V1, "Qwen/Qwen2.5-7B-Instruct")


# BeeAI framework: its OpenAI and Ollama chat models (LiteLLM underneath), alone and in a tool-calling agent.
def _beeai_llm(ollama: bool = False) -> Any:
    if ollama:  # BeeAI's Ollama model: Ollama's OpenAI-compatible API, at the stub
        from beeai_framework.adapters.ollama import OllamaChatModel

        return OllamaChatModel("llama3.1", base_url=os.environ["OPENAI_BASE_URL"], api_key="ollama")
    from beeai_framework.adapters.openai import OpenAIChatModel

    return OpenAIChatModel("gpt-4o-mini", base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test")


def _beeai_chat(stream: bool = False, ollama: bool = False) -> None:
    import asyncio

    from beeai_framework.backend import UserMessage

    async def run() -> None:
        await _beeai_llm(ollama).run([UserMessage("What is the weather in Paris?")], stream=stream)

    asyncio.run(run())


def beeai_chat() -> None:
    _beeai_chat()


def beeai_chat_stream() -> None:
    _beeai_chat(stream=True)


def beeai_ollama() -> None:
    _beeai_chat(ollama=True)


def beeai_agent_tool() -> None:
    import asyncio

    from beeai_framework.agents.tool_calling import ToolCallingAgent
    from beeai_framework.tools import tool

    @tool  # type: ignore[untyped-decorator]
    def get_weather(city: str) -> str:
        """The current weather in a city.

        Args:
            city: The city.
        """
        return "Sunny, 21 °C."

    async def run() -> None:
        agent = ToolCallingAgent(llm=_beeai_llm(), tools=[get_weather], final_answer_as_tool=False)
        await agent.run("What is the weather in Paris?")

    asyncio.run(run())


# The Claude Agent SDK: its bundled Claude Code CLI, a subprocess that calls the Anthropic stand-in
# (ANTHROPIC_BASE_URL), its home in a temporary folder; no built-in tools (`tools=[]`), so that the
# model's only tool is the in-process MCP tool of agent_tool.
def _claude_agent(prompt: str, with_tool: bool = False, client: bool = False) -> None:
    import asyncio
    import tempfile

    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, create_sdk_mcp_server, query, tool

    home = tempfile.mkdtemp(prefix="tb-claude-")
    servers: dict[str, Any] = {}
    allowed: list[str] = []
    if with_tool:

        @tool("get_weather", "The current weather in a city.", {"city": str})  # type: ignore[untyped-decorator]
        async def get_weather(args: dict[str, Any]) -> dict[str, Any]:
            return {"content": [{"type": "text", "text": "Sunny, 21 °C."}]}

        servers["weather"] = create_sdk_mcp_server("weather", tools=[get_weather])
        allowed = ["mcp__weather__get_weather"]
    options = ClaudeAgentOptions(
        model="claude-sonnet-4-5",
        tools=[],
        allowed_tools=allowed,
        mcp_servers=servers,
        max_turns=3,
        cwd=home,
        setting_sources=[],
        env={"ANTHROPIC_API_KEY": "sk-ant-test", "HOME": home},
    )

    async def run() -> None:
        if client:
            async with ClaudeSDKClient(options=options) as sdk:
                await sdk.query(prompt)
                async for _ in sdk.receive_response():
                    pass
            return
        async for _ in query(prompt=prompt, options=options):
            pass

    asyncio.run(run())


def claude_agent_query() -> None:
    _claude_agent("What is the weather in Paris?")


def claude_agent_client() -> None:
    _claude_agent("What is the weather in Paris?", client=True)


def claude_agent_tool() -> None:
    _claude_agent("What is the weather in Paris? Use get_weather.", with_tool=True)


# The openai client on Groq's OpenAI-compatible API: its base URL names Groq's host (through the stub as
# its HTTP proxy, as the Azure clients), so that an instrumentation reads Groq's host off the client.
GROQ_V1 = "http://api.groq.com/openai/v1"


def groq_openai_chat() -> None:
    local_openai(GROQ_V1).chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)


def groq_openai_chat_stream() -> None:
    _local_stream(GROQ_V1, "llama-3.3-70b-versatile")


def groq_openai_cached() -> None:
    local_openai(GROQ_V1).chat.completions.create(model="openai/gpt-oss-120b", messages=MESSAGES)


#: The calls an observability SDK's own instrumentors are recorded on (`SDK_SETUPS`): OpenAI and Anthropic.
SDK_CALLS: dict[str, Callable[[], None]] = {
    "chat": openai_chat,
    "chat_stream": openai_chat_stream,
    "tool_call": openai_tool_call,
    "reasoning": openai_reasoning,
    "messages": anthropic_messages,
    "messages_stream": anthropic_messages_stream,
    "thinking": anthropic_thinking,
}
CALLS: dict[str, dict[str, Callable[[], None]]] = {
    "openai": {
        "chat": openai_chat,
        "chat_stream": openai_chat_stream,
        "chat_stream_async": openai_chat_stream_async,
        "reasoning": openai_reasoning,
        "tool_call": openai_tool_call,
        "embeddings": openai_embeddings,
        "responses": openai_responses,
    },
    # the end user named on the call (`user=`)
    "openai-user": {"chat_user": openai_chat_user},
    "anthropic": {
        "messages": anthropic_messages,
        "messages_stream": anthropic_messages_stream,
        "messages_stream_async": anthropic_messages_stream_async,
        "messages_stream_helper": anthropic_messages_stream_helper,
        "tool_use": anthropic_tool_use,
        "thinking": anthropic_thinking,
    },
    "langchain": {"chain": langchain_chain, "chain_stream": langchain_chain_stream},
    "langchain-tool": {"tool_call": langchain_tool_call},
    # LangChain's ChatAnthropic: a cached system prompt
    "langchain-anthropic": {
        "anthropic_chat": langchain_anthropic_chat,
        "anthropic_chat_stream": langchain_anthropic_chat_stream,
        "anthropic_tool_call": langchain_anthropic_tool_call,
    },
    # LangGraph: the prebuilt ReAct agent (ChatOpenAI, one tool: two model calls), and a two-node graph
    # (supervisor, then worker: one ChatAnthropic call each, with the cached system prompt)
    "langgraph-openai": {
        "langgraph_agent": langgraph_agent,
        "langgraph_agent_stream": langgraph_agent_stream,
        "langgraph_agent_async": langgraph_agent_async,
    },
    "langgraph-anthropic": {"langgraph_supervisor": langgraph_supervisor},
    # Azure OpenAI: deployments prod-chat, prod-reasoning and prod-embed (stubs.AZURE_DEPLOYMENTS)
    "azure": {
        "chat": azure_chat,
        "chat_stream": azure_chat_stream,
        "chat_stream_async": azure_chat_stream_async,
        "reasoning": azure_reasoning,
        "tool_call": azure_tool_call,
        "embeddings": azure_embeddings,
        "v1_chat": azure_v1_chat,
        "v1_chat_stream": azure_v1_chat_stream,
        "v1_embeddings": azure_v1_embeddings,
    },
    "langchain-azure": {"chain": langchain_azure_chain, "chain_stream": langchain_azure_chain_stream},
    "agents": {"agent_tool": agents_tool},
    "agents-stream": {"agent_stream": agents_stream},
    "gemini": {
        "generate": gemini_generate,
        "generate_stream": gemini_generate_stream,
        "generate_async": gemini_generate_async,
    },
    "vertex": {
        "vertex_generate": vertex_generate,
        "vertex_generate_stream": vertex_generate_stream,
        "vertex_generate_async": vertex_generate_async,
    },
    "vertexai": {
        "generate": vertexai_generate,
        "generate_stream": vertexai_generate_stream,
        "generate_async": vertexai_generate_async,
        "chat": vertexai_chat,
    },
    "anthropic-vertex": {
        "vertex_messages": anthropic_vertex_messages,
        "vertex_messages_stream": anthropic_vertex_messages_stream,
    },
    "bedrock": {"converse": bedrock_converse, "converse_stream": bedrock_converse_stream},
    "bedrock-invoke": {
        "invoke_claude": bedrock_invoke_claude,
        "invoke_claude_stream": bedrock_invoke_claude_stream,
        "invoke_claude_global": bedrock_invoke_claude_global,
        "invoke_claude_arn": bedrock_invoke_claude_arn,
        "invoke_nova": bedrock_invoke_nova,
        "invoke_nova_stream": bedrock_invoke_nova_stream,
        "invoke_llama": bedrock_invoke_llama,
        "invoke_llama_stream": bedrock_invoke_llama_stream,
    },
    # langchain-aws: ChatBedrockConverse (Converse) and ChatBedrock (InvokeModel, Claude)
    "langchain-bedrock": {
        "bedrock_converse": langchain_bedrock_converse,
        "bedrock_converse_stream": langchain_bedrock_converse_stream,
        "bedrock_invoke": langchain_bedrock_invoke,
        "bedrock_invoke_stream": langchain_bedrock_invoke_stream,
    },
    "langfuse-openai": {
        "chat": langfuse_chat,
        "chat_stream": langfuse_chat_stream,
        "reasoning": langfuse_reasoning,
        "embeddings": langfuse_embeddings,
    },
    "strands": {
        "agent_tool": strands_agent_tool,
        "agent_async": strands_agent_async,
        "agent_bedrock": strands_agent_bedrock,
    },
    "semantic-kernel": {"prompt": semantic_kernel_prompt, "prompt_stream": semantic_kernel_stream},
    "maf": {
        "chat": maf_chat,
        "chat_stream": maf_chat_stream,
        "agent_tool": maf_agent_tool,
        "agent_stream": maf_agent_stream,
        "responses": maf_responses,
        "responses_stream": maf_responses_stream,
        "responses_agent_tool": maf_responses_agent_tool,
    },
    "maf-local": {"ollama_v1_chat": maf_ollama_v1_chat, "ollama_v1_gpt_oss": maf_ollama_v1_gpt_oss},
    # the same calls with the v1.36.0 GenAI conventions (OTEL_SEMCONV_STABILITY_OPT_IN without its token)
    "maf-v1_36": {"chat_stream_v1_36": maf_chat_stream, "agent_tool_v1_36": maf_agent_tool},
    "adk": {"agent": adk_agent},
    "adk-tool": {"agent_tool": adk_agent_tool},
    "llama-index": {"chat": llama_index_chat, "chat_stream": llama_index_chat_stream},
    "pydantic-ai": {"agent_tool": pydantic_agent_tool, "agent_stream": pydantic_agent_stream},
    "traceloop": {
        "chat": openai_chat,
        "chat_stream": openai_chat_stream,
        "tool_call": openai_tool_call,
        "messages": anthropic_messages,
        "chain": langchain_chain,
        "workflow": traceloop_workflow,
    },
    "langsmith": {
        "chat": langsmith_chat,
        "chat_stream": langsmith_chat_stream,
        "reasoning": langsmith_reasoning,
        "tool_call": langsmith_tool_call,
        "chain": langsmith_chain,
        "chain_stream": langsmith_chain_stream,
    },
    "langtrace": {"chat": openai_chat, "chat_stream": openai_chat_stream, "tool_call": openai_tool_call},
    "mlflow": {"workflow": mlflow_workflow},
    "agentops": SDK_CALLS,
    "laminar": {
        **SDK_CALLS,
        "workflow": laminar_workflow,
        "chain": langchain_chain,
        "chain_stream": langchain_chain_stream,
    },
    "litellm": {
        "chat": litellm_chat,
        "chat_stream": litellm_chat_stream,
        "tool_call": litellm_tool_call,
        "messages": litellm_messages,
        "messages_stream": litellm_messages_stream,
    },
    "litellm-user": {"chat_user": litellm_chat_user},
    # the provider in each style's name: a setup that records several providers names its fixtures apart
    "mistral": {
        "mistral_chat": mistral_chat,
        "mistral_chat_stream": mistral_chat_stream,
        "mistral_chat_stream_async": mistral_chat_stream_async,
        "mistral_embeddings": mistral_embeddings,
    },
    "groq": {
        "groq_chat": groq_chat,
        "groq_chat_stream": groq_chat_stream,
        "groq_chat_stream_async": groq_chat_stream_async,
        "groq_cached": groq_cached,
        "groq_cached_stream": groq_cached_stream,
    },
    "cohere": {
        "cohere_chat": cohere_chat,
        "cohere_chat_stream": cohere_chat_stream,
        "cohere_chat_stream_async": cohere_chat_stream_async,
    },
    "together": {
        "together_chat": together_chat,
        "together_chat_stream": together_chat_stream,
        "together_chat_async": together_chat_async,
        "together_shared_model": together_shared_model,
    },
    "portkey": {
        "portkey_chat": portkey_chat,
        "portkey_chat_stream": portkey_chat_stream,
        "portkey_provider_chat": portkey_provider_chat,
        "portkey_catalog_chat": portkey_catalog_chat,
        "portkey_groq_chat": portkey_groq_chat,
    },
    "instructor": {"extract": instructor_extract, "retry": instructor_retry},
    "crewai": {"crew": crewai_crew, "crew_stream": crewai_crew_stream, "crew_litellm": crewai_crew_litellm},
    "dspy": {
        "predict": dspy_predict,
        "chain_of_thought": dspy_chain_of_thought,
        "predict_anthropic": dspy_predict_anthropic,
        "predict_native": dspy_predict_native,
    },
    "dspy-agent": {"react": dspy_react},
    "haystack": {"pipeline": haystack_pipeline, "pipeline_stream": haystack_pipeline_stream},
    "smolagents": {"agent_tool": smolagents_agent_tool, "agent_stream": smolagents_agent_stream},
    "agno": {"agent_tool": agno_agent_tool, "agent_stream": agno_agent_stream},
    "autogen": {"agent_tool": autogen_agent_tool, "agent_stream": autogen_agent_stream},
    "ag2": {"ag2_chat": ag2_chat, "ag2_tool_call": ag2_tool_call},
    "mcp": {"mcp_tool": mcp_tool},
    # a LlamaIndex function agent on its OpenAI LLM alone (without OpenAILike)
    "llama-index-fn-agent": {"agent": llama_index_agent},
    "llama-index-agent": {
        "agent": llama_index_agent,
        "like_chat": llama_index_like_chat,
        "like_agent": llama_index_like_agent,
    },
    "beeai": {
        "chat": beeai_chat,
        "chat_stream": beeai_chat_stream,
        "ollama_v1_chat": beeai_ollama,
        "agent_tool": beeai_agent_tool,
    },
    "claude-agent": {
        "agent_query": claude_agent_query,
        "agent_client": claude_agent_client,
        "agent_tool": claude_agent_tool,
    },
    # local models: Ollama's native API (the ollama client), its OpenAI-compatible one and vLLM's (openai)
    "replicate": {"replicate_run": replicate_run},
    "writer": {"writer_chat": writer_chat, "writer_chat_stream": writer_chat_stream},
    "aleph-alpha": {"aleph_alpha_complete": aleph_alpha_complete},
    "sagemaker": {"sagemaker_invoke": sagemaker_invoke, "sagemaker_invoke_stream": sagemaker_invoke_stream},
    "watsonx": {
        "watsonx_generate": watsonx_generate,
        "watsonx_generate_stream": watsonx_generate_stream,
        "watsonx_generate_gpt_oss": watsonx_generate_gpt_oss,
        "watsonx_chat": watsonx_chat,
        "watsonx_chat_stream": watsonx_chat_stream,
    },
    "ollama": {
        "ollama_chat": ollama_chat,
        "ollama_chat_stream": ollama_chat_stream,
        "ollama_chat_stream_async": ollama_chat_stream_async,
        "ollama_thinking": ollama_thinking,
        "ollama_tool_call": ollama_tool_call,
        "ollama_generate": ollama_generate,
        "ollama_generate_stream": ollama_generate_stream,
        "ollama_embed": ollama_embed,
    },
    "ollama-v1": {
        "ollama_v1_chat": ollama_v1_chat,
        "ollama_v1_chat_stream": ollama_v1_chat_stream,
        "ollama_v1_gpt_oss": ollama_v1_gpt_oss,
    },
    "vllm": {
        "vllm_chat": vllm_chat,
        "vllm_chat_stream": vllm_chat_stream,
        "vllm_chat_stream_async": vllm_chat_stream_async,
        "vllm_cached": vllm_cached,
        "vllm_cached_stream": vllm_cached_stream,
        "vllm_gpt_oss": vllm_gpt_oss,
    },
    "groq-openai": {
        "groq_openai_chat": groq_openai_chat,
        "groq_openai_chat_stream": groq_openai_chat_stream,
        "groq_openai_cached": groq_openai_cached,
    },
}


def announce(stub: str, style: str) -> None:
    req = urllib.request.Request(
        f"{stub}/_tb/style",
        data=json.dumps({"style": style}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        resp.read()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stub", required=True)
    ap.add_argument("--sink", required=True)
    ap.add_argument("--instrument", required=True)
    ap.add_argument("--calls", required=True)
    ap.add_argument("--only-style", default="")
    # run as the MCP server of the `mcp` call group (a subprocess of the client's driver, on stdio)
    ap.add_argument("--serve-mcp", action="store_true")
    args = ap.parse_args()

    os.environ["TB_SINK"] = args.sink
    os.environ["TB_STUB"] = args.stub
    os.environ["TB_INSTRUMENT"] = args.instrument
    names = [name for name in args.instrument.split(",") if name]
    provider = sdk_provider(names, args.sink)
    if provider is None:
        service = "tokenbook-conformance-mcp-server" if args.serve_mcp else "tokenbook-conformance"
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        if "baggage-processor" in names:
            from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor

            # OpenTelemetry's Baggage span processor: every Baggage entry onto each span as it starts
            provider.add_span_processor(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
        if "openinference-pydantic-ai" in names:
            from openinference.instrumentation.pydantic_ai import OpenInferenceSpanProcessor

            # OpenInference's pydantic-ai instrumentation is a span processor that adds its attributes
            # to pydantic-ai's own spans as they end: before the exporter's, as its documentation says
            provider.add_span_processor(OpenInferenceSpanProcessor())
        if "openinference-openllmetry" in names:
            from openinference.instrumentation.openllmetry import (
                OpenInferenceSpanProcessor as FromOpenLLMetry,
            )

            # rewrites each OpenLLMetry span as it ends, adding OpenInference's attributes: before the
            # exporter's processor, as its documentation says
            provider.add_span_processor(FromOpenLLMetry())
        if "openinference-openlit" in names:
            from openinference.instrumentation.openlit import OpenInferenceSpanProcessor as FromOpenLIT

            provider.add_span_processor(FromOpenLIT())
        if "openinference-agent-framework" in names:
            from openinference.instrumentation.agent_framework import AgentFrameworkToOpenInferenceProcessor

            # rewrites each Agent Framework span as it ends into OpenInference's attributes: before the
            # exporter's processor, as its documentation says
            provider.add_span_processor(AgentFrameworkToOpenInferenceProcessor())
        exporter = OTLPSpanExporter(endpoint=f"{args.sink}/v1/traces", timeout=TIMEOUT)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
        trace.set_tracer_provider(provider)
    for name in names:
        instrument(name, provider)
    if args.serve_mcp:
        try:
            serve_mcp()
        finally:
            provider.shutdown()  # its spans exported before the client's stdio transport ends
        return 0

    for group in filter(None, args.calls.split(",")):
        for style, call in CALLS[group].items():
            if args.only_style and style != args.only_style:
                continue
            provider.force_flush()
            announce(args.stub, style)
            print(f"--- call style {style}", file=sys.stderr, flush=True)
            error = None
            try:
                call()
            except Exception:
                error = traceback.format_exc(limit=6)
                print(error, file=sys.stderr)
            provider.force_flush()
            print("TB-STYLE", json.dumps({"style": style, "ok": error is None, "error": error}), flush=True)
    announce(args.stub, "")
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
