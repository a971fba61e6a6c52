"""Replay the conformance fixtures through the collector's pipeline into a real store, and judge them.

`replay` feeds a fixture's recorded OTLP bodies through the collector's own decoder
(`decode_protobuf` with `pipeline_keys`), `RowBuilder` and `Store.write`, then runs the decision pass
(`Store.refresh_aggregates`). `judge` compares the billed rows (``v_calls``) with the fixture's
`true_calls`: exactly one billed row per true call, with the true token counts and the catalog's price
of the TRUE usage, taken from the true provider's list (an Azure call priced as Azure's, not
OpenAI's, though the two may cost the same); a local model's call (Ollama, vLLM) unpriced, never 0.
`KNOWN_DEFECTS` lists the fixtures where a library's own numbers are wrong or incomplete and no other
layer recorded the call.

Used by `test_replay.py` and by `matrix.py` (which writes docs/reference/conformance.md).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from tests.conformance.stubs import ANTHROPIC_CACHE_1H, ANTHROPIC_MODELS, LOCAL_PROVIDERS
from tokenbook.collector.decode.spans import SpanRecord, decode_protobuf
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.collector.storage.store import Store
from tokenbook.genai.pricing.catalog import CATALOG_NAME, PriceCatalog
from tokenbook.genai.usage import Usage

__all__ = [
    "KNOWN_DEFECTS",
    "Verdict",
    "billed_rows",
    "billed_rows_by_tenant",
    "calls_by_tenant",
    "candidate_rows",
    "candidate_rows_by_tenant",
    "decode_fixture",
    "judge",
    "replay",
    "replay_side_by_side",
    "true_cost",
]

#: Fixture stem -> why its bill cannot be exact (a library's own numbers are wrong or incomplete and
#: nothing else recorded the call).
_NO_LIFETIMES = (
    "{} reports the cache writes but not their lifetimes: the one-hour writes are priced at the five-minute "
    "rate"
)
KNOWN_DEFECTS: dict[str, str] = {
    **{
        f"openlit-1.45.0-{style}": _NO_LIFETIMES.format("openlit 1.45.0")
        for style in ("messages", "messages_stream", "messages_stream_async", "messages_stream_helper",
                      "thinking", "tool_use")
    },
    **{
        f"openinference-instrumentation-openlit-0.1.19-{style}": _NO_LIFETIMES.format(
            "openlit 1.45.0 (its spans with OpenInference's attributes added by "
            "openinference-instrumentation-openlit 0.1.19)"
        )
        for style in ("messages", "messages_stream", "messages_stream_async", "messages_stream_helper",
                      "thinking", "tool_use")
    },
    **{
        f"ai-7.0.185{layer}-{style}": _NO_LIFETIMES.format("the AI SDK 7.0.185")
        for layer in ("", "+legacy")
        for style in ("messages", "messages_stream")
    },
    **{
        f"semantic-kernel-1.45.0-{style}": (
            "Semantic Kernel 1.45.0 reports no cache reads: the cached input is priced at the input rate "
            "(with an OpenAI instrumentor beside it, its span bills them exactly)"
        )
        for style in ("prompt", "prompt_stream")
    },
    **{
        f"{fixture}-{style}": (
            f"{layer}the AI SDK 5.0.285 reports no cache reads for an unstreamed OpenAI call (nor in its "
            "provider metadata): the cached input is priced at the input rate"
        )
        for fixture, layer in (
            ("ai-5.0.285", ""),
            (
                "arizeai-openinference-vercel-2.8.1",
                "with OpenInference's attributes added (the same counts): ",
            ),
        )
        for style in ("chat", "chat_attributed", "responses", "tool_loop")
    },
    **{
        f"opentelemetry-instrumentation-openai-v2-2.4b0-{style}": (
            "opentelemetry-instrumentation-openai-v2 2.4b0 (its chat spans made by opentelemetry-util-genai "
            "1.1b0) reports no cache reads: the cached input is priced at the input rate"
        )
        for style in ("chat", "chat_stream", "chat_stream_async", "reasoning", "tool_call")
    },
    **{
        f"openinference-instrumentation-vertexai-0.1.29-{style}": (
            "openinference-instrumentation-vertexai 0.1.29 reports no cache reads (only the prompt, "
            "candidates' and total counts): the cached input is priced at the input rate"
        )
        for style in ("generate", "generate_stream", "generate_async", "chat")
    },
    **{
        f"agentops-0.4.21-{style}": (
            "AgentOps 0.4.21 reports no cache reads on OpenAI calls (only the prompt, completion and total "
            "counts): the cached input is priced at the input rate"
        )
        for style in ("chat", "chat_stream", "tool_call", "reasoning")
    },
    **{
        f"lmnr-0.8.2-{style}": _NO_LIFETIMES.format("Laminar's Anthropic instrumentation (lmnr 0.8.2)")
        for style in ("messages", "messages_stream", "thinking", "workflow")
    },
    **{
        f"traceloop-instrumentation-anthropic-0.27.0+no-sdk-spans-{style}": _NO_LIFETIMES.format(
            "@traceloop/instrumentation-anthropic 0.27.0 (with the SDK's own spans off)"
        )
        for style in ("messages", "messages_stream", "messages_stream_helper", "thinking", "tool_use")
    },
    **{
        f"opentelemetry-instrumentation-aws-sdk-0.78.0-{style}": (
            "@opentelemetry/instrumentation-aws-sdk 0.78.0 (OpenTelemetry JS) reports Bedrock's input count, "
            "which leaves out the cache reads and writes, and no cache counts: the cached and written input "
            "is not billed"
            + (
                "; and the output of a streamed InvokeModel of Claude as its first event's count (1)"
                if style == "invoke_claude_stream"
                else ""
            )
        )
        for style in (
            "converse", "converse_stream", "invoke_claude", "invoke_claude_stream", "invoke_claude_global",
            "invoke_claude_arn", "invoke_nova", "invoke_nova_stream",
        )
    },
    **{
        f"{fixture}-{style}": (
            f"{library} reports no cache reads (only the input and output counts): the cached input is "
            "priced at the input rate"
        )
        for fixture, library, styles in (
            (
                "opentelemetry-instrumentation-openai-0.21.0",
                "@opentelemetry/instrumentation-openai 0.21.0 (OpenTelemetry JS)",
                ("chat", "chat_stream", "reasoning", "tool_call", "responses"),
            ),
            (
                "elastic-opentelemetry-instrumentation-openai-0.5.1",
                "@elastic/opentelemetry-instrumentation-openai 0.5.1",
                ("chat", "chat_stream", "reasoning", "tool_call"),
            ),
        )
        for style in styles
    },
    **{
        f"traceloop-{package}-0.27.0-{style}": (
            f"{layer}@traceloop/instrumentation-openai 0.27.0 reports no cache reads (only the input, output "
            "and total counts): the cached input is priced at the input rate"
        )
        for package, layer, styles in (
            ("instrumentation-openai", "", ("chat", "reasoning", "tool_call", "responses")),
            (
                "node-server-sdk",
                "the Traceloop SDK 0.27.0's OpenAI instrumentation, ",
                ("chat", "reasoning", "tool_call", "responses", "workflow"),
            ),
        )
        for style in styles
    },
    "openinference-instrumentation-litellm-0.1.51-messages": _NO_LIFETIMES.format(
        "openinference-instrumentation-litellm 0.1.51"
    ),
    "langfuse-5.2.0+langchain-anthropic_chat_stream": _NO_LIFETIMES.format(
        "Langfuse 5.2.0's LangChain callback handler, on a ChatAnthropic stream,"
    ),
    "logfire-5.4.0+litellm-messages": _NO_LIFETIMES.format(
        "logfire 5.4.0's `instrument_litellm()` (openinference-instrumentation-litellm 0.1.51)"
    ),
    **{
        f"opentelemetry-instrumentation-botocore-0.66b2-{style}": (
            "opentelemetry-instrumentation-botocore 0.66b2 reports no cache reads or writes on InvokeModel, "
            "only the model's input count without them: the cached input is not billed"
        )
        for style in ("invoke_claude", "invoke_claude_stream", "invoke_claude_global", "invoke_claude_arn",
                      "invoke_nova", "invoke_nova_stream")
    },
    **{
        f"opentelemetry-instrumentation-genai-langchain-1.3b0+no-sdk-spans-{style}": _NO_LIFETIMES.format(
            "opentelemetry-instrumentation-genai-langchain 1.3b0 (LangChain's usage metadata has them)"
        )
        for style in ("anthropic_chat", "anthropic_chat_stream", "anthropic_tool_call",
                      "langgraph_supervisor")
    },
    "openinference-instrumentation-langchain-0.1.80+no-sdk-spans-langgraph_supervisor": (
        _NO_LIFETIMES.format("openinference-instrumentation-langchain 0.1.80 on ChatAnthropic")
    ),
    "opentelemetry-instrumentation-langchain-0.62.4+no-sdk-spans-langgraph_supervisor": (
        "opentelemetry-instrumentation-langchain 0.62.4 on ChatAnthropic reports 0 cache writes (it reads "
        "LangChain's `cache_creation`, which langchain-anthropic sets to 0 when it reports the writes by "
        "lifetime): the cache writes are priced at the input rate"
    ),
    **{
        f"opentelemetry-instrumentation-genai-bedrock-1.3b0-{style}": (
            "opentelemetry-instrumentation-genai-bedrock 1.3b0 reads no cache reads or writes of Amazon Nova "
            "on InvokeModel (neither the body's cacheReadInputTokenCount / cacheWriteInputTokenCount nor the "
            "cache count headers), only Nova's input count without them: the cached input is not billed"
        )
        for style in ("invoke_nova", "invoke_nova_stream")
    },
    **{
        f"opentelemetry-instrumentation-bedrock-0.62.4-{style}": (
            "opentelemetry-instrumentation-bedrock 0.62.4 reads InvokeModel's cache reads and writes from "
            "the response headers alone, which a stream does not have: the cached input is not billed"
        )
        for style in ("invoke_claude_stream", "invoke_nova_stream")
    },
    "opentelemetry-instrumentation-bedrock-0.62.4-invoke_claude_global": (
        "opentelemetry-instrumentation-bedrock 0.62.4 does not know the global. inference profile (it takes "
        "'global' for the vendor) and records no input or output count, only the cache reads and writes"
    ),
    "opentelemetry-instrumentation-bedrock-0.62.4-invoke_llama_stream": (
        "opentelemetry-instrumentation-bedrock 0.62.4 reports the output count of a Llama stream's first "
        "chunk only (adding the later chunks' null prompt counts fails)"
    ),
    "openinference-instrumentation-bedrock-0.1.61-invoke_claude_stream": (
        "openinference-instrumentation-bedrock 0.1.61 reports no cache reads or writes on a Claude "
        "InvokeModel stream (its input count includes them): the cached input is priced at the input rate"
    ),
    "openinference-instrumentation-bedrock-0.1.61-invoke_claude_global": (
        "openinference-instrumentation-bedrock 0.1.61 names a Claude InvokeModel call by the answer's model "
        "(claude-sonnet-4-5-20250929), not the global. inference profile it was sent to: priced at the "
        "regional rate"
    ),
    **{
        f"arizeai-openinference-instrumentation-bedrock-0.5.1-{style}": (
            "@arizeai/openinference-instrumentation-bedrock 0.5.1 reports no cache reads or writes on "
            "Converse calls (only its total counts them, read as input): the cached input is priced at the "
            "input rate"
        )
        for style in ("converse", "converse_stream")
    },
    **{
        f"arizeai-openinference-instrumentation-bedrock-0.5.1-{style}": (
            "@arizeai/openinference-instrumentation-bedrock 0.5.1 names an InvokeModel call sent to an "
            "inference profile or an ARN by the vendor (llm.model_name 'anthropic', 'meta'), no model: "
            "unpriced"
        )
        for style in (
            "invoke_claude",
            "invoke_claude_stream",
            "invoke_claude_global",
            "invoke_claude_arn",
            "invoke_llama",
            "invoke_llama_stream",
        )
    },
    "arizeai-openinference-instrumentation-bedrock-0.5.1-invoke_nova_stream": (
        "@arizeai/openinference-instrumentation-bedrock 0.5.1 names a Nova InvokeModel stream sent to an "
        "inference profile by the vendor (llm.model_name 'amazon') and reports no cache reads or writes: "
        "unpriced"
    ),
    **{
        f"traceloop-instrumentation-bedrock-0.27.0-{style}": (
            "@traceloop/instrumentation-bedrock 0.27.0 reports no cache reads or writes on InvokeModel calls "
            "(the input count is the body's own, without them; a Nova total that counts them is read as "
            "input): the cached input is priced at the input rate, or not at all"
        )
        for style in ("invoke_claude", "invoke_claude_stream", "invoke_nova", "invoke_nova_stream")
    },
    **{
        f"openinference-instrumentation-mistralai-2.2.2-{style}": (
            "openinference-instrumentation-mistralai 2.2.2 reports no cache reads (Mistral's "
            "prompt_tokens_details.cached_tokens): the cached input is priced at the input rate"
        )
        for style in ("mistral_chat", "mistral_chat_stream", "mistral_chat_stream_async")
    },
    "openinference-instrumentation-dspy-0.1.48-predict_anthropic": _NO_LIFETIMES.format(
        "openinference-instrumentation-litellm 0.1.51 (the layer below DSPy's, whose spans carry no usage)"
    ),
    **{
        f"opentelemetry-instrumentation-genai-dspy-1.3b0{beside}-predict_anthropic": (
            "opentelemetry-instrumentation-genai-dspy 1.3b0 reports no cache writes (it reads a "
            "cache_write_tokens field that LiteLLM's usage does not have; no other layer records LiteLLM's "
            "Anthropic calls): the cache writes are priced at the input rate"
        )
        for beside in ("", "+otel-genai-openai")
    },
    "langtrace-python-sdk-3.8.21-chat_stream": (
        "Langtrace 3.8.21 reports no cache reads on an OpenAI stream (only its unstreamed calls carry "
        "gen_ai.usage.cached_tokens): the cached input is priced at the input rate"
    ),
    **{
        f"openinference-instrumentation-portkey-0.1.22-{style}": (
            "openinference-instrumentation-portkey 0.1.22 reports no cache reads (only the prompt, "
            "completion and total counts): the cached input is priced at the input rate"
        )
        for style in ("portkey_chat", "portkey_provider_chat", "portkey_catalog_chat")
    },
    **{
        f"arizeai-openinference-instrumentation-langchain-4.1.1{layer}-{style}": (
            "@arizeai/openinference-instrumentation-langchain 4.1.1 reports no cache writes (LangChain's "
            "input_token_details.cache_creation): the written input is priced at the input rate"
            + (
                "; and @langchain/anthropic 1.5.11 counts a stream's output once more (message_start's "
                "output token added to message_delta's cumulative count)"
                if style == "messages_stream"
                else ""
            )
        )
        for layer in ("", "+openinference-openai")
        for style in ("messages", "messages_stream", "messages_tool_loop")
    },
    **{
        f"traceloop-instrumentation-langchain-0.27.0{layer}-{style}": (
            "@traceloop/instrumentation-langchain 0.27.0 reports no cache reads (only the input, output and "
            "total counts)"
            + (", nor does @traceloop/instrumentation-openai 0.27.0 beside it" if layer else "")
            + ": the cached input is priced at the input rate"
        )
        for layer in ("", "+openllmetry-openai")
        for style in ("chat", "chat_stream", "tool_loop")
    },
    **{
        f"traceloop-instrumentation-langchain-0.27.0{layer}-{style}": (
            "@traceloop/instrumentation-langchain 0.27.0 reports Anthropic's own input_tokens (without the "
            "cache reads and writes) as the input count, and no cache reads or writes: the cached input is "
            "not billed"
        )
        for layer in ("", "+openllmetry-openai")
        for style in ("messages", "messages_tool_loop")
    },
    **{
        f"traceloop-instrumentation-langchain-0.27.0{layer}-messages_stream": (
            "@traceloop/instrumentation-langchain 0.27.0 reports no cache reads or writes on a stream (its "
            "input count includes them), and @langchain/anthropic 1.5.11 counts a stream's output once more "
            "(message_start's output token added to message_delta's cumulative count)"
        )
        for layer in ("", "+openllmetry-openai")
    },
    "openinference-instrumentation-langchain-0.1.80-bedrock_invoke": (
        "openinference-instrumentation-langchain 0.1.80 reports langchain-aws's ChatBedrock prompt count "
        "without the cache reads and writes, and not them (only its total counts them): the cached input is "
        "priced at the input rate"
    ),
    "openinference-instrumentation-openai-0.1.66-vllm_gpt_oss": (
        "openinference-instrumentation-openai 0.1.66 records no server address or base URL (only "
        "llm.system openai): an openai client on a local vLLM serving openai/gpt-oss-20b is priced as "
        "OpenAI's gpt-oss-20b"
    ),
    **{
        f"openinference-instrumentation-claude-agent-sdk-0.1.22-{style}": (
            "openinference-instrumentation-claude-agent-sdk 0.1.22 sums a turn's usage from the Claude Code "
            "CLI's assistant messages (CLI >= 2.1.277), which carry the stream's message_start usage "
            "(output_tokens 1), not the final count: the output is undercounted (and, with no cache-write "
            f"lifetimes, the one-hour writes are priced at the five-minute rate){more}"
        )
        for style, more in (
            ("agent_query", ""),
            ("agent_client", ""),
            ("agent_tool", "; and it records a turn's model calls as one AGENT span, their usage summed"),
        )
    },
    **{
        f"ag2-0.14.0-{style}": (
            "AG2 0.14.0's own LLM spans (`instrument_llm_wrapper`) report no cache reads (only the prompt "
            "and completion counts): the cached input is priced at the input rate (with an OpenAI "
            "instrumentor beside it, its span bills them exactly)"
        )
        for style in ("ag2_chat", "ag2_tool_call")
    },
    "langfuse-5.2.0-embeddings": (
        "Langfuse 5.2.0 records no provider, and the model name alone does not tell it "
        "(text-embedding-3-small is listed by openai and azure): unpriced, not priced on a guess"
    ),
    **{
        f"agent-framework-core-1.23.0-{style}": (
            "agent-framework-core 1.23.0 with the v1.36.0 GenAI conventions (OTEL_SEMCONV_STABILITY_OPT_IN "
            "without gen_ai_latest_experimental) drops the cache reads from its chat spans: the cached input "
            "is priced at the input rate"
        )
        for style in ("chat_stream_v1_36", "agent_tool_v1_36")
    },
    # `openlit.init()` beside a framework: OpenLIT's LangChain instrumentation records a LangChain call in
    # place of its client instrumentations (no OpenAI or Anthropic span of the same call)
    **{
        f"openlit-1.45.0+langchain-{style}": (
            "openlit 1.45.0's LangChain spans of an unstreamed ChatAnthropic call carry Anthropic's own "
            "input_tokens, without the cache reads and writes, and no cache counts (0): the cached input is "
            "missing from the bill, and no client span records the call"
        )
        for style in ("anthropic_chat", "anthropic_tool_call")
    },
    "openlit-1.45.0+langchain-anthropic_chat_stream": (
        "openlit 1.45.0's LangChain span of a ChatAnthropic stream names the model `anthropic` (request "
        "and response): unpriced, and no client span records the call"
    ),
    "openlit-1.45.0+langchain-langgraph_agent_async": (
        "openlit 1.45.0 records no chat span of an async LangGraph agent's model calls (its LangChain "
        "callbacks fail to detach their context); only the workflow span carries usage, the last call's "
        "without its cache reads: one call of two billed, the other lost"
    ),
    "openlit-1.45.0+litellm-messages": _NO_LIFETIMES.format("openlit 1.45.0's LiteLLM instrumentation"),
    "openlit-1.45.0+litellm-messages_stream": (
        "openlit 1.45.0's LiteLLM span of a stream of an Anthropic model reports 0 input and 0 output "
        "tokens, and no client span records the call"
    ),
    "openlit-1.45.0+llama-index-chat_stream": (
        "LlamaIndex's OpenAI stream asks for no usage chunk, and openlit 1.45.0 then writes counts it "
        "estimates from the text (18 input, 7 output) as the call's usage, without cache reads"
    ),
}  # fmt: skip
_KEYS = pipeline_keys((), "drop")
_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


class Verdict(NamedTuple):
    exact: bool
    billed: int  # billed rows
    true_calls: int
    candidates: int  # rows written (billed or not)
    why: str  # what differs, or which spans bill and which rules un-billed the others


def decode_fixture(fixture: dict[str, Any], tenant: str) -> list[list[SpanRecord]]:
    """The fixture's request bodies decoded as the collector decodes them, tenant set on every span."""
    out = []
    for body in fixture["otlp"]:
        records = decode_protobuf(base64.b64decode(body), _KEYS).records
        for r in records:
            r.attrs["tenant.id"] = tenant
        out.append(records)
    return out


