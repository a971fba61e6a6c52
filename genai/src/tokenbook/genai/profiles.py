"""Convention profiles: how each instrumentation library writes a call, keyed by instrumentation scope.

A span's instrumentation scope (OTLP ``ScopeSpans.scope``: name and version) says which library wrote
it, and so which attribute names it uses and what its counts mean. `PROFILES` is the table, in match
order; `profile_of(scope_name, scope_version)` returns the first entry whose scope name equals the
span's or is a dotted prefix of it (``opentelemetry.instrumentation.openai`` matches
``opentelemetry.instrumentation.openai.v1``) and whose version bounds hold, else `DEFAULT_PROFILE`
(the semantic conventions). docs/reference/profiles.md renders this table.

A profile says:

* ``input_inclusive``: whether the input count includes cache reads and writes. The semantic
  conventions say it does; openlit's Anthropic spans, and those of OpenLLMetry for Node.js, pass
  Anthropic's raw, cache-exclusive count through. For a profile that says inclusive, a count that
  cannot be inclusive (input < cache read + write) is still read as exclusive, and the guess is
  recorded in ``usage_issue``.
* ``exclusive_calls``: the calls of an inclusive library whose input count it writes exclusive of
  cache all the same, as (span-name prefix, model-name substring) pairs: OpenInference's Bedrock
  instrumentation folds the cache tokens into the input on Converse and Claude calls, but passes Amazon
  Nova's own ``inputTokens`` through on InvokeModel (`Profile.for_call` gives such a call's profile).
* ``rank``: how close to the wire the library records a call, for choosing which of several spans
  of one call bills it: 0 the provider SDK's own span, 1 an official OpenTelemetry instrumentor, 2 a
  client-library instrumentor (OpenInference, OpenLLMetry, openlit), 3 a framework instrumentor
  (LangChain, agents). Lower bills first.
* ``families``: the attribute families it writes (documentation; `semconv` reads every alias).
* ``output_from_total``: the library's output count leaves out reasoning tokens that its total
  counts (Gemini's thoughts, through OpenLLMetry's Google and Vertex AI instrumentations and
  OpenInference's Vertex AI instrumentation): where the total is larger
  than input + output, the difference is read as reasoning, inside the output (`usage.read_usage`).
* ``input_from_total`` (for the calls ``input_from_total_calls`` names by span-name prefix and model
  substring, as ``exclusive_calls`` does): the library's input count leaves out cache tokens that it
  does not report but that its total counts (OpenInference's LangChain instrumentor passes LangChain's
  ``prompt_tokens`` through, which langchain-aws's ``ChatBedrock`` and ``BedrockLLM`` take from
  Bedrock's cache-exclusive input count, while their cache counts go under names the instrumentor does
  not read): where the span reports no cache tokens and its total is larger than input + output, the
  input is read as the total less the output (`usage.read_usage`), so that the call's whole input is
  billed (at the input rate) and another layer of the same call, which reports the same input, is
  recognized as the same call. Only for those calls: the same library's total of a Gemini call counts
  the thoughts, which are output.
* ``output_exclusive``: the library's output count leaves out the reasoning count it writes beside it
  (OpenLIT's Google AI Studio spans pass Gemini's ``candidatesTokenCount`` through, the thoughts as
  ``gen_ai.usage.reasoning_tokens``): the reasoning is added to the output (`usage.read_usage`), which
  otherwise would be read as inclusive wherever the output is at least the reasoning.
* ``unbilled_cache_reads``: the library's cache-read count is not part of its (billed) input count
  but of a larger prompt the provider does not bill: OpenLIT's Cohere spans pass Cohere's
  ``cached_tokens`` (of the whole prompt the model saw, its template too, ``usage.tokens``) beside the
  billed input (``usage.billed_units``). Such a count is not read (`usage.read_usage`).
* ``stream_request``: (attribute, value) that marks the library's span of a stream's *request*, which
  ends when the stream is returned and carries no usage, while a separate span (Logfire: a log, in the
  context the request was made in, when the stream ends) records the call with its usage. Such a span
  without usage and without error is no call (`is_stream_request`): the row builder keeps it as a
  wrapper step, so the call is counted once.
* ``defects``: known wrong numbers of that library version (documentation and the conformance test).

Pure data and pure functions; thread-safe.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Final, NamedTuple

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "RANK_CLIENT",
    "RANK_FRAMEWORK",
    "RANK_OFFICIAL",
    "RANK_SDK",
    "STREAM_REQUEST_KEYS",
    "Profile",
    "is_stream_request",
    "profile_of",
    "version_tuple",
]

RANK_SDK: Final = 0
RANK_OFFICIAL: Final = 1
RANK_CLIENT: Final = 2
RANK_FRAMEWORK: Final = 3


class Profile(NamedTuple):
    """How one instrumentation library records calls: its scope, conventions and rank (see the module)."""

    name: str  # shown in the ledger (``profile`` in `tokenbook explain`) and the docs
    scope: str  # instrumentation scope name, or a dotted prefix of it
    input_inclusive: bool  # input counts include cache read + cache write tokens
    rank: int  # RANK_*: lower is closer to the wire and bills first
    families: str  # attribute families written (documentation)
    min_version: str = ""  # inclusive lower bound of the scope version ("" = any)
    max_version: str = ""  # exclusive upper bound ("" = any)
    defects: str = ""  # known wrong numbers (documentation)
    output_from_total: bool = False  # reasoning missing from the output count: total - input - output
    unbilled_cache_reads: bool = False  # the cache-read count is of tokens outside the billed input
    input_from_total: bool = False  # cache tokens missing from the input count: total - output
    output_exclusive: bool = False  # the output count leaves out the reasoning count written beside it
    #: (span-name prefix, model-name substring): calls whose input count is exclusive of cache though
    #: the profile's other calls are inclusive.
    exclusive_calls: tuple[tuple[str, str], ...] = ()
    #: (span-name prefix, model-name substring): calls read with `input_from_total`.
    input_from_total_calls: tuple[tuple[str, str], ...] = ()
    #: (attribute, value) of a stream's request span, which records no call (see the module)
    stream_request: tuple[str, str] | None = None

    def for_call(self, span_name: str, model: str) -> Profile:
        """This profile as it reads the call of `span_name` and `model`: exclusive of cache where
        `exclusive_calls` names the call, its input from the total where `input_from_total_calls` names
        it, else itself. Never raises."""
        profile = self
        if any(span_name.startswith(prefix) and family in model for prefix, family in self.exclusive_calls):
            profile = profile._replace(input_inclusive=False)
        if any(span_name.startswith(p) and family in model for p, family in self.input_from_total_calls):
            profile = profile._replace(input_from_total=True)
        return profile


#: The semantic conventions: input inclusive of cache, output inclusive of reasoning.
DEFAULT_PROFILE: Final = Profile(
    "semconv", "", True, RANK_CLIENT, "gen_ai.* (semantic conventions); any alias of `semconv`"
)

PROFILES: Final[tuple[Profile, ...]] = (
    Profile(
        "anthropic-sdk",
        "com.anthropic.sdk",
        True,
        RANK_SDK,
        "gen_ai.* current (cache_write, reasoning.output_tokens); anthropic.usage.cache_creation.* split; "
        "the Python SDK's (com.anthropic.sdk.python) and the TypeScript SDK's (com.anthropic.sdk.typescript, "
        "@anthropic-ai/sdk), a platform's client after a dot (.vertex)",
    ),
    Profile(
        "openai-sdk",
        "com.openai.sdk.python",
        True,
        RANK_SDK,
        "gen_ai.* current",
    ),
    Profile(
        "mistralai-sdk",
        "mistralai_sdk_tracer",
        True,
        RANK_SDK,
        "mistralai 3 (with MISTRAL_SDK_TELEMETRY=global): gen_ai.* current (cache_read), a response id; "
        "mistralai 1 (on with any global provider): gen_ai.usage.prompt_tokens and output_tokens only, "
        "mistral_ai.operation.id, no operation name, no response id; no scope version",
        defects="mistralai 1: no cache reads (an instrumentor's span of the same call bills it), no usage on "
        "streams",
    ),
    Profile(
        "otel-genai-bedrock",
        "opentelemetry.instrumentation.genai.bedrock",
        False,
        RANK_OFFICIAL,
        "gen_ai.* current (cache_read, cache_write); input_tokens is Bedrock's own count, exclusive of cache "
        "(Converse's inputTokens; InvokeModel's X-Amzn-Bedrock-Input-Token-Count, else the body's); "
        "gen_ai.request.model the model ID as asked (profile, ARN or model)",
        defects="1.3b0: no cache reads or writes on Amazon Nova InvokeModel calls (Nova's "
        "cacheReadInputTokenCount / cacheWriteInputTokenCount are not read): the cached input is priced "
        "at the input rate",
    ),
    Profile(
        "otel-genai-langchain",
        "opentelemetry.instrumentation.genai.langchain",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* current (cache_read, cache_write, reasoning.output_tokens) from LangChain's usage metadata "
        "(input inclusive of cache); invoke_workflow and execute_tool spans without usage. Through "
        "opentelemetry-util-genai 1.3b0 an official client instrumentor's call inside its chat span makes "
        "no span of its own (its counts are merged into this one); the provider SDK's own span (anthropic) "
        "is its child",
        defects="1.3b0: no cache-write lifetimes (ChatAnthropic's one-hour writes are priced at the "
        "five-minute rate unless the provider SDK's own span records the call)",
    ),
    Profile(
        "otel-genai-qwen-agent",
        "opentelemetry.instrumentation.genai.qwen_agent",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* current (a framework's spans, over a client library's); not recorded",
    ),
    Profile(
        "otel-genai-dspy",
        "opentelemetry.instrumentation.genai.dspy",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* current (cache_read): a `chat` span per DSPy LM call, on DSPy's LiteLLM engine and its own "
        "client alike (the model asked for without its LiteLLM prefix; the provider from that prefix; no "
        "server address; the response ID LiteLLM's, its own on other providers than OpenAI); an official "
        "client instrumentor's span under it is suppressed (opentelemetry-util-genai: one span per call); "
        "invoke_agent and execute_tool spans without usage",
        defects="no cache writes (it reads a cache_write_tokens field that LiteLLM's usage does not have): "
        "an Anthropic call's cache writes are priced at the input rate unless a client layer records the "
        "call",
    ),
    *(
        Profile(
            f"otel-genai-{name}",
            f"opentelemetry.instrumentation.genai.{module}",
            True,
            RANK_FRAMEWORK,
            f"gen_ai.* current: {spans} spans without usage; no span of its own per model call (the official "
            "OpenAI instrumentor's chat spans, under the agent's, bill them)",
        )
        for name, module, spans in (
            ("openai-agents", "openai_agents", "invoke_workflow, invoke_agent and execute_tool"),
            (
                "llama-index",
                "llama_index",
                "invoke_workflow, invoke_agent (gen_ai.request.model), execute_tool and retrieval",
            ),
            (
                "agno",
                "agno",
                "invoke_agent (gen_ai.request.model), invoke_workflow, execute_tool and retrieval",
            ),
        )
    ),
    Profile(
        "otel-genai",
        "opentelemetry.instrumentation.genai",
        True,
        RANK_OFFICIAL,
        "gen_ai.* current (cache_write, reasoning.output_tokens)",
    ),
    Profile(
        "otel-google-genai",
        "opentelemetry.instrumentation.google_genai",
        True,
        RANK_OFFICIAL,
        "gen_ai.* current (cache_read, reasoning.output_tokens: Gemini's thoughts, inside the output)",
    ),
    Profile(
        "otel-util-genai",
        "opentelemetry.util.genai",
        True,
        RANK_OFFICIAL,
        "gen_ai.* (semantic conventions): the spans opentelemetry-util-genai makes for an official "
        "instrumentor (openai-v2 2.4b0's chat calls)",
        defects="openai-v2 2.4b0 through util-genai 1.1b0: no cache reads",
    ),
    Profile(
        "otel-openai-v2",
        "opentelemetry.instrumentation.openai_v2",
        True,
        RANK_OFFICIAL,
        "gen_ai.* (semantic conventions)",
    ),
    Profile(
        "otel-botocore",
        "opentelemetry.instrumentation.botocore",
        False,
        RANK_OFFICIAL,
        "gen_ai.* (cache_creation); input_tokens is Bedrock's inputTokens, exclusive of cache",
    ),
    Profile(
        "openlit-anthropic",
        "openlit.instrumentation.anthropic",
        False,
        RANK_CLIENT,
        "gen_ai.* (cache_creation); input_tokens is Anthropic's raw count, exclusive of cache",
        defects="no reasoning count (thinking tokens are inside the output count)",
    ),
    Profile(
        "openlit-cohere",
        "openlit.instrumentation.cohere",
        True,
        RANK_CLIENT,
        "gen_ai.* (cache_read); input_tokens and output_tokens are Cohere's billed_units; "
        "cache_read.input_tokens is Cohere's cached_tokens, of the whole prompt (usage.tokens), not billed",
        defects="cached_tokens reported as cache reads though Cohere bills billed_units (not read)",
        unbilled_cache_reads=True,
    ),
    Profile(
        "openlit-bedrock",
        "openlit.instrumentation.bedrock",
        False,
        RANK_CLIENT,
        "gen_ai.* (cache_read, cache_creation); input_tokens is Bedrock's Converse inputTokens, exclusive of "
        "cache",
        defects="Converse only: no span for converse_stream nor for InvokeModel",
    ),
    Profile(
        "openlit-google-ai-studio",
        "openlit.instrumentation.google_ai_studio",
        True,
        RANK_CLIENT,
        "gen_ai.* (cache_read); output_tokens is Gemini's candidatesTokenCount, exclusive of the thoughts "
        "it writes beside it as gen_ai.usage.reasoning_tokens",
        output_exclusive=True,
    ),
    *(
        Profile(
            "openlit-framework",
            f"openlit.instrumentation.{framework}",
            True,
            RANK_FRAMEWORK,
            "gen_ai.* (cache_creation); gen_ai.usage.cost (client cost, never billed); OpenLIT's framework "
            "instrumentations (each under its own scope), beside its client ones in `openlit.init()`",
            defects=defects,
        )
        for framework, defects in (
            (
                "langchain",
                "ChatAnthropic: Anthropic's cache-exclusive input and no cache counts on unstreamed calls, "
                "`anthropic` as the model of a stream; no span on a ChatOpenAI stream through a chain",
            ),
            ("langgraph", "an async agent's workflow span carries the last model call's usage, no cache"),
            ("llamaindex", ""),
            ("haystack", ""),
            ("crewai", "the crew's workflow span carries the sum of its calls' usage, no cache"),
            ("ag2", ""),
            ("agno", ""),
            ("pydantic_ai", ""),
            ("openai_agents", ""),
            ("google_adk", ""),
            ("strands", ""),
            ("smolagents", ""),
            ("claude_agent_sdk", ""),
            ("agent_framework", ""),
            ("dynamiq", ""),
            ("controlflow", ""),
            ("julep", ""),
            ("letta", ""),
            ("browser_use", ""),
        )
    ),
    Profile(
        "openlit",
        "openlit.instrumentation",
        True,
        RANK_CLIENT,
        "gen_ai.* (cache_creation); gen_ai.usage.cost (client cost, never billed)",
        defects="no reasoning count (reasoning tokens are inside the output count)",
    ),
    Profile(
        "openllmetry-anthropic",
        "opentelemetry.instrumentation.anthropic",
        True,
        RANK_CLIENT,
        "gen_ai.* (cache_creation)",
        defects="streams: output one token too high (message_start's output_tokens added to the total)",
    ),
    Profile(
        "openllmetry-js-anthropic",
        "@traceloop/instrumentation-anthropic",
        False,
        RANK_CLIENT,
        "gen_ai.* (cache_read, cache_creation); input_tokens is Anthropic's raw count, exclusive of cache; "
        "no response id (OpenLLMetry for Node.js)",
        defects="no cache-write lifetimes (one-hour writes priced at the five-minute rate)",
    ),
    Profile(
        "openllmetry-js",
        "@traceloop/instrumentation-openai",
        True,
        RANK_CLIENT,
        "gen_ai.* (input, output and total only) (OpenLLMetry for Node.js)",
        defects="no cache reads (a cached prompt is priced at the input rate); no usage on streams (the "
        "stream's usage chunk is not read); no span for embeddings",
    ),
    Profile(
        "openllmetry-langchain",
        "opentelemetry.instrumentation.langchain",
        True,
        RANK_FRAMEWORK,
        "gen_ai.*; traceloop.span.kind; execute_task / invoke_agent wrappers",
        defects="0.62.4 on ChatAnthropic: a cache-write count of 0 (it reads LangChain's `cache_creation`, "
        "which langchain-anthropic sets to 0 when it reports the writes by lifetime): the cache writes are "
        "priced at the input rate unless the provider SDK's own span records the call",
    ),
    Profile(
        "openllmetry-bedrock",
        "opentelemetry.instrumentation.bedrock",
        False,
        RANK_CLIENT,
        "gen_ai.* (cache_creation); input_tokens is Bedrock's inputTokens, exclusive of cache; "
        "the model without its vendor prefix",
    ),
    Profile(
        "openllmetry-js-bedrock",
        "@traceloop/instrumentation-bedrock",
        False,
        RANK_CLIENT,
        "gen_ai.* (input, output and total only); input_tokens is the body's own count, exclusive of cache "
        "(Claude's input_tokens, Nova's inputTokens); gen_ai.request.model the model without its vendor and "
        "inference-profile prefixes; InvokeModel only (OpenLLMetry for Node.js)",
        defects="0.27.0: no cache reads or writes (a cached prompt is billed without them; Nova's total, "
        "which counts them, is read as input); no usage on Converse calls nor where the model ID is a "
        "global. profile or an ARN",
        input_from_total=True,
    ),
    Profile(
        "openllmetry-google",
        "opentelemetry.instrumentation.google_generativeai",
        True,
        RANK_CLIENT,
        "gen_ai.* (cache_read); gen_ai.usage.total_tokens",
        defects="Gemini's thoughts are in neither the output count nor a reasoning count, only in the total "
        "(read from there)",
        output_from_total=True,
    ),
    Profile(
        "openllmetry-vertexai",
        "opentelemetry.instrumentation.vertexai",
        True,
        RANK_CLIENT,
        "gen_ai.* (cache_read); gen_ai.system Google; llm.usage.total_tokens; llm.request.type completion",
        defects="Gemini's thoughts are in neither the output count nor a reasoning count, only in the total "
        "(read from there)",
        output_from_total=True,
    ),
    Profile(
        "openllmetry-crewai",
        "opentelemetry.instrumentation.crewai",
        True,
        RANK_FRAMEWORK,
        "gen_ai.*, crewai.*; traceloop.span.kind; invoke_agent wrappers; `{model}.llm` spans (CrewAI's "
        "LiteLLM route only) without usage; the agent span sums that route's calls; scope version 0.36.0 "
        "in package 0.62.4",
        defects="the agent span's sum has no cache reads (billed only when no client layer records the "
        "calls)",
    ),
    Profile(
        "openllmetry-llamaindex",
        "opentelemetry.instrumentation.llamaindex",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* (cache_read); gen_ai.provider.name from the LLM class's name (`openailike`), the answer's "
        "model, an empty gen_ai.request.model; traceloop.span.kind workflow / task spans without usage. No "
        "span of its own for LlamaIndex's `OpenAI` LLM (OpenLLMetry's OpenAI instrumentor records the "
        "call); under its other LLMs' spans OpenLLMetry's client instrumentors are suppressed (its span "
        "alone bills)",
    ),
    Profile(
        "openllmetry-openai-agents",
        "opentelemetry.instrumentation.openai_agents",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* (cache_read, reasoning_tokens); an `openai.response` span per model call (the answer's "
        "model and response id, no request model) over the client instrumentor's; invoke_agent, "
        "execute_tool and `Agent Workflow` spans without usage",
    ),
    Profile(
        "openllmetry-haystack",
        "opentelemetry.instrumentation.haystack",
        True,
        RANK_FRAMEWORK,
        "gen_ai.*; traceloop.span.kind (a framework's spans, over a client library's); not recorded: 0.62.4 "
        "wraps haystack.components.generators.openai, gone in haystack-ai 3",
    ),
    Profile(
        "ag2",
        "opentelemetry.instrumentation.ag2",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* (input and output only; gen_ai.usage.cost, AG2's own estimate, not read); ag2.span.type: "
        "AG2's own tracing (`autogen.opentelemetry`), a `chat {model}` span per call of its OpenAIWrapper "
        "over the client library's; invoke_agent and execute_tool spans without usage; a `conversation` "
        "span that sums the chat's calls (input, output, the models comma-joined)",
        defects="0.14.0: no cache reads (the cached input is priced at the input rate unless a client "
        "instrumentor's span records the call)",
    ),
    Profile(
        "openllmetry",
        "opentelemetry.instrumentation",
        True,
        RANK_CLIENT,
        "gen_ai.* (cache_creation, reasoning_tokens); llm.request.type; older: llm.usage.*",
        defects="OpenAI 0.62.4: no span for a Responses stream made through with_raw_response (the OpenAI "
        "Agents SDK's streams; its agents instrumentor's span records them)",
    ),
    Profile(
        "openinference-langchain",
        "openinference.instrumentation.langchain",
        True,
        RANK_FRAMEWORK,
        "llm.* (llm.model_name, llm.token_count.*); openinference.span.kind; no response id",
        defects="0.1.80 on ChatAnthropic: no cache-write lifetimes (the one-hour writes are priced at the "
        "five-minute rate unless the provider SDK's own span records the call). "
        "0.1.80 on langchain-aws's ChatBedrock (InvokeModel): the prompt count without the cache "
        "reads and writes, which it does not report but its total counts (read from the total: the cached "
        "input is priced at the input rate; a Bedrock instrumentor's span beside it bills the call)",
        input_from_total_calls=(("ChatBedrock", ""), ("Bedrock", "")),
    ),
    Profile(
        "openinference-agents",
        "openinference.instrumentation.openai_agents",
        True,
        RANK_FRAMEWORK,
        "llm.*; openinference.span.kind; no response id",
    ),
    Profile(
        "openinference-llama-index",
        "openinference.instrumentation.llama_index",
        True,
        RANK_FRAMEWORK,
        "llm.*; openinference.span.kind; no response id",
    ),
    Profile(
        "openinference-crewai",
        "openinference.instrumentation.crewai",
        True,
        RANK_FRAMEWORK,
        "llm.*; openinference.span.kind (crew CHAIN, AGENT, TOOL spans); in its event-listener mode an LLM "
        "span per model call (llm.token_count.*, no provider), in a trace apart from the client layer's",
        defects="event-listener mode on CrewAI's LiteLLM route: no cache reads, and a call may have no LLM "
        "span",
    ),
    Profile(
        "openinference-dspy",
        "openinference.instrumentation.dspy",
        True,
        RANK_FRAMEWORK,
        "llm.* (llm.model_name, llm.provider); openinference.span.kind; its LM spans carry no token counts",
        defects="no usage: DSPy's calls are billed by a client layer only (LiteLLM's instrumentor on DSPy's "
        "LiteLLM engine; DSPy 3.4's own client, its default engine, has none)",
    ),
    Profile(
        "openinference-haystack",
        "openinference.instrumentation.haystack",
        True,
        RANK_FRAMEWORK,
        "llm.* (prompt, completion and total counts only); openinference.span.kind; no response id",
        defects="no cache reads (a cached prompt is priced at the input rate unless a client layer records "
        "the call)",
    ),
    Profile(
        "openinference-smolagents",
        "openinference.instrumentation.smolagents",
        True,
        RANK_FRAMEWORK,
        "llm.* (prompt, completion and total counts only; llm.model_name the model asked for); "
        "openinference.span.kind: an LLM span per model call (`<Model>.generate`, `.generate_stream`) over "
        "the client instrumentor's; the agent's AGENT span (`<Agent>.run`) sums its run's calls, no model",
        defects="no cache reads (a cached prompt is priced at the input rate unless a client layer records "
        "the call)",
    ),
    Profile(
        "openinference-agno",
        "openinference.instrumentation.agno",
        True,
        RANK_FRAMEWORK,
        "llm.* (prompt, completion, cache_read; llm.provider as Agno names it, `OpenAI`; llm.model_name the "
        "model asked for); openinference.span.kind: `<Model>.invoke` / `.invoke_stream` LLM spans over the "
        "client instrumentor's; Agent.run AGENT and TOOL spans without usage",
    ),
    Profile(
        "openinference-autogen-agentchat",
        "openinference.instrumentation.autogen_agentchat",
        True,
        RANK_FRAMEWORK,
        "llm.* (prompt, completion and total counts only; llm.model_name the answer's model; no provider); "
        "openinference.span.kind: `<ModelClient>.create` / `.create_stream` LLM spans over the client "
        "instrumentor's; AGENT (`<agent>.on_messages_stream`) and TOOL spans without usage",
        defects="no cache reads (a cached prompt is priced at the input rate unless a client layer records "
        "the call); no provider (priced by the model's name)",
    ),
    Profile(
        "openinference-google-adk",
        "openinference.instrumentation.google_adk",
        True,
        RANK_FRAMEWORK,
        "openinference.span.kind: invocation / invoke_workflow CHAIN and agent_run AGENT spans without "
        "usage; with google-adk 2.13 it writes its llm.* attributes (the prompt and answer too, whatever "
        "OPENINFERENCE_HIDE_* says) onto ADK's own spans (scope gcp.vertex.agent), not spans of its own",
        defects="google-adk 2.13: every model call of an agent run is written onto ADK's one invoke_agent "
        "span, each over the one before (the run's earlier calls are billed only where a client layer "
        "records them)",
    ),
    Profile(
        "openinference-beeai",
        "openinference.instrumentation.beeai",
        True,
        RANK_FRAMEWORK,
        "llm.* (prompt, completion and total counts; llm.provider as BeeAI names it, `openai`, `ollama`; "
        "llm.model_name the model asked for); its cache reads and writes only as metadata.usage.* "
        "(BeeAI's usage, as decimal text: cached_prompt_tokens, cached_creation_tokens, read without a "
        "usage issue); openinference.span.kind: an LLM "
        "span per model call (`<ChatModel>`), a `new_token` LLM span without usage per streamed chunk, "
        "AGENT and TOOL spans without usage",
    ),
    Profile(
        "openinference-claude-agent-sdk",
        "openinference.instrumentation.claude_agent_sdk",
        True,
        RANK_FRAMEWORK,
        "llm.* (llm.token_count.prompt inclusive, its cache reads and writes; llm.model_name the model "
        "asked for); openinference.span.kind: an AGENT span per turn (`ClaudeAgentSDK.query`, "
        "`ClaudeAgentSDK.ClaudeSDKClient.receive_response`) with the turn's usage, TOOL spans without "
        "usage; the model calls are the Claude Code CLI's, a subprocess, and have no span of their own",
        defects="0.1.22: a turn's usage is summed from the CLI's assistant messages (Claude Code >= "
        "2.1.277), which carry the stream's opening usage (output 1), not the final count: the output is "
        "undercounted; a turn of several model calls is one span, their usage summed",
    ),
    Profile(
        "google-adk",
        "gcp.vertex.agent",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* current (cache_read, reasoning.output_tokens: Gemini's thoughts, inside the output); "
        "invoke_workflow / invoke_agent wrappers without usage; with OpenInference's ADK instrumentor on "
        "(1.0.5, google-adk 2.13), the model calls' attributes and llm.* copies land on the invoke_agent "
        "span instead, the run's last call's only (see openinference-google-adk)",
    ),
    Profile(
        "autogen",
        "autogen-core",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* (gen_ai.system autogen): AutoGen's own create_agent, invoke_agent and execute_tool spans, "
        "without usage; no scope version",
    ),
    Profile(
        "semantic-kernel",
        "semantic_kernel",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* (input and output only); its prompt functions are execute_tool spans",
        defects="no cache reads (a cached prompt is priced at the input rate unless another layer records "
        "the call)",
    ),
    Profile(
        "agent-framework",
        "agent_framework",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* current (cache_read, reasoning.output_tokens); Microsoft Agent Framework's own chat spans "
        "over its chat clients, gen_ai.provider.name the client's provider; invoke_agent spans sum their "
        "calls (gen_ai.provider.name microsoft.agent_framework); OpenInference's span processor for them "
        "(no scope of its own) adds llm.* copies of the same counts",
        defects="with the v1.36.0 conventions (an OTEL_SEMCONV_STABILITY_OPT_IN without "
        "gen_ai_latest_experimental): gen_ai.system, no cache reads (a cached prompt is priced at the input "
        "rate unless another layer records the call)",
    ),
    Profile(
        "strands",
        "strands.telemetry.tracer",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* (old and new names side by side); gen_ai.system is strands-agents, not the provider; "
        "invoke_agent and event-loop spans sum their calls",
    ),
    Profile(
        "logfire",
        "logfire",
        True,
        RANK_CLIENT,
        "gen_ai.* (cache_read, cache_creation); gen_ai.usage.raw, the provider's usage object (the reasoning "
        "or thinking tokens, the lifetimes of Anthropic's cache writes); a stream's usage on a log of its "
        "own when the stream ends, beside the request's span (which has none: no call)",
        stream_request=("logfire.span_type", "span"),
    ),
    Profile(
        "pydantic-ai",
        "pydantic-ai",
        True,
        RANK_FRAMEWORK,
        "gen_ai.* (cache_read); gen_ai.usage.details.*; invoke_agent spans sum their calls in "
        "gen_ai.aggregated_usage.* (not read); OpenInference's pydantic-ai instrumentation (a span "
        "processor, no scope of its own) adds llm.* copies of the same counts to these spans",
    ),
    Profile(
        "langfuse",
        "langfuse-sdk",
        True,
        RANK_CLIENT,
        'langfuse.observation.* only: model.name, usage_details (OpenAI\'s usage object, {"input": n}, or '
        "Langfuse's own keys: input and output apart from their input_* / output_* details and Anthropic's "
        "cache keys), type (generation, embedding)",
        defects="no provider: a model name that names none (text-embedding-3-small) is unpriced",
    ),
    Profile(
        "mlflow",
        "mlflow.tracing.provider",
        True,
        RANK_CLIENT,
        "mlflow.* only, every value as JSON text: mlflow.llm.model, mlflow.chat.tokenUsage (input inclusive, "
        "cache reads and writes, one-hour writes); no response id",
        defects="no usage on Anthropic streams (the SDK's own span has it) nor on embeddings",
    ),
    Profile(
        "litellm",
        "litellm",
        True,
        RANK_CLIENT,
        "gen_ai.*; cache reads and writes, their lifetimes and reasoning only in metadata.usage_object; "
        "gen_ai.cost.* (client cost, never billed); response IDs of its own",
    ),
    Profile(
        "langsmith",
        "langsmith",
        True,
        RANK_FRAMEWORK,  # made from LangSmith's runs by its background thread, after the call
        "gen_ai.usage.input/output/total_tokens; the cache reads and writes, their lifetimes and reasoning "
        "only in langsmith.metadata.usage_metadata (LangChain's usage metadata, JSON) and "
        "gen_ai.usage.input/output_token_details; the provider in langsmith.metadata.ls_provider "
        "(gen_ai.system is a guess from the model's name); no response id on LangChain's runs",
    ),
    Profile(
        "langtrace",
        "langtrace_python_sdk.instrumentation",
        True,
        RANK_CLIENT,
        "gen_ai.* (gen_ai.system); cache reads as gen_ai.usage.cached_tokens; no response id",
        defects="OpenAI streams: no cache reads (the cached input is priced at the input rate)",
    ),
    Profile(
        "laminar",
        # every span of Laminar's SDK; the instrumented library in lmnr.span.instrumentation_scope.*
        "lmnr.tracer",
        True,
        RANK_CLIENT,
        "gen_ai.* (cache_read, cache_creation, reasoning); lmnr.span.type (LLM, TOOL, DEFAULT for "
        "`@observe` functions); who and which session in lmnr.association.properties.user_id / session_id",
        defects="Anthropic: no cache-write lifetimes (one-hour writes priced at the five-minute rate)",
    ),
    Profile(
        "ai-sdk",
        "gen_ai",
        True,
        RANK_CLIENT,
        "gen_ai.* (cache_read, cache_creation); the AI SDK's OpenTelemetry integration (Node.js); "
        "invoke_agent and its model calls both carry usage",
        defects="no cache-write lifetimes (one-hour writes priced at the five-minute rate)",
    ),
    Profile(
        "ai-sdk-legacy",
        "ai",
        True,
        RANK_CLIENT,
        "gen_ai.usage.input/output_tokens and ai.usage.* (cache and reasoning only there); "
        "ai.generateText wrappers carry ai.usage.* too; ai 5: Anthropic's own usage in "
        "ai.response.providerMetadata",
        defects="ai 7: no cache-write lifetimes; ai 5: no cache reads on unstreamed OpenAI calls",
    ),
    Profile(
        "openinference-bedrock",
        "openinference.instrumentation.bedrock",
        True,
        RANK_CLIENT,
        "llm.* (llm.token_count.*: input inclusive of cache, but Amazon Nova's own inputTokens on "
        "InvokeModel spans); llm.model_name: the answer's model on Claude InvokeModel calls, else the "
        "model ID",
        defects="InvokeModel: no cache reads or writes on Claude streams; a Claude call is named by the "
        "answer's model, not the inference profile (a global. profile is priced at the regional rate)",
        exclusive_calls=(("bedrock.invoke_model", "amazon.nova"),),
    ),
    Profile(
        "openinference-vertexai",
        "openinference.instrumentation.vertexai",
        True,
        RANK_CLIENT,
        "llm.* (llm.model_name: the model's Vertex AI resource name; llm.token_count.prompt, completion, "
        "total); openinference.span.kind",
        defects="no cache reads (a cached prompt is priced at the input rate); Gemini's thoughts are in "
        "neither the output count nor a reasoning count, only in the total (read from there)",
        output_from_total=True,
    ),
    Profile(
        "openinference-js-bedrock",
        "@arizeai/openinference-instrumentation-bedrock",
        False,
        RANK_CLIENT,
        "llm.* (llm.token_count.*: Bedrock's own input count, exclusive of cache; the cache reads and writes "
        "beside it on InvokeModel calls, none on Converse calls, whose total counts them); llm.model_name "
        "the model ID without its vendor prefix (OpenInference for Node.js)",
        defects="0.5.1: Converse: no cache reads or writes (the input is read from the total, all of it "
        "priced as input); InvokeModel: llm.model_name is the vendor (anthropic, meta, amazon) where the "
        "model ID is an inference profile or an ARN (unpriced), no cache counts on Nova streams",
        input_from_total_calls=(("bedrock.converse", ""),),
    ),
    *(
        Profile(
            "openinference-js",
            f"@arizeai/openinference-instrumentation-{client}",
            True,
            RANK_CLIENT,
            "llm.* (llm.model_name, llm.token_count.*: input inclusive of cache); openinference.span.kind "
            "(OpenInference for Node.js)",
            defects=defects,
        )
        for client, defects in (
            ("openai", "no usage on chat streams (the stream's usage chunk is not read) nor on embeddings"),
            ("anthropic", "no cache-write lifetimes (one-hour writes priced at the five-minute rate)"),
        )
    ),
    Profile(
        "openinference",
        "openinference.instrumentation",
        True,
        RANK_CLIENT,
        "llm.* (llm.model_name, embedding.model_name, llm.token_count.*); openinference.span.kind",
        defects="OpenAI 0.1.66: no usage on a Responses stream made through with_raw_response (the OpenAI "
        "Agents SDK's streams; its agents instrumentor's span records them)",
    ),
)

_NUMBERS: Final = re.compile(r"\d+")


def version_tuple(version: str) -> tuple[int, ...]:
    """The leading numbers of a version (``"1.3b0"`` -> ``(1, 3, 0)``); ``()`` when it has none."""
    return tuple(int(n) for n in _NUMBERS.findall(version)[:4])


def _scope_matches(prefix: str, name: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _version_ok(profile: Profile, version: str) -> bool:
    if not profile.min_version and not profile.max_version:
        return True
    have = version_tuple(version)
    if not have:
        return False
    if profile.min_version and have < version_tuple(profile.min_version):
        return False
    return not (profile.max_version and have >= version_tuple(profile.max_version))


#: The attributes that mark a stream's request span (`Profile.stream_request`): the collector decodes them.
STREAM_REQUEST_KEYS: Final = frozenset(p.stream_request[0] for p in PROFILES if p.stream_request is not None)


def is_stream_request(profile: Profile, attrs: Mapping[str, object]) -> bool:
    """Whether a span of `profile` with `attrs`, without usage and without error, is the request span of
    a stream, which records no call (`Profile.stream_request`). Never raises."""
    marker = profile.stream_request
    return marker is not None and attrs.get(marker[0]) == marker[1]


@functools.lru_cache(maxsize=1024)
def profile_of(scope_name: str, scope_version: str = "") -> Profile:
    """The profile of a span's instrumentation scope; `DEFAULT_PROFILE` when none matches. Never raises."""
    if scope_name:
        for profile in PROFILES:
            if _scope_matches(profile.scope, scope_name) and _version_ok(profile, scope_version):
                return profile
    return DEFAULT_PROFILE
