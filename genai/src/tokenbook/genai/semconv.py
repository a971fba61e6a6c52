"""Attribute names tokenbook reads and writes, in one place.

`opentelemetry-semantic-conventions` marks every `gen_ai` constant deprecated (they moved to the
GenAI conventions repo), so tokenbook keeps its own names here. Tuples list aliases in precedence
order: the first attribute present wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, NamedTuple

__all__ = [
    "AI_OPERATION_ID",
    "ATTRIBUTION_ALIASES",
    "ATTRIBUTION_KEYS",
    "CACHE_HIT_FLAGS",
    "CACHE_READ_TOKENS",
    "CACHE_WRITE_1H_TOKENS",
    "CACHE_WRITE_5M_TOKENS",
    "CACHE_WRITE_TOKENS",
    "CLIENT_COST",
    "CONTENT_ATTRIBUTES",
    "CONTENT_PREFIXES",
    "CONTENT_SUFFIXES",
    "CONTEXT_ID",
    "CONTEXT_ID_SOURCES",
    "CONVERSATION_ID",
    "ERROR_TYPE",
    "FIRST_TOKEN_EVENTS",
    "INPUT_EXCLUSIVE",
    "INPUT_TOKENS",
    "KIND_SIGNALS",
    "LAMINAR_SPAN_TYPE",
    "LANGCHAIN_TOKEN_DETAILS",
    "LANGCHAIN_USAGE",
    "LANGFUSE_OBSERVATION_TYPE",
    "LANGSMITH_SPAN_KIND",
    "LEADING_SPAN_KINDS",
    "LLM_REQUEST_TYPE",
    "MLFLOW_SPAN_TYPE",
    "MODEL",
    "MODEL_OPERATIONS",
    "NOT_BILLED_OPERATIONS",
    "NOT_CALL_SPAN_NAMES",
    "OPENINFERENCE_MODEL_KINDS",
    "OPENINFERENCE_SPAN_KIND",
    "OPENINFERENCE_TOOL_KINDS",
    "OPENINFERENCE_WRAPPER_KINDS",
    "OPERATION",
    "OUTPUT_TOKENS",
    "POLICY_PATH",
    "PROVIDER",
    "PROVIDER_METADATA",
    "REASONING_TOKENS",
    "REQUEST_MODEL",
    "RESEND_COUNTS",
    "RESPONSE_ID",
    "RESPONSE_MODEL",
    "SDK_SPAN_KINDS",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "SERVER_URL",
    "SERVICE_INSTANCE_ID",
    "SERVICE_NAME",
    "SERVICE_TIER",
    "SESSION_ID",
    "STREAM_FLAGS",
    "TB",
    "TEXT_COUNTS",
    "TIME_TO_FIRST_TOKEN",
    "TOOL_OPERATIONS",
    "TOTAL_TOKENS",
    "TRACELOOP_SPAN_KIND",
    "USAGE_OBJECTS",
    "WRAPPER_OPERATIONS",
    "SpanKindValues",
]

# --- usage, in precedence order (docs/guide/processor.md, "Usage normalization") ---------------------------
# The current GenAI semantic conventions come first; every later name is an alias, with the library
# (and version) that emits it. Modality subsets (`gen_ai.usage.text.input_tokens`, ...,
# `llm.token_count.prompt_details.audio`) are parts of these counts: never read, never added on top.
INPUT_TOKENS: Final = (
    "gen_ai.usage.input_tokens",  # semantic conventions (official instrumentations, anthropic SDK, ...)
    "gen_ai.usage.prompt_tokens",  # conventions < 1.27; OpenLLMetry < 0.30
    "llm.token_count.prompt",  # OpenInference (openai 0.1.66, anthropic 3.1.0, langchain 0.1.80)
    "llm.usage.prompt_tokens",  # OpenLLMetry < 0.30
    "llm.input_tokens",  # LiteLLM's OTel callback
    "ai.usage.inputTokens",  # the AI SDK's ai.* spans (ai 7.0.185 LegacyOpenTelemetry; ai 5.0.285 streams)
    "ai.usage.promptTokens",  # the same, ai 5.0.285 unstreamed calls
)
OUTPUT_TOKENS: Final = (
    "gen_ai.usage.output_tokens",  # semantic conventions
    "gen_ai.usage.completion_tokens",  # conventions < 1.27; OpenLLMetry < 0.30
    "llm.token_count.completion",  # OpenInference
    "llm.usage.completion_tokens",  # OpenLLMetry < 0.30
    "llm.output_tokens",  # LiteLLM's OTel callback
    "ai.usage.outputTokens",  # the AI SDK's ai.* spans (ai 7.0.185 LegacyOpenTelemetry; ai 5.0.285 streams)
    "ai.usage.completionTokens",  # the same, ai 5.0.285 unstreamed calls
)
CACHE_READ_TOKENS: Final = (
    "gen_ai.usage.cache_read.input_tokens",  # semantic conventions; OpenLLMetry 0.62.4, openlit 1.45.0
    "gen_ai.usage.cache_read_input_tokens",  # OpenLLMetry Anthropic < 0.40
    "llm.token_count.prompt_details.cache_read",  # OpenInference
    "ai.usage.inputTokenDetails.cacheReadTokens",  # the AI SDK's ai.* spans (ai 7.0.185)
    "ai.usage.cachedInputTokens",  # the same, also ai 5.0.285 streams
    "gen_ai.usage.cached_tokens",  # Langtrace (3.8.21 OpenAI, unstreamed calls)
    # OpenInference BeeAI (0.1.30): BeeAI's usage (inside its inclusive prompt count), under metadata only
    "metadata.usage.cached_prompt_tokens",
)
CACHE_WRITE_TOKENS: Final = (
    "gen_ai.usage.cache_write.input_tokens",  # semantic conventions (genai-anthropic 1.3b0, anthropic 2.17.0)
    "gen_ai.usage.cache_creation.input_tokens",  # conventions <= 1.37; OpenLLMetry 0.62.4, openlit 1.45.0
    "gen_ai.usage.cache_creation_input_tokens",  # OpenLLMetry Anthropic < 0.40
    "llm.token_count.prompt_details.cache_write",  # OpenInference (anthropic 3.1.0)
    "ai.usage.inputTokenDetails.cacheWriteTokens",  # the AI SDK's ai.* spans (ai 7.0.185)
    "metadata.usage.cached_creation_tokens",  # OpenInference BeeAI (0.1.30), as its cache reads
)
#: Aliases whose library writes every count as decimal text: OpenInference's BeeAI instrumentor (0.1.30)
#: unpacks BeeAI's usage into ``metadata.usage.*`` as strings (``"1024"``). Read as numbers, as any
#: numeric string is, but without a usage issue: that is the library's convention, not a bad value.
TEXT_COUNTS: Final = ("metadata.usage.cached_prompt_tokens", "metadata.usage.cached_creation_tokens")
#: The cache writes of `CACHE_WRITE_TOKENS` by cache lifetime (Anthropic's one-hour and five-minute
#: prompt caches, priced apart); the anthropic SDK's own spans (2.17.0) carry them.
CACHE_WRITE_1H_TOKENS: Final = ("anthropic.usage.cache_creation.ephemeral_1h_input_tokens",)
CACHE_WRITE_5M_TOKENS: Final = ("anthropic.usage.cache_creation.ephemeral_5m_input_tokens",)
REASONING_TOKENS: Final = (
    "gen_ai.usage.reasoning.output_tokens",  # semantic conventions (genai-openai 1.3b0, anthropic 2.17.0)
    "gen_ai.usage.reasoning_tokens",  # OpenLLMetry OpenAI 0.62.4
    "llm.token_count.completion_details.reasoning",  # OpenInference
    "ai.usage.outputTokenDetails.reasoningTokens",  # the AI SDK's ai.* spans (ai 7.0.185)
    "ai.usage.reasoningTokens",  # the same, also ai 5.0.285 streams
)
#: LangChain's usage metadata (`UsageMetadata`) as LangSmith (0.15.1) exports it, where alone its spans
#: carry the cache reads and writes and the reasoning tokens: the whole of it as JSON, and, on the calls
#: `wrap_openai` records, its input and output details as Python reprs (read where the JSON is absent).
#: Its input and output counts are inclusive; the details are disjoint parts of them (`cache_read`,
#: `cache_creation`, `ephemeral_5m_input_tokens`, `ephemeral_1h_input_tokens`; `reasoning`; under a
#: service tier `<tier>_cache_read`, `<tier>_reasoning`) (`usage.read_usage`).
LANGCHAIN_USAGE: Final = "langsmith.metadata.usage_metadata"
LANGCHAIN_TOKEN_DETAILS: Final = ("gen_ai.usage.input_token_details", "gen_ai.usage.output_token_details")
#: The AI SDK's provider metadata (ai 5: JSON text): its "anthropic" member holds Anthropic's own usage
#: object, input exclusive of the cache, where alone its spans carry the cache writes (`usage.read_usage`).
PROVIDER_METADATA: Final = "ai.response.providerMetadata"
#: The total of input and output, read only where a profile says the output count leaves out what the
#: total holds (`profiles.Profile.output_from_total`).
TOTAL_TOKENS: Final = (
    "gen_ai.usage.total_tokens",  # OpenLLMetry, OpenLIT, LiteLLM
    "llm.usage.total_tokens",  # OpenLLMetry < 0.30; OpenLLMetry Vertex AI 0.62.4
    "llm.token_count.total",  # OpenInference (vertexai 0.1.29)
)
#: A provider's usage object as text, first present wins: where a library writes its counts only there
#: (LiteLLM: cache reads and writes, their split by lifetime, reasoning; Langfuse: every count). Its
#: counts stand for the attributes above where a span has none of a kind (`usage.read_usage`).
#: Langfuse's usage details (5.2.0): JSON, a provider's usage object (its OpenAI wrapper: OpenAI's), or
#: Langfuse's own keys (`usage._with_langfuse_usage`): ``input`` and ``output`` apart from every ``input_*``
#: and ``output_*`` detail and from Anthropic's cache keys beside them, each a usage type priced on its own.
LANGFUSE_USAGE: Final = "langfuse.observation.usage_details"
USAGE_OBJECTS: Final = (
    "metadata.usage_object",  # LiteLLM's OTel callback (1.110.2): a Python dict's repr
    LANGFUSE_USAGE,  # Langfuse (5.2.0): JSON, OpenAI's usage, {"input": n} or Langfuse's own keys
    "mlflow.chat.tokenUsage",  # MLflow (3.17.2): JSON, input_tokens inclusive of the cache tokens
    # Logfire (5.4.0): JSON, the provider's own usage object beside its gen_ai.usage.* counts (Anthropic's
    # with the lifetimes of the cache writes and the thinking tokens, which those counts leave out)
    "gen_ai.usage.raw",
)
PROVIDER: Final = (
    "gen_ai.provider.name",  # semantic conventions (>= 1.37)
    # LangSmith (0.15.1): the provider LangChain's integration (or `wrap_openai`) declares; its
    # `gen_ai.system` is a guess from the model's name ("langchain" for o3-mini)
    "langsmith.metadata.ls_provider",
    "gen_ai.system",  # conventions < 1.37
    "llm.provider",  # OpenInference (anthropic 3.1.0, langchain 0.1.80)
    "llm.system",  # OpenInference (the only one openai 0.1.66 sets)
)
#: The host the client called. An OpenAI client's span on an Azure OpenAI host is Azure's, whatever
#: provider the span names (`calls.span_provider`): the official OpenAI instrumentation
#: (genai-openai 1.3b0) names the client library, ``openai``, on every host.
SERVER_ADDRESS: Final = "server.address"
#: The port the client called: a local model server's default port names it (`calls.span_provider`,
#: `pricing.providers.local_server`: Ollama's 11434, vLLM's 8000 on a loopback host, ...).
SERVER_PORT: Final = "server.port"
#: The client's base URL where a library records no ``server.address``: OpenLLMetry's OpenAI
#: instrumentation (0.62.4), ``http://localhost:11434/v1/``. Its host and port stand in for them.
SERVER_URL: Final = "gen_ai.openai.api_base"
RESPONSE_MODEL: Final = "gen_ai.response.model"
REQUEST_MODEL: Final = "gen_ai.request.model"
MODEL: Final = (
    RESPONSE_MODEL,  # semantic conventions: the model that answered
    REQUEST_MODEL,  # semantic conventions: the model asked for
    "llm.model_name",  # OpenInference LLM spans
    "embedding.model_name",  # OpenInference EMBEDDING spans (openai 0.1.66)
    "llm.response.model",  # OpenLLMetry < 0.30
    "llm.request.model",  # OpenLLMetry < 0.30
    "langfuse.observation.model.name",  # Langfuse (5.2.0)
    "mlflow.llm.model",  # MLflow (3.17.2), as JSON text (`calls.first_text` reads it)
)
OPERATION: Final = "gen_ai.operation.name"
#: The provider's ID of the response: two spans with the same one (same tenant) record one call.
RESPONSE_ID: Final = "gen_ai.response.id"
#: The process that emitted a span (resource attribute); its service name stands in when absent.
SERVICE_INSTANCE_ID: Final = "service.instance.id"
#: Set to true by manual instrumentation that copies Anthropic's native (cache-exclusive) input count.
INPUT_EXCLUSIVE: Final = "tokenbook.usage.input_exclusive"

# --- what kind of span this is (genai/calls.py) ---------------------------------------------
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
LLM_REQUEST_TYPE: Final = "llm.request.type"  # OpenLLMetry: chat, completion, embedding, rerank
TRACELOOP_SPAN_KIND: Final = "traceloop.span.kind"  # OpenLLMetry: workflow, task, agent, tool
LAMINAR_SPAN_TYPE: Final = "lmnr.span.type"  # Laminar: LLM, TOOL, DEFAULT (`@observe`), EXECUTOR, ...
LANGFUSE_OBSERVATION_TYPE: Final = "langfuse.observation.type"  # Langfuse: generation, tool, span, ...
MLFLOW_SPAN_TYPE: Final = "mlflow.spanType"  # MLflow, as JSON: "CHAT_MODEL", "TOOL", "AGENT", ...
AI_OPERATION_ID: Final = "ai.operationId"  # the AI SDK's own spans: ai.generateText, ai.toolCall, ...
LANGSMITH_SPAN_KIND: Final = "langsmith.span.kind"  # LangSmith: the run type (llm, chain, prompt, tool, ...)
#: `gen_ai.operation.name` values that are billable model calls (current conventions first).
MODEL_OPERATIONS: Final = frozenset(
    {
        "chat",
        "text_completion",
        "generate_content",
        "embeddings",
        "completion",  # OpenLLMetry < 0.30
        "embedding",  # OpenLLMetry < 0.30
        "create_response",  # early Responses API instrumentations
        "responses",  # early Responses API instrumentations
        "rerank",
        "image_generation",
        "audio_transcription",
        "speech",
    }
)
#: Operations whose usage repeats a call billed elsewhere: `fetch_response` reads a stored response
#: back (OpenAI Responses API retrieve). Recorded, never billed.
NOT_BILLED_OPERATIONS: Final = frozenset({"fetch_response"})
TOOL_OPERATIONS: Final = frozenset({"execute_tool"})
WRAPPER_OPERATIONS: Final = frozenset(
    {
        "invoke_agent",
        "create_agent",
        "invoke_workflow",
        "plan",
        "retrieval",
        "create_memory",  # the memory operations of the agent conventions
        "update_memory",
        "search_memory",
        "delete_memory",
        "workflow",  # OpenLLMetry workflow spans
        "execute_task",  # OpenLLMetry LangChain 0.62.4 (prompt, parser, lambda spans)
    }
)
OPENINFERENCE_MODEL_KINDS: Final = frozenset({"LLM", "EMBEDDING", "RERANKER"})
OPENINFERENCE_TOOL_KINDS: Final = frozenset({"TOOL"})
OPENINFERENCE_WRAPPER_KINDS: Final = frozenset({"CHAIN", "AGENT", "RETRIEVER", "GUARDRAIL", "EVALUATOR"})


_MLFLOW_WRAPPERS: Final = (
    "AGENT",
    "CHAIN",
    "RETRIEVER",
    "PARSER",
    "MEMORY",
    "WORKFLOW",
    "TASK",
    "GUARDRAIL",
    "EVALUATOR",
)


class SpanKindValues(NamedTuple):
    """An SDK's span-kind attribute's values that mean a model call, a tool and a wrapper."""

    model: frozenset[str] = frozenset()
    tool: frozenset[str] = frozenset()
    wrapper: frozenset[str] = frozenset()


#: Other SDKs' span-kind attributes, read in this order after the conventions' operation name and
#: OpenInference's span kind (`calls.call_kind`).
SDK_SPAN_KINDS: Final[Mapping[str, SpanKindValues]] = {
    # OpenLLMetry's client instrumentors
    LLM_REQUEST_TYPE: SpanKindValues(model=frozenset({"chat", "completion", "embedding", "rerank"})),
    TRACELOOP_SPAN_KIND: SpanKindValues(  # OpenLLMetry's frameworks and Traceloop's decorators
        tool=frozenset({"tool"}), wrapper=frozenset({"workflow", "task", "agent"})
    ),
    LAMINAR_SPAN_TYPE: SpanKindValues(  # `@observe` functions are DEFAULT
        model=frozenset({"LLM"}),
        tool=frozenset({"TOOL"}),
        wrapper=frozenset({"DEFAULT", "EXECUTOR", "EVALUATOR", "HUMAN_EVALUATOR", "EVALUATION"}),
    ),
    LANGFUSE_OBSERVATION_TYPE: SpanKindValues(
        model=frozenset({"generation", "embedding"}),
        tool=frozenset({"tool"}),
        wrapper=frozenset({"span", "agent", "chain", "retriever", "evaluator", "guardrail", "event"}),
    ),
    # the AI SDK's spans (ai 5, ai 7's legacy ones): its calls and wrappers are read by their usage
    AI_OPERATION_ID: SpanKindValues(tool=frozenset({"ai.toolCall"})),
    # JSON strings. Its model types (LLM, CHAT_MODEL, ...) say nothing here: such a span is a call by
    # its usage, since MLflow's span of a streamed Anthropic call carries none (the SDK's own span
    # records the call).
    MLFLOW_SPAN_TYPE: SpanKindValues(
        tool=frozenset({'"TOOL"'}),
        wrapper=frozenset(f'"{t}"' for t in _MLFLOW_WRAPPERS),
    ),
}
#: SDKs' span-kind attributes read before the conventions' operation name (`calls.call_kind`): the SDK
#: derives its ``gen_ai.operation.name`` from them and loses what the span was. LangSmith (0.15.1)
#: names a prompt template's run ``chat`` and a retriever's ``embeddings``.
LEADING_SPAN_KINDS: Final[Mapping[str, SpanKindValues]] = {
    LANGSMITH_SPAN_KIND: SpanKindValues(
        model=frozenset({"llm", "embedding"}),
        tool=frozenset({"tool"}),
        wrapper=frozenset({"chain", "prompt", "parser", "retriever"}),
    ),
}
#: Every attribute whose value may say what kind of span it is (`calls.call_kind`), besides usage: the
#: in-app processor looks further at a span with one of them, the collector decodes them.
KIND_SIGNALS: Final = (*LEADING_SPAN_KINDS, OPERATION, OPENINFERENCE_SPAN_KIND, *SDK_SPAN_KINDS)
#: Names of spans that an instrumentor types as a model call but that make none (`calls.call_kind`:
#: ``other``, whatever their attributes say).
NOT_CALL_SPAN_NAMES: Final = frozenset(
    {
        "watsonx.model_init",  # OpenLLMetry's watsonx (0.62.4): ModelInference's construction, a "completion"
    }
)
#: A response served from a cache without a model call: any of these set to true.
CACHE_HIT_FLAGS: Final = (
    "tokenbook.cache_hit",
    "gen_ai.response.cache_hit",
    "litellm.cache_hit",
    "cache_hit",
)

# --- read by the collector ------------------------------------------------------------------------
SERVICE_NAME: Final = "service.name"
ERROR_TYPE: Final = "error.type"
#: A client-computed cost, kept beside the collector's figure and never billed (first present wins).
CLIENT_COST: Final = ("tokenbook.cost.total", "gen_ai.usage.cost", "gen_ai.cost.total_cost")
#: The retry number of a call, first present wins (HTTP semconv, then OpenLLMetry/LiteLLM style names).
RESEND_COUNTS: Final = ("http.request.resend_count", "gen_ai.request.retry_count", "llm.retry_count")

# --- latency (genai/latency.py) ---------------------------------------------------------------------
#: Time to the first token or chunk of the answer, in seconds, first present wins.
TIME_TO_FIRST_TOKEN: Final = (
    "gen_ai.response.time_to_first_chunk",  # semconv (genai-openai/-anthropic 1.3b0, anthropic 2.17.0)
    "gen_ai.response.time_to_first_token",  # its deprecated name
    "gen_ai.server.time_to_first_token",  # openlit 1.45.0, also on unstreamed calls (a semconv metric's name)
    "gen_ai.client.operation.time_to_first_chunk",  # pydantic-ai 2.78.0, the AI SDK 7.0.185
)
#: Span events whose time marks the first token or chunk of a streamed answer (the first one counts).
FIRST_TOKEN_EVENTS: Final = frozenset(
    {
        "First Token Stream Event",  # OpenInference (openai 0.1.66)
        "gen_ai.content.completion.chunk",  # OpenLLMetry (openai 0.62.4): one event per chunk
    }
)
#: Whether the answer was streamed, first present wins.
STREAM_FLAGS: Final = (
    "gen_ai.request.stream",  # semantic conventions; openlit 1.45.0, anthropic 2.17.0
    "gen_ai.is_streaming",  # OpenLLMetry 0.62.4
)

# --- service tiers (genai/pricing/tiers.py) -----------------------------------------------------------
#: The service tier a call was served at (standard, flex, priority, batch, ...), first present wins:
#: what the app says, then the tier the response reports, then the tier the request asked for
#: (``auto`` there decides nothing). Names as in the semantic conventions (``openai.*``; before 1.37
#: ``gen_ai.openai.*``) and the anthropic SDK (2.17.0); recorded in tests/testdata/conformance/.
SERVICE_TIER: Final = (
    "tokenbook.service_tier",  # manual instrumentation, e.g. the results of a batch job
    "openai.response.service_tier",  # semconv; genai-openai 1.3b0, OpenLLMetry 0.62.4, openlit 1.45.0
    "gen_ai.openai.response.service_tier",  # semantic conventions < 1.37
    "anthropic.response.service_tier",  # the anthropic SDK's own spans (2.17.0)
    "openai.request.service_tier",  # semantic conventions: what was asked for
    "gen_ai.openai.request.service_tier",  # semantic conventions < 1.37
)

# --- attribution -------------------------------------------------------------------------------
CONTEXT_ID: Final = "tokenbook.context.id"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
SESSION_ID: Final = "session.id"
#: Which guard or route a call went through (the default key; both sides can be configured for another).
POLICY_PATH: Final = "tokenbook.policy.path"
#: The context ID is the first present of these; the trace ID is the last resort. After tokenbook's
#: own and the conventions', the session other SDKs record: Langfuse's, Traceloop's and Laminar's
#: association properties, the AI SDK's telemetry metadata, MLflow's trace metadata.
CONTEXT_ID_SOURCES: Final = (
    CONTEXT_ID,
    CONVERSATION_ID,
    SESSION_ID,
    "langfuse.session.id",
    "traceloop.association.properties.session_id",
    "lmnr.association.properties.session_id",  # Laminar's `@observe(session_id=...)`
    "ai.telemetry.metadata.sessionId",  # the AI SDK's telemetry metadata (the name Langfuse reads too)
    "mlflow.trace.session",
)
#: Attribution attribute -> where other SDKs and gateways record the same, read when the span has none
#: of its own (tokenbook's Baggage attribution, the conventions' ``user.id``, always comes first). Never
#: the tenant: that comes from the credential, or ``tenant.id``.
ATTRIBUTION_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "user.id": (
        "enduser.id",  # the conventions before user.id
        "langfuse.user.id",  # Langfuse
        "traceloop.association.properties.user_id",  # Traceloop's association properties
        "lmnr.association.properties.user_id",  # Laminar's association properties
        "ai.telemetry.metadata.userId",  # the AI SDK's telemetry metadata
        "mlflow.trace.user",  # MLflow's trace metadata
        # the end user named on the call (the OpenAI API's `user` parameter, LiteLLM's, Groq's):
        "gen_ai.request.user",  # OpenLIT
        "gen_ai.user",  # OpenLLMetry
        "llm.user",  # LiteLLM's callback, OpenLLMetry's earlier releases
        "metadata.user_api_key_end_user_id",  # LiteLLM's proxy: the end user of the request
        "metadata.user_api_key_user_id",  # LiteLLM's proxy: the key's user
    ),
    "team.id": ("metadata.user_api_key_team_id",),  # LiteLLM: the key's team
    "project.id": ("metadata.user_api_key_project_id",),  # LiteLLM: the key's project
}
#: Keyword of `attribute(...)` -> attribute / Baggage key.
ATTRIBUTION_KEYS: Final = {
    "tenant": "tenant.id",
    "user": "user.id",
    "project": "project.id",
    "team": "team.id",
    "feature": "app.feature",
    "session": SESSION_ID,
    "context_id": CONTEXT_ID,
    "policy_path": POLICY_PATH,
}

# --- content that is never stored unless configured ----------------------------------------------
CONTENT_ATTRIBUTES: Final = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "input.value",
        "output.value",
        "traceloop.entity.input",
        "traceloop.entity.output",
        "gen_ai.tool.definitions",
        # written whatever a library's content setting says (tests/conformance/test_redaction.py)
        "llm.prompt_template.variables",  # OpenInference LangChain: the template's inputs
        # OpenInference: the request's parameters; an Anthropic request's system prompt and tools among
        # them (its Anthropic instrumentation for Node.js, whatever OPENINFERENCE_HIDE_INPUTS says)
        "llm.invocation_parameters",
        "langfuse.observation.input",  # Langfuse
        "langfuse.observation.output",
        "mlflow.spanInputs",  # MLflow
        "mlflow.spanOutputs",
        "lmnr.span.input",  # Laminar's `@observe` spans: the function's arguments and result, whatever
        "lmnr.span.output",  # LMNR_TRACE_CONTENT says
        "pydantic_ai.all_messages",  # pydantic-ai
        "crewai.crew.result",  # OpenLLMetry CrewAI (its content setting aside)
        "crewai.crew.tasks",
        "crewai.crew.tasks_output",
        "crewai.task.description",
        "crew_tasks",  # OpenInference CrewAI
        "task_description",
        "tool.task_name",
        "haystack.pipeline.input_data",  # Haystack (opentelemetry-haystack), content tracing off
        "haystack.pipeline.output_data",
        "ai.prompt",  # the AI SDK's ai.* spans (recordInputs / recordOutputs)
        "ai.prompt.messages",
        "ai.response.text",
        "ai.response.object",
        "ai.response.toolCalls",
        "ai.toolCall.args",
        "ai.toolCall.result",
        # Mastra (@mastra/otel-exporter): a model step's raw provider answer, whatever hideOutput says
        "mastra.metadata.body",
    }
)
#: Any attribute whose name starts with one of these is content too (indexed OpenInference and
#: OpenLLMetry message attributes such as `llm.input_messages.0.message.content`).
CONTENT_PREFIXES: Final = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages",
    "llm.output_messages",
    "llm.prompts",
    "llm.completions",
    "llm.tools",
    "llm.request.functions",
    "retrieval.documents",
    "embedding.embeddings",  # OpenInference EMBEDDING spans: the embedded text (and its vector)
    "llm.openai.messages",  # LiteLLM's OpenTelemetry callback: the request and answer, per provider
    "llm.openai.choices",
    "llm.anthropic.messages",
    "llm.anthropic.content",
    "haystack.component.input",  # Haystack's component spans (content tracing on)
    "haystack.component.output",
)
#: (name prefix, name suffixes): an attribute under the prefix whose name ends with one of the suffixes is
#: content too (Mastra's `mastra.<span type>.input` / `.output`: an agent run's, a model generation's, a
#: model step's or a tool call's input and output, written unless a run's tracing options hide them).
CONTENT_SUFFIXES: Final = (("mastra.", (".input", ".output")),)


class TB:
    """Attributes written by tokenbook (all under `tokenbook.`)."""

    COST_TOTAL: Final = "tokenbook.cost.total"
    COST_INPUT: Final = "tokenbook.cost.input"
    COST_OUTPUT: Final = "tokenbook.cost.output"
    COST_CACHE_READ: Final = "tokenbook.cost.cache_read"
    COST_CACHE_WRITE: Final = "tokenbook.cost.cache_write"
    COST_CURRENCY: Final = "tokenbook.cost.currency"
    PRICE_SOURCE: Final = "tokenbook.price.source"
    PRICE_STATUS: Final = "tokenbook.price.status"
    BUDGET_STATE: Final = "tokenbook.budget.state"
    USAGE_ISSUE: Final = "tokenbook.usage.issue"
    BILLABLE: Final = "tokenbook.billable"
    CALL_KIND: Final = "tokenbook.call.kind"
    CONTEXT_ID: Final = CONTEXT_ID
    WORKFLOW_NAME: Final = "tokenbook.workflow.name"
    WORKFLOW_ID: Final = "tokenbook.workflow.id"
    TAG_PREFIX: Final = "tokenbook.tag."
    OUTCOME: Final = "tokenbook.outcome"  # span attribute, or event name + attribute: a business outcome
    #: Baggage key and span attribute: the collector reservation a call settles (`processor.reserve`).
    RESERVATION_ID: Final = "tokenbook.reservation.id"
    #: The default attribute of the policy path; the key is configurable on both sides (processor
    #: ``policy_path_key``, collector ``attribution.policy_path_key``).
    POLICY_PATH: Final = POLICY_PATH