def replay(
    store: Store,
    batches: Sequence[Sequence[SpanRecord]],
    *,
    builder: Callable[[], RowBuilder] | None = None,
    refresh_each: bool = True,
) -> None:
    """Build and write each batch as one request; refresh (decide) after each, or once at the end."""
    make = builder or (lambda: RowBuilder(_catalog()))
    rows = make()
    for batch in batches:
        built = rows.build(list(batch))
        store.write(built.calls, built.steps)
        if refresh_each:
            store.refresh_aggregates()
    if not refresh_each:
        store.refresh_aggregates()


def replay_side_by_side(store: Store, fixtures: Mapping[str, Sequence[Sequence[SpanRecord]]]) -> None:
    """Replay several fixtures, each decoded for a tenant of its own (`fixtures`: tenant -> batches),
    as `replay` does each one, with one write and one refresh (decide) per round: the n-th request of
    every fixture is built, the round's rows are written together (as the collector's writer inserts
    the requests of many tenants in one batch), then the store refreshes the contexts (the hourly
    roll-ups, which the corpus's checks do not read, are left pending, as the collector's writer
    leaves them between its hourly refreshes). Each tenant sees the same sequence as with `replay`
    (each request decided before its next one); the tenants' rows are decided side by side, as the
    collector decides the requests of many tenants."""
    builders = {tenant: RowBuilder(_catalog()) for tenant in fixtures}
    rounds = max((len(batches) for batches in fixtures.values()), default=0)
    for n in range(rounds):
        calls: list[CallRow] = []
        steps: list[StepRow] = []
        for tenant, batches in fixtures.items():
            if n < len(batches):
                built = builders[tenant].build(list(batches[n]))
                calls += built.calls
                steps += built.steps
        store.write(calls, steps)
        store.refresh_aggregates(hourly=False)


