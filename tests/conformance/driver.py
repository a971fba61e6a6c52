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
import json
import os
import sys
import traceback
import urllib.request
from collections.abc import Callable
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


def instrument(name: str, provider: TracerProvider) -> None:
    if name == "anthropic-sdk":
        return  # the anthropic SDK's own spans: on by default once a global SDK TracerProvider is set
    if name == "otel-genai-openai":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
    elif name == "otel-openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIv2

        OpenAIv2().instrument(tracer_provider=provider)
    elif name == "otel-genai-anthropic":
        from opentelemetry.instrumentation.genai.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=provider)
    elif name == "openinference-openai":
        from openinference.instrumentation.openai import OpenAIInstrumentor as OIOpenAI

        OIOpenAI().instrument(tracer_provider=provider)
    elif name == "openinference-anthropic":
        from openinference.instrumentation.anthropic import AnthropicInstrumentor as OIAnthropic

        OIAnthropic().instrument(tracer_provider=provider)
    elif name == "openinference-langchain":
        from openinference.instrumentation.langchain import LangChainInstrumentor

        LangChainInstrumentor().instrument(tracer_provider=provider)
    elif name == "openinference-openai-agents":
        from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

        # exclusive_processor (the default) replaces the agents SDK's own exporter to OpenAI's backend
        OpenAIAgentsInstrumentor().instrument(tracer_provider=provider, exclusive_processor=True)
    elif name == "openllmetry-openai":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as TLOpenAI

        TLOpenAI().instrument(tracer_provider=provider)
    elif name == "openllmetry-anthropic":
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as TLAnthropic

        TLAnthropic().instrument(tracer_provider=provider)
    elif name == "openllmetry-langchain":
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        LangchainInstrumentor().instrument(tracer_provider=provider)
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
    elif name == "otel-google-genai":
        from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor

        GoogleGenAiSdkInstrumentor().instrument(tracer_provider=provider)
    elif name == "openinference-google-genai":
        from openinference.instrumentation.google_genai import GoogleGenAIInstrumentor

        GoogleGenAIInstrumentor().instrument(tracer_provider=provider)
    elif name == "openllmetry-google-genai":
        from opentelemetry.instrumentation.google_generativeai import GoogleGenerativeAiInstrumentor

        GoogleGenerativeAiInstrumentor().instrument(tracer_provider=provider)
    elif name == "otel-botocore":
        from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

        BotocoreInstrumentor().instrument(tracer_provider=provider)
    elif name == "openllmetry-bedrock":
        from opentelemetry.instrumentation.bedrock import BedrockInstrumentor

        BedrockInstrumentor().instrument(tracer_provider=provider)
    elif name == "openinference-bedrock":
        from openinference.instrumentation.bedrock import BedrockInstrumentor as OIBedrock

        OIBedrock().instrument(tracer_provider=provider)
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
    elif name == "adk":
        return  # Google ADK's own spans, on the global provider
    elif name == "logfire":
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
        logfire.instrument_openai()
    elif name == "openinference-llama-index":
        from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

        LlamaIndexInstrumentor().instrument(tracer_provider=provider)
    elif name == "openinference-litellm":
        from openinference.instrumentation.litellm import LiteLLMInstrumentor

        LiteLLMInstrumentor().instrument(tracer_provider=provider)
    elif name == "pydantic-ai":
        from pydantic_ai import Agent
        from pydantic_ai.models.instrumented import InstrumentationSettings

        Agent.instrument_all(InstrumentationSettings(tracer_provider=provider, include_content=False))
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
SDK_SETUPS = ("traceloop", "langtrace")


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


def _langchain_chain() -> Any:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

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


def agents_tool() -> None:
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
    Runner.run_sync(agent, "What is the weather in Paris?")  # model call, tool, model call


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


BEDROCK_MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
# A cached system prompt: the stub answers with cache reads and writes whatever the request says.
BEDROCK_SYSTEM = [{"text": "You are a terse weather bot."}, {"cachePoint": {"type": "default"}}]


def bedrock_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=os.environ["BEDROCK_BASE_URL"],
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret-test",
        config=Config(retries={"max_attempts": 1}, read_timeout=TIMEOUT, connect_timeout=TIMEOUT),
    )


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


def adk_agent() -> None:
    import asyncio

    # the Google GenAI client that ADK makes for itself, pointed at the stub
    os.environ["GOOGLE_GEMINI_BASE_URL"] = os.environ["GEMINI_BASE_URL"]
    os.environ["GOOGLE_API_KEY"] = "gm-test"
    from google.adk.agents import Agent
    from google.adk.runners import InMemoryRunner
    from google.genai import types

    async def run() -> None:
        agent = Agent(name="weather", model="gemini-2.5-flash", instruction="Answer tersely.")
        runner = InMemoryRunner(agent=agent, app_name="tokenbook")
        session = await runner.session_service.create_session(app_name="tokenbook", user_id="u")
        message = types.Content(role="user", parts=[types.Part(text=QUESTION)])
        async for _ in runner.run_async(user_id="u", session_id=session.id, new_message=message):
            pass

    asyncio.run(run())


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


def litellm_chat_stream() -> None:
    _litellm(stream=True, stream_options={"include_usage": True})


def litellm_tool_call() -> None:
    _litellm(tools=[OPENAI_TOOL])


def litellm_messages() -> None:
    _litellm("anthropic/claude-sonnet-4-5", max_tokens=256)


def litellm_messages_stream() -> None:
    _litellm("anthropic/claude-sonnet-4-5", max_tokens=256, stream=True)


def _langfuse_openai() -> Any:
    from langfuse.openai import OpenAI

    return OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0, timeout=TIMEOUT)


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
    "anthropic": {
        "messages": anthropic_messages,
        "messages_stream": anthropic_messages_stream,
        "messages_stream_async": anthropic_messages_stream_async,
        "messages_stream_helper": anthropic_messages_stream_helper,
        "tool_use": anthropic_tool_use,
        "thinking": anthropic_thinking,
    },
    "langchain": {"chain": langchain_chain, "chain_stream": langchain_chain_stream},
    "agents": {"agent_tool": agents_tool},
    "gemini": {
        "generate": gemini_generate,
        "generate_stream": gemini_generate_stream,
        "generate_async": gemini_generate_async,
    },
    "bedrock": {"converse": bedrock_converse, "converse_stream": bedrock_converse_stream},
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
    "adk": {"agent": adk_agent},
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
    "litellm": {
        "chat": litellm_chat,
        "chat_stream": litellm_chat_stream,
        "tool_call": litellm_tool_call,
        "messages": litellm_messages,
        "messages_stream": litellm_messages_stream,
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
    args = ap.parse_args()

    os.environ["TB_SINK"] = args.sink
    names = [name for name in args.instrument.split(",") if name]
    provider = sdk_provider(names, args.sink)
    if provider is None:
        provider = TracerProvider(resource=Resource.create({"service.name": "tokenbook-conformance"}))
        exporter = OTLPSpanExporter(endpoint=f"{args.sink}/v1/traces", timeout=TIMEOUT)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
        trace.set_tracer_provider(provider)
    for name in names:
        instrument(name, provider)

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
