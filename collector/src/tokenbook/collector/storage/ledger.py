"""The rows the collector writes: the contract between the pipeline, the write-ahead log and storage.

Field order is the column order of the `llm_calls` and `context_steps` tables
(`storage/sql/migrations/`), so a row is inserted as-is. IDs are lowercase hex strings;
times are timezone-aware UTC datetimes; money is `Decimal` (ClickHouse `Decimal(18,12)`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

__all__ = ["CALL_COLUMNS", "STEP_COLUMNS", "CallRow", "StepRow"]


class CallRow(NamedTuple):
    """One model call: a row of `llm_calls`, deduplicated on (tenant_id, context_id, trace_id, span_id)."""

    timestamp: datetime  # span start
    trace_id: str
    span_id: str
    parent_span_id: str
    context_id: str
    workflow_name: str  # root span name, when known
    workflow_id: str  # root span ID, when known
    tenant_id: str
    user_id: str
    project_id: str
    team_id: str
    feature: str
    service_name: str
    tags: dict[str, str]
    provider: str
    model: str
    operation: str
    input_tokens: int  # inclusive of cache tokens, as in OTel
    output_tokens: int  # inclusive of reasoning tokens
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    # Costs are None (NULL) when the call is unpriced: never 0 for an unknown price.
    input_cost: Decimal | None  # (input - cache_read - cache_write) at the input rate
    output_cost: Decimal | None
    cache_read_cost: Decimal | None
    cache_write_cost: Decimal | None
    total_cost: Decimal | None  # exactly the sum of the four components
    currency: str
    price_status: str  # priced | unpriced | cache_hit | not_billable | duplicate_layer | wrapper
    price_source: str  # catalog version and model, or "overrides.yaml#entry"; why, when unpriced
    client_cost: Decimal | None  # the cost the client sent (tokenbook.cost.total); never billed
    usage_issue: str  # why a usage value was coerced or rejected; empty when none
    attempt: int  # 0 for a first attempt, n for the n-th retry
    status: str  # ok | error
    error_type: str
    duration_ms: float
    ingested_at: datetime
    version: int  # ReplacingMergeTree version: the newest row of a span wins (re-pricing writes a higher one)
    # -- facts for the billing decision (migration 030); see docs/reference/billing-rule.md
    response_id: str = ""  # gen_ai.response.id
    scope_name: str = ""  # instrumentation scope of the span
    scope_version: str = ""
    service_instance: str = ""  # service.instance.id, else the service name
    kind: str = ""  # model | wrapper | other | fetch (genai.calls)
    profile: str = ""  # the convention profile the usage was read with (genai.profiles)
    quote_status: str = ""  # the price status as quoted, kept when a decision un-bills the row
    billing_rule: str = ""  # why the row is not billed ("" when it is)
    billed_by: str = ""  # span ID of the span that bills this call ("" when this row bills it)
    ancestors: str = ""  # span IDs of the ancestors seen in the same request, nearest first, space-separated
    # -- prompt composition (migration 080; genai.composition): NULL when not measured, never 0
    prompt_system_tokens: int | None = None
    prompt_history_tokens: int | None = None
    prompt_retrieved_tokens: int | None = None
    prompt_tool_result_tokens: int | None = None
    prompt_user_tokens: int | None = None
    prompt_tool_definition_tokens: int | None = None
    prompt_overhead_tokens: int | None = None  # what the content does not account for (counted only)
    prompt_estimated: bool | None = None  # apportioned by share of the text (true) or counted (false)
    # -- context-window saturation (migration 081): NULL when the model's window is unknown, never 0
    context_window: int | None = None  # the model's context window in tokens (genai-prices catalog)
    context_saturation: float | None = None  # input_tokens / context_window, rounded to 6 decimals
    # -- latency and policy path (migration 100; genai.latency): NULL when unknown, never 0
    time_to_first_token_ms: float | None = None  # span start -> first token or chunk of the answer
    output_tokens_per_second: float | None = None  # output tokens / (duration - time to first token)
    policy_path: str = ""  # the guard or route the call went through (attribution.policy_path_key)
    # -- service tiers, cache lifetimes and price books (migration 110; genai.pricing tiers and books)
    service_tier: str = ""  # the tier the span says the call was served at; "" = none said (standard)
    cache_write_1h_tokens: int | None = None  # of cache_write_tokens, one-hour writes; NULL: not split
    cache_write_1h_cost: Decimal | None = None  # of cache_write_cost, one-hour writes; NULL: not split
    # What the tenant's price book bills (= the list costs above without a book); NULL when unpriced.
    billed_input_cost: Decimal | None = None
    billed_output_cost: Decimal | None = None
    billed_cache_read_cost: Decimal | None = None
    billed_cache_write_cost: Decimal | None = None
    billed_cache_write_1h_cost: Decimal | None = None  # of billed_cache_write_cost; NULL: not split
    billed_cost: Decimal | None = None  # exactly the sum of the four billed components
    price_book: str = ""  # "<file>#<book>" that bills the tenant; "" = no book (list price)
    price_book_entry: str = ""  # the book's entry that billed the call; "" = none matched (list price)

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """The row's identity in the ledger, its sorting key: (tenant_id, context_id, trace_id,
        span_id). Every version of the call has it; a lookup by it reads only the call's granules."""
        return (self.tenant_id, self.context_id, self.trace_id, self.span_id)


class StepRow(NamedTuple):
    """A non-billed span that matters per context: a tool call, an agent/chain wrapper, an outcome."""

    timestamp: datetime
    trace_id: str
    span_id: str
    parent_span_id: str
    context_id: str
    tenant_id: str
    kind: str  # tool | wrapper | outcome
    name: str
    operation: str
    status: str
    duration_ms: float
    outcome: str  # for kind=outcome: the value of `tokenbook.outcome` (e.g. "resolved")
    ingested_at: datetime
    version: int


CALL_COLUMNS: tuple[str, ...] = CallRow._fields
STEP_COLUMNS: tuple[str, ...] = StepRow._fields