_CATALOG: list[PriceCatalog] = []


def _catalog() -> PriceCatalog:
    if not _CATALOG:
        _CATALOG.append(PriceCatalog())
    return _CATALOG[0]


_BILLED = "SELECT * FROM v_calls WHERE tenant_id IN {t:Array(String)} AND price_status != 'not_billable'"
_CANDIDATES = "SELECT * FROM v_call_candidates WHERE tenant_id IN {t:Array(String)}"


def billed_rows(store: Store, tenant: str) -> list[dict[str, Any]]:
    """The tenant's billed model calls (``v_calls``, without rows of spans that carry no usage)."""
    return billed_rows_by_tenant(store, [tenant]).get(tenant, [])


def candidate_rows(store: Store, tenant: str) -> list[dict[str, Any]]:
    """The tenant's rows of ``v_call_candidates`` (billed or not)."""
    return candidate_rows_by_tenant(store, [tenant]).get(tenant, [])


def billed_rows_by_tenant(store: Store, tenants: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """`billed_rows` of each of `tenants`, in one query."""
    return _by_tenant(store, _BILLED, tenants)


def candidate_rows_by_tenant(store: Store, tenants: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """`candidate_rows` of each of `tenants`, in one query."""
    return _by_tenant(store, _CANDIDATES, tenants)


def calls_by_tenant(store: Store, tenants: Sequence[str]) -> dict[str, int]:
    """The calls each of `tenants` made, as the aggregates count them (``calls`` of ``v_context_costs``)."""
    select = (
        "SELECT tenant_id, sum(calls) FROM v_context_costs WHERE tenant_id IN {t:Array(String)} GROUP BY 1"
    )
    return {tenant: int(calls) for tenant, calls in store.query(select, {"t": list(tenants)})[2]}


def _by_tenant(store: Store, select: str, tenants: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The rows of `select` by tenant, each tenant's ordered by input tokens, then span ID."""
    ordered = f"{select} ORDER BY tenant_id, input_tokens, span_id"
    columns, _, rows = store.query(ordered, {"t": list(tenants)})
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        row = dict(zip(columns, r, strict=True))
        out.setdefault(row["tenant_id"], []).append(row)
    return out


def true_cost(call: dict[str, Any], start_ns: int) -> Decimal | None:
    """The catalog's price of a true call's usage (the price genai-prices gives that usage). The
    Anthropic stub (the Messages API, and Claude on Vertex AI) answers every call with
    `ANTHROPIC_CACHE_1H` of its cache writes written for an hour (priced at the one-hour rate), the
    rest for five minutes. A local model (`LOCAL_PROVIDERS`: served by Ollama or vLLM) is billed by
    nobody: None (unpriced), whatever hosted model of the catalog shares its name."""
    if call["provider"] in LOCAL_PROVIDERS:
        return None
    claude = call["provider"] == "anthropic" or call["model"] in ANTHROPIC_MODELS.values()
    one_hour = ANTHROPIC_CACHE_1H if claude and call["cache_write_tokens"] else None
    usage = Usage(
        call["input_tokens"],
        call["output_tokens"],
        call["cache_read_tokens"],
        call["cache_write_tokens"],
        call["reasoning_tokens"],
        present=True,
        cache_write_1h_tokens=one_hour,
    )
    quote = _catalog().quote(call["provider"], call["model"], usage, start_ns)
    return None if quote.picos is None else quote.picos.costs().total


def judge(fixture: dict[str, Any], billed: list[dict[str, Any]], candidates: int) -> Verdict:
    """Exactly one billed row per true call, with the true counts and the price of the true usage, from
    the true provider's list."""
    truth = sorted(fixture["true_calls"], key=lambda c: c["input_tokens"])
    n = len(truth)
    if len(billed) != n:
        return Verdict(False, len(billed), n, candidates, f"{len(billed)} billed rows for {n} calls")
    problems = []
    for call, row in zip(truth, billed, strict=True):
        for key in _TOKENS:
            if row[key] != call[key]:
                problems.append(f"{key} {row[key]} (true {call[key]}) by {row['scope_name'] or '?'}")
        start_ns = int(row["timestamp"].timestamp() * 1e9)
        expected = true_cost(call, start_ns)
        if row["total_cost"] != expected:
            problems.append(f"cost {row['total_cost']} (true {expected})")
        elif expected is None and row["price_status"] != "unpriced":
            # a model the catalog does not price (a local model, billed by nobody): unpriced, never 0
            problems.append(f"price_status {row['price_status']!r} (true: unpriced)")
        elif row["price_status"] == "priced" and not row["price_source"].startswith(
            f"{CATALOG_NAME} {call['provider']}/"
        ):
            problems.append(f"priced as {row['price_source']!r} (true provider {call['provider']})")
    if problems:
        return Verdict(False, len(billed), n, candidates, "; ".join(problems))
    scopes = sorted({r["scope_name"] for r in billed})
    return Verdict(True, len(billed), n, candidates, "billed by " + ", ".join(scopes))


def fixture_stem(path: Path) -> str:
    return path.stem
